"""Options as config: a good book loads; bad contracts stop at start with the key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.accounting.options import Option
from controller.config import load_config
from tests.test_config import assert_one_error, errors_of

OPTIONS = """
[[sites.hedges]]
type = "option"
id = "cap-put"
side = "long"
kind = "put"
strike = 20
quantity = 1.5
premium_per_unit = 0.8
settlement = "daily"
timezone = "America/Chicago"
hours = { timezone = "America/Chicago", blocks = [
  { days = ["mon", "tue", "wed", "thu", "fri"], hours = [6, 22], quantity_mw = 1 },
] }

[[sites.hedges]]
type = "option"
id = "hp-call"
underlying = "hashprice"
side = "short"
kind = "call"
strike = 60
quantity = 20
premium_lump_usd = 5000
start = "2024-06-01T05:00:00Z"
"""
SHORT_CALL = '[[sites.hedges]]\ntype = "short_call"'


def _make(make: Callable[..., Path], *edits: tuple[str, str]) -> Path:
    text = OPTIONS
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return make(
        ("[sites.policy]", text.lstrip() + "\n[sites.policy]"),
    )


def test_options_load_beside_the_short_call(make_scenario: Callable[..., Path]) -> None:
    site = load_config(_make(make_scenario)).config.sites[0]
    call, _, put, hp = site.hedge_book()
    assert type(call).__name__ == "ShortCall"  # short_call configs keep working
    assert isinstance(put, Option)
    assert (put.side, put.kind, put.basis, put.underlying) == ("long", "put", "daily", "power")
    assert put.hours is not None
    assert isinstance(hp, Option)
    assert hp.underlying == "hashprice"
    assert hp.premium_lump_usd == 5000.0


@pytest.mark.parametrize(
    ("edit", "key_path", "reason"),
    [
        (('id = "hp-call"', 'id = "cap-put"'), "sites[0]", "hedge ids must be unique: cap-put"),
        (("strike = 20\n", "strike = 20000\n"), "sites[0].hedges[2].strike", "10000"),
        (("strike = 60", "strike = -1"), "sites[0].hedges[3]", "strike -1.0 USD/PH/day"),
        (
            ('start = "2024-06-01T05:00:00Z"', ""),
            "sites[0].hedges[3]",
            "a lump-sum premium is paid at the term's start: give start",
        ),
        (
            ('settlement = "daily"', 'settlement = "day_ahead"'),
            "sites[0]",
            "hedges[2] (cap-put) settles on day-ahead prices: give day_ahead_feed",
        ),
        (
            ('underlying = "hashprice"', 'underlying = "hashprice"\nsettlement = "day_ahead"'),
            "sites[0].hedges[3]",
            "a hashprice has no day-ahead price",
        ),
        (
            ("hours = [6, 22], quantity_mw = 1", "hours = [6, 22], quantity_mw = 2"),
            "sites[0].hedges[2]",
            "delivery hours are 1 (delivered) or 0",
        ),
        (("quantity = 1.5", "quantity = 0"), "sites[0].hedges[2].quantity", "greater than"),
        (('kind = "put"', 'kind = "straddle"'), "sites[0].hedges[2].kind", "'call'"),
        (("quantity = 1.5", "quantity = 20000"), "sites[0].hedges[2]", "above 10000"),
        (
            ("premium_per_unit = 0.8", "premium_per_unit = 0.8\npremium_lump_usd = 10"),
            "sites[0].hedges[2]",
            "not both",
        ),
    ],
)
def test_bad_options_stop_at_start_with_the_key_path(
    make_scenario: Callable[..., Path], edit: tuple[str, str], key_path: str, reason: str
) -> None:
    assert_one_error(_make(make_scenario, edit), key_path, reason)


def test_a_day_ahead_feed_on_mqtt_needs_its_own_topic(make_scenario: Callable[..., Path]) -> None:
    path = _make(make_scenario, ('settlement = "daily"', 'settlement = "day_ahead"'))
    text = path.read_text(encoding="utf-8").replace(
        "[sites.hashprice_feed]",
        '[sites.day_ahead_feed]\ntype = "mqtt"\nbroker = { host = "127.0.0.1" }\n\n'
        "[sites.hashprice_feed]",
    )
    path.write_text(text, encoding="utf-8")
    messages = errors_of(path)
    assert len(messages) == 1, messages
    assert "day_ahead_feed.topic: give the topic" in messages[0]
