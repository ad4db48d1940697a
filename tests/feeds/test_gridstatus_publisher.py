"""The gridstatus publisher's own logic, without gridstatus: the ISO/market/location choice,
the interval it picks, and the validation and rejection counting it shares with every feed.

The ISO client here is a stand-in returning small frames; the real gridstatus code over
recorded SPP answers, into a running daemon, is tests/iso/test_gridstatus_daemon.py.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.gridstatus_publisher import GridstatusPublisher, Target, payload
from adapters.feeds.gridstatus_source import (
    ISOS,
    ChoiceError,
    GridstatusSource,
    IntervalPrice,
    choose,
    newest_begun,
)
from adapters.feeds.payloads import PricePayload, ValueBound
from adapters.feeds.store import Accepted, Rejected, RejectReason
from controller.app.cli import main as cli_main
from controller.runtime.clocks.simulated import SimulatedClock


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class _Column:
    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def tolist(self) -> list[Any]:
        return list(self._values)


class _Frame:
    """The columns of a gridstatus LMP frame that the publisher reads."""

    def __init__(self, rows: list[tuple[datetime, str, Any]]) -> None:
        self.columns = ["Time", "Interval Start", "Location", "LMP"]
        self._cols: dict[str, list[Any]] = {
            "Interval Start": [r[0] for r in rows],
            "Location": [r[1] for r in rows],
            "LMP": [r[2] for r in rows],
        }

    def __getitem__(self, key: str) -> _Column:
        return _Column(self._cols[key])


class _Iso:
    """Answers each request with the next frame (or raises it, if it is an exception)."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def _next(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get_lmp_real_time_5_min_by_location(self, **kwargs: Any) -> Any:
        return self._next(**kwargs)

    def get_lmp(self, **kwargs: Any) -> Any:
        return self._next(**kwargs)


def _publisher(
    iso: str, market: str, location: str, answers: list[Any], now: str
) -> tuple[GridstatusPublisher, _Iso]:
    fake = _Iso(answers)
    source = GridstatusSource(iso, market, location, load=lambda _name: fake)
    target = Target(MqttBrokerConfig(host="127.0.0.1"), "hashspark/s/price", "test")
    clock = SimulatedClock(_t(now).timestamp())
    bound = ValueBound(-500.0, 5000.0)
    return GridstatusPublisher(source, target, clock, bound=bound, interval_s=60.0), fake


HUB = "SPPSOUTH_HUB"


async def test_each_new_interval_once_and_every_bad_value_counted_by_reason() -> None:
    t0, t1, t2 = _t("2024-07-25T19:15:00"), _t("2024-07-25T19:20:00"), _t("2024-07-25T19:25:00")
    answers = [
        _Frame([(t0, "SPPNORTH_HUB", 26.5), (t0, HUB, 32.7)]),
        _Frame([(t0, HUB, 32.7)]),  # not posted yet: no news
        _Frame([(t1, HUB, float("nan"))]),
        _Frame([(t1, HUB, 9000.0)]),  # beyond max_value
        _Frame([(t0, HUB, 31.0)]),  # a correction of the interval held: not decided on again
        _Frame([(_t("2024-07-25T19:10:00"), HUB, 28.0)]),  # older than the one held
        OSError("connection reset"),  # the ISO is down: an outage, not a rejection
        _Frame([(t1, HUB, 1489.7666), (t2, HUB, 50.0)]),  # t2 has not begun yet
    ]
    publisher, fake = _publisher("SPP", "REAL_TIME_5_MIN", HUB, answers, "2024-07-25T19:24:00")
    results = [await publisher.poll() for _ in range(8)]

    assert isinstance(results[0], Accepted)
    assert (results[0].reading.value, results[0].reading.observed_at) == (32.7, t0.timestamp())
    assert results[0].reading.source == "gridstatus:SPP:SPPSOUTH_HUB:REAL_TIME_5_MIN:prelim"
    assert results[1] is None
    reasons = [r.reason for r in results[2:6] if isinstance(r, Rejected)]
    assert reasons == [
        RejectReason.NOT_FINITE,
        RejectReason.OUT_OF_RANGE,
        RejectReason.DUPLICATE,
        RejectReason.OUT_OF_ORDER,
    ]
    assert results[6] is None
    assert publisher.health.outages == 1
    assert isinstance(results[7], Accepted)
    assert results[7].reading.observed_at == t1.timestamp()  # the newest begun, not t2
    assert publisher.stats.rejected_total() == 4
    assert fake.calls[0] == {"date": "latest", "location_type": "ALL"}


