"""Bad supply stacks stop at start, one line each with the key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.accounting.instruments import VirtualPpa
from controller.accounting.supply_stack import ScheduledQuantity, ShapedQuantity, SupplyStack
from controller.config import load_config
from tests.test_config import assert_one_error

PPA = 'type = "fixed_ppa"\nquantity_mw = 3.3\nprice_usd_per_mwh = 45\n'
STACK = """type = "stack"

[[sites.supply.tranches]]
id = "ppa-5x16"
price_usd_per_mwh = 52
shape = { timezone = "America/Chicago", blocks = [
  { days = ["mon", "tue", "wed", "thu", "fri"], hours = [6, 22], quantity_mw = 2.0 },
  { days = ["sat", "sun"], hours = [0, 24], quantity_mw = 0.5 },
] }

[[sites.supply.tranches]]
id = "monthly"
price_usd_per_mwh = 40
resale_cap_usd_per_mwh = 100
schedule = [
  { start = "2024-06-01T05:00:00Z", end = "2024-07-01T05:00:00Z", quantity_mw = 1.0 },
  { start = "2024-07-01T05:00:00Z", end = "2024-08-01T05:00:00Z", quantity_mw = 1.2 },
]
"""


def _stack(make: Callable[..., Path], *edits: tuple[str, str]) -> Path:
    text = STACK
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return make((PPA, text))


def test_a_stack_with_a_shape_and_a_schedule_loads(make_scenario: Callable[..., Path]) -> None:
    site = load_config(_stack(make_scenario)).config.sites[0]
    stack = site.supply_contract()
    assert isinstance(stack, SupplyStack)
    shaped, monthly = stack.tranches
    assert isinstance(shaped.quantity, ShapedQuantity)
    assert shaped.quantity.blocks[1].days == (5, 6)
    assert isinstance(monthly.quantity, ScheduledQuantity)
    assert monthly.resale_cap_usd_per_mwh == 100.0


@pytest.mark.parametrize(
    ("edit", "key_path", "reason"),
    [
        (
            ("hours = [0, 24], quantity_mw = 0.5", "hours = [0, 24], quantity_mw = -0.5"),
            "sites[0].supply.tranches[0].shape.blocks[1].quantity_mw",
            "greater than or equal to 0",
        ),
        (
            ('days = ["sat", "sun"]', 'days = ["fri", "sat"]'),
            "sites[0].supply.tranches[0].shape",
            "blocks[1] overlaps blocks[0] on fri at 06:00",
        ),
        (
            ('start = "2024-07-01T05:00:00Z"', 'start = "2024-07-02T05:00:00Z"'),
            "sites[0].supply.tranches[1]",
            "schedule[1] starts 2024-07-02T05:00:00+00:00, after schedule[0] ends",
        ),
        (
            ('start = "2024-07-01T05:00:00Z"', 'start = "2024-06-30T05:00:00Z"'),
            "sites[0].supply.tranches[1]",
            "must not overlap",
        ),
        (
            ('id = "monthly"', 'id = "ppa-5x16"'),
            "sites[0].supply",
            "tranche ids must be unique: ppa-5x16",
        ),
        (
            ('id = "monthly"', 'id = "spot"'),
            "sites[0].supply",
            "'spot' names the power bought above the tranches",
        ),
        (
            ('timezone = "America/Chicago"', 'timezone = "America/Houston"'),
            "sites[0].supply.tranches[0].shape.timezone",
            "unknown time zone 'America/Houston'",
        ),
        (
            ("hours = [6, 22]", "hours = [22, 6]"),
            "sites[0].supply.tranches[0].shape.blocks[0]",
            "hours must be [start, end)",
        ),
        (
            ("resale_cap_usd_per_mwh = 100\n", "resale_cap_usd_per_mwh = 100\nquantity_mw = 1\n"),
            "sites[0].supply.tranches[1]",
            "give exactly one of quantity_mw, shape or schedule (got quantity_mw, schedule)",
        ),
        (
            ('days = ["sat", "sun"]', 'days = ["sat", "sunday"]'),
            "sites[0].supply.tranches[0].shape.blocks[1].days[1]",
            "'mon'",
        ),
    ],
)
def test_a_bad_stack_stops_with_its_key_path(
    make_scenario: Callable[..., Path], edit: tuple[str, str], key_path: str, reason: str
) -> None:
    assert_one_error(_stack(make_scenario, edit), key_path, reason)


def test_a_negative_flat_quantity_and_a_bad_virtual_ppa_are_refused(
    make_scenario: Callable[..., Path],
) -> None:
    flat = 'type = "stack"\n\n[[sites.supply.tranches]]\nid = "a"\nprice_usd_per_mwh = 40\n'
    path = make_scenario((PPA, flat + "quantity_mw = -1\n"))
    assert_one_error(path, "sites[0].supply.tranches[0].quantity_mw", "greater than or equal")
    vppa = (
        '\n[[sites.hedges]]\ntype = "virtual_ppa"\nid = "vppa"\nprice_usd_per_mwh = 50\n'
        "quantity_mw = -2\n"
    )
    path = make_scenario(append=vppa, name="vppa.toml")
    assert_one_error(path, "sites[0].hedges[2].quantity_mw", "greater than or equal")


def test_a_virtual_ppa_takes_a_shape_and_a_term(make_scenario: Callable[..., Path]) -> None:
    vppa = (
        '\n[[sites.hedges]]\ntype = "virtual_ppa"\nid = "vppa-5x16"\nprice_usd_per_mwh = 50\n'
        'start = "2024-07-01T05:00:00Z"\nend = "2024-10-01T05:00:00Z"\n'
        'shape = { timezone = "America/Chicago", blocks = [{ days = ["mon"], hours = [6, 22],'
        " quantity_mw = 1.0 }] }\n"
    )
    hedges = load_config(make_scenario(append=vppa)).config.sites[0].hedge_book()
    swap = hedges[2]
    assert isinstance(swap, VirtualPpa)
    assert isinstance(swap.quantity, ShapedQuantity)
    assert swap.end is not None
    bad = vppa.replace('end = "2024-10-01T05:00:00Z"', 'end = "2024-06-01T05:00:00Z"')
    assert_one_error(make_scenario(append=bad, name="b.toml"), "sites[0].hedges[2]", "after start")
    none = vppa.replace("shape = ", "# shape = ")
    assert_one_error(
        make_scenario(append=none, name="n.toml"),
        "sites[0].hedges[2]",
        "give exactly one of quantity_mw, shape or schedule",
    )