async def test_day_ahead_asks_for_the_market_day_and_takes_the_hour_in_force() -> None:
    hours = [_t(f"2024-07-25T{h:02d}:00:00") for h in range(5, 24)]
    frame = _Frame([(h, "N.Y.C.", 40.0 + i) for i, h in enumerate(hours)])
    publisher, fake = _publisher(
        "NYISO", "DAY_AHEAD_HOURLY", "N.Y.C.", [frame], "2024-07-25T03:30:00"
    )
    result = await publisher.poll()
    # 03:30 UTC is 23:30 on the 24th in New York: that market day's file has no hour begun
    # at 03:30 UTC (this one starts at 05:00), so nothing is published and it is counted.
    assert isinstance(result, Rejected)
    assert fake.calls[0]["date"] == "2024-07-24"
    assert fake.calls[0]["market"] == "DAY_AHEAD_HOURLY"

    publisher, fake = _publisher(
        "NYISO", "DAY_AHEAD_HOURLY", "N.Y.C.", [frame], "2024-07-25T17:59:59"
    )
    result = await publisher.poll()
    assert isinstance(result, Accepted)
    assert result.reading.observed_at == _t("2024-07-25T17:00:00").timestamp()
    assert result.reading.value == 52.0
    assert result.reading.source.endswith(":N.Y.C.:DAY_AHEAD_HOURLY:ex-ante")
    assert fake.calls[0]["date"] == "2024-07-25"


def test_the_payload_is_what_the_daemon_parses() -> None:
    raw = payload(1489.7666, _t("2024-07-25T19:20:00").timestamp(), "gridstatus:SPP:X:M:prelim")
    parsed = PricePayload.model_validate_json(raw)
    assert parsed.usd_per_mwh == 1489.7666
    assert parsed.ts == _t("2024-07-25T19:20:00")
    assert parsed.source == "gridstatus:SPP:X:M:prelim"


def test_newest_begun_ignores_the_future() -> None:
    rows = [IntervalPrice(100.0, 1.0), IntervalPrice(400.0, 3.0), IntervalPrice(200.0, 2.0)]
    assert newest_begun(rows, 399.0) == IntervalPrice(200.0, 2.0)
    assert newest_begun(rows, 50.0) is None


@pytest.mark.parametrize(
    ("iso", "market", "location", "names"),
    [
        ("ERCOTT", "REAL_TIME_5_MIN", "X", "--iso: unknown ISO 'ERCOTT' (known: SPP, MISO,"),
        ("SPP", "REAL_TIME_15_MIN", HUB, "known: REAL_TIME_5_MIN, DAY_AHEAD_HOURLY"),
        ("SPP", "REAL_TIME_5_MIN", "SPP_SOUTH_HUB", "(known: SPPNORTH_HUB, SPPSOUTH_HUB)"),
    ],
)
def test_an_unknown_choice_names_the_known_ones(
    iso: str, market: str, location: str, names: str
) -> None:
    with pytest.raises(ChoiceError) as caught:
        choose(iso, market, location)
    assert names in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_iso_has_locations_and_labelled_markets() -> None:
    for spec in ISOS.values():
        assert spec.locations
        assert {m.basis for m in spec.markets.values()} <= {"ex-ante", "prelim", "final"}


def _config(tmp: Path) -> Path:
    path = tmp / "c.toml"
    path.write_text("""
[[sites]]
id = "spp"
price_feed = { type = "mqtt", broker = { host = "127.0.0.1", port = 1 } }
hashprice_feed = { type = "mqtt", broker = { host = "127.0.0.1", port = 1 } }

[sites.supply]
type = "spot"

[[sites.miners]]
model = "Antminer S21"
count = 1
""")
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--iso", "XYZ", "--location", HUB], "--iso: unknown ISO 'XYZ' (known: SPP, MISO, NYISO"),
        (["--iso", "spp", "--location", "SPP_SOUTH_HUB"], "known: SPPNORTH_HUB, SPPSOUTH_HUB"),
        (["--iso", "SPP", "--location", HUB, "--site", "x"], "choose one site with --site (spp)"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert cli_main(["feed", "gridstatus", str(_config(tmp_path)), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_without_gridstatus_says_where_it_lives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gridstatus", None)  # import gridstatus -> ImportError
    argv = ["feed", "gridstatus", str(_config(tmp_path)), "--iso", "SPP", "--location", HUB]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "gridstatus is not installed here: `make iso-env`" in err
    assert err.count("\n") == 1
