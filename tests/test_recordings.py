"""adapters/feeds/recorded.py: strict loading of canonical CSV recordings, and the feed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.feeds.recorded import (
    HASHPRICE_COLUMN,
    PRICE_COLUMN,
    RecordedFeed,
    RecordingError,
    load_recording,
)
from controller.domain import Recording

PRICE_FILE = "ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"
#: The subsidy-only hashprice (before issue 17); the scenarios replay the fee-inclusive one.
HASHPRICE_FILE = "btc_hashprice_daily_2024-05_2025-04.csv"
FEE_INCLUSIVE_FILE = "btc_hashprice_daily_2024-05_2025-04_with_fees.csv"

HEADER = f"timestamp,{PRICE_COLUMN}\n"
ROW1 = "2024-08-20T00:00:00Z,17.5\n"
ROW2 = "2024-08-20T00:15:00Z,18.25\n"
T0 = datetime(2024, 8, 20, tzinfo=UTC).timestamp()


def _many_rows(n: int) -> str:
    """``n`` valid rows, 15 minutes apart from T0, for line numbers beyond one read chunk."""
    start = int(T0)
    return "".join(
        f"{datetime.fromtimestamp(start + 900 * i, UTC):%Y-%m-%dT%H:%M:%SZ},{i}.5\n"
        for i in range(n)
    )


#: (id, file bytes, line the message must name, reason fragment)
BAD_FILES: list[tuple[str, bytes, int, str]] = [
    ("three-fields", (HEADER + ROW1 + "2024-08-20T00:15:00Z,1.0,2.0\n").encode(), 3, "2 fields"),
    ("one-field", (HEADER + ROW1 + "2024-08-20T00:15:00Z\n").encode(), 3, "2 fields"),
    ("not-a-number", (HEADER + ROW1 + "2024-08-20T00:15:00Z,abc\n").encode(), 3, "not a number"),
    ("comma-decimal", (HEADER + '2024-08-20T00:00:00Z,"17,5"\n').encode(), 2, "not a number"),
    ("nan", (HEADER + ROW1 + "2024-08-20T00:15:00Z,nan\n").encode(), 3, "not finite"),
    ("NaN", (HEADER + "2024-08-20T00:00:00Z,NaN\n").encode(), 2, "not finite"),
    ("inf", (HEADER + ROW1 + "2024-08-20T00:15:00Z,inf\n").encode(), 3, "not finite"),
    ("-inf", (HEADER + ROW1 + "2024-08-20T00:15:00Z,-inf\n").encode(), 3, "not finite"),
    ("Infinity", (HEADER + ROW1 + "2024-08-20T00:15:00Z,Infinity\n").encode(), 3, "not finite"),
    ("empty-value", (HEADER + ROW1 + "2024-08-20T00:15:00Z,\n").encode(), 3, "empty value"),
    ("blank-value", (HEADER + ROW1 + "2024-08-20T00:15:00Z,  \n").encode(), 3, "empty value"),
    ("no-zone", (HEADER + ROW1 + "2024-08-20T00:15:00,1.0\n").encode(), 3, "no time zone"),
    ("date-no-zone", (HEADER + "2024-08-20,1.0\n").encode(), 2, "no time zone"),
    ("non-iso", (HEADER + ROW1 + "20/08/2024 00:15,1.0\n").encode(), 3, "not ISO-8601"),
    ("epoch", (HEADER + "1724112000,1.0\n").encode(), 2, "not ISO-8601"),
    ("empty-timestamp", (HEADER + ",1.0\n").encode(), 2, "not ISO-8601"),
    ("duplicate", (HEADER + ROW1 + ROW2 + ROW2).encode(), 4, "duplicate timestamp"),
    (
        "duplicate-other-offset",
        (HEADER + ROW1 + "2024-08-19T19:00:00-05:00,3.0\n").encode(),
        3,
        "duplicate timestamp",
    ),
    ("out-of-order", (HEADER + ROW2 + ROW1).encode(), 3, "out-of-order timestamp"),
    ("wrong-header", f"time,{PRICE_COLUMN}\n{ROW1}".encode(), 1, "header"),
    ("hashprice-header", f"timestamp,{HASHPRICE_COLUMN}\n{ROW1}".encode(), 1, PRICE_COLUMN),
    ("three-column-header", f"timestamp,{PRICE_COLUMN},x\n{ROW1}".encode(), 1, "header"),
    ("no-header", (ROW1 + ROW2).encode(), 1, "header"),
    ("empty-file", b"", 1, "empty file"),
    ("header-only", HEADER.encode(), 1, "no data rows"),
    ("header-and-blank-lines", (HEADER + "\n\n").encode(), 3, "no data rows"),
    ("huge", (HEADER + ROW1 + "2024-08-20T00:15:00Z,1e9\n").encode(), 3, "beyond"),
    ("huge-negative", (HEADER + "2024-08-20T00:00:00Z,-1000000.5\n").encode(), 2, "beyond"),
    ("bad-utf8", HEADER.encode() + ROW1.encode() + b"2024-08-20T00:15:00Z,\xff1\n", 3, "UTF-8"),
    ("bad-utf8-header", b"timestamp,usd_per_\xe9mwh\n" + ROW1.encode(), 1, "UTF-8"),
    (
        "bad-utf8-far-down",
        (HEADER + _many_rows(2000)).encode() + b"2025-01-01T00:00:00Z,\xc3\x28\n",
        2002,
        "UTF-8",
    ),
    ("blank-lines-count", (HEADER + "\n" + ROW1 + "\n\n" + "x,1\n").encode(), 6, "ISO-8601"),
    (
        "crlf",
        (HEADER + ROW1 + "2024-08-20T00:15:00Z,nan\n").replace("\n", "\r\n").encode(),
        3,
        "finite",
    ),
    (
        "unclosed-quote",
        (HEADER + ROW1 + '"2024-08-20T00:15:00Z,1.0\n').encode(),
        3,
        "2 fields",
    ),
    ("nul-byte", (HEADER + ROW1 + "2024-08-20T00:15:00Z,1\x00\n").encode(), 3, "not a number"),
    # Issue 16 (found by tests/feeds/test_hostile_daemon_slow.py): these loaded, and a year-0
    # first row started `run --simulated` two thousand years back.
    ("year-0", (HEADER + "0001-01-01T00:00:00+23:59,2\n" + ROW1).encode(), 2, "2000-01-01"),
    ("year-10000", (HEADER + ROW1 + "9999-12-31T23:59:59-23:59,2\n").encode(), 3, "2100"),
    ("before-2000", (HEADER + "1999-12-31T23:59:59Z,2\n" + ROW1).encode(), 2, "outside"),
]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [row[1:] for row in BAD_FILES],
    ids=[row[0] for row in BAD_FILES],
)
def test_bad_file_names_file_line_and_reason(
    tmp_path: Path, content: bytes, line: int, reason: str
) -> None:
    path = tmp_path / "price.csv"
    path.write_bytes(content)
    with pytest.raises(RecordingError) as info:
        load_recording(path, PRICE_COLUMN)
    message = str(info.value)
    prefix = f"{path}:{line}: "
    assert message.startswith(prefix), message
    assert len(message) > len(prefix) + 5, message  # a reason follows the location
    assert reason in message, message
    assert "\n" not in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(RecordingError, match="no such file") as info:
        load_recording(path, PRICE_COLUMN)
    assert str(info.value).startswith(f"{path}: ")


def test_magnitude_limit_is_a_parameter(tmp_path: Path) -> None:
    path = tmp_path / "price.csv"
    path.write_text(HEADER + "2024-08-20T00:00:00Z,5000\n", encoding="utf-8")
    assert load_recording(path, PRICE_COLUMN).values.tolist() == [5000.0]
    with pytest.raises(RecordingError, match=rf"^{path}:2: .*beyond"):
        load_recording(path, PRICE_COLUMN, max_abs=1000.0)


# --- the shipped recordings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "column", "rows", "first"),
    [
        (PRICE_FILE, PRICE_COLUMN, 28_796, "2024-06-01T05:00:00+00:00"),
        (HASHPRICE_FILE, HASHPRICE_COLUMN, 318, "2024-05-25T00:00:00+00:00"),
        (FEE_INCLUSIVE_FILE, HASHPRICE_COLUMN, 318, "2024-05-25T00:00:00+00:00"),
    ],
    ids=["price", "hashprice", "hashprice-with-fees"],
)
def test_real_recordings_load(
    recordings_dir: Path, name: str, column: str, rows: int, first: str
) -> None:
    rec = load_recording(recordings_dir / name, column)
    assert len(rec) == rows
    assert rec.times.shape == rec.values.shape == (rows,)
    assert rec.source == name
    assert rec.column == column
    assert datetime.fromtimestamp(rec.times[0], UTC).isoformat() == first
    assert np.all(np.diff(rec.times) > 0)
    assert np.all(np.isfinite(rec.values))


def test_the_fee_inclusive_hashprice_is_the_subsidy_only_one_plus_fees(
    recordings_dir: Path,
) -> None:
    """Its SOURCE note's figures over the replay window (2024-06-01 .. 2025-03-28, 301 days):
    mean 51.43 against 49.75 without fees, fees 3.09% of miner revenue on average, 41.0% at
    most (2024-06-07); and fees are never negative."""
    fees = load_recording(recordings_dir / FEE_INCLUSIVE_FILE, HASHPRICE_COLUMN)
    bare = load_recording(recordings_dir / HASHPRICE_FILE, HASHPRICE_COLUMN)
    np.testing.assert_array_equal(fees.times, bare.times)
    assert (fees.values > bare.values).all()
    lo = datetime(2024, 6, 1, tzinfo=UTC).timestamp()
    hi = datetime(2025, 3, 28, tzinfo=UTC).timestamp()
    window = (fees.times >= lo) & (fees.times <= hi)
    assert int(window.sum()) == 301
    assert round(float(fees.values[window].mean()), 2) == 51.43
    assert round(float(bare.values[window].mean()), 2) == 49.75
    share = 1.0 - bare.values[window] / fees.values[window]
    assert round(float(share.mean()) * 100, 2) == 3.09
    assert round(float(share.max()) * 100, 1) == 41.0
    day = datetime.fromtimestamp(float(fees.times[window][share.argmax()]), UTC)
    assert day.date().isoformat() == "2024-06-07"
    assert (recordings_dir / FEE_INCLUSIVE_FILE.replace(".csv", ".SOURCE.txt")).is_file()


def test_real_recording_wants_its_own_column(recordings_dir: Path) -> None:
    with pytest.raises(RecordingError, match=r":1: header"):
        load_recording(recordings_dir / PRICE_FILE, HASHPRICE_COLUMN)


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "price.csv"
    path.write_text(HEADER + "\n" + ROW1 + "\n   \n\r\n" + ROW2 + "\n\n", encoding="utf-8")
    rec = load_recording(path, PRICE_COLUMN)
    assert rec.times.tolist() == [T0, T0 + 900]
    assert rec.values.tolist() == [17.5, 18.25]


def test_offsets_and_whitespace_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "price.csv"
    path.write_text(
        f" timestamp , {PRICE_COLUMN} \n"
        "2024-08-19T19:00:00-05:00 , 17.5\n"
        "2024-08-20T00:15:00+00:00,  -3\n",
        encoding="utf-8",
    )
    rec = load_recording(path, PRICE_COLUMN)
    assert rec.times.tolist() == [T0, T0 + 900]
    assert rec.values.tolist() == [17.5, -3.0]


# --- the feed ----------------------------------------------------------------------------


@pytest.fixture
def feed() -> RecordedFeed:
    """Three observations, 15 minutes apart, from T0."""
    return RecordedFeed(
        Recording(
            source="three.csv",
            path=Path("three.csv"),
            column=PRICE_COLUMN,
            times=np.array([T0, T0 + 900, T0 + 1800]),
            values=np.array([10.0, 20.0, -5.0]),
        )
    )


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-86_400.0, None),
        (-0.001, None),
        (0.0, (10.0, 0.0)),
        (0.001, (10.0, 0.0)),
        (899.999, (10.0, 0.0)),
        (900.0, (20.0, 900.0)),
        (1000.0, (20.0, 900.0)),
        (1800.0, (-5.0, 1800.0)),
        (86_400.0, (-5.0, 1800.0)),
    ],
)
def test_latest_is_the_observation_holding_at_t(
    feed: RecordedFeed, offset: float, expected: tuple[float, float] | None
) -> None:
    reading = feed.latest(T0 + offset)
    if expected is None:
        assert reading is None
        return
    assert reading is not None
    value, at = expected
    assert (reading.value, reading.observed_at, reading.source) == (value, T0 + at, "three.csv")


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-86_400.0, 0.0),
        (-0.001, 0.0),
        (0.0, 900.0),
        (450.0, 900.0),
        (900.0, 1800.0),
        (1799.0, 1800.0),
        (1800.0, None),
        (86_400.0, None),
    ],
)
def test_next_change_after(feed: RecordedFeed, offset: float, expected: float | None) -> None:
    got = feed.next_change_after(T0 + offset)
    assert got == (None if expected is None else T0 + expected)


def test_feed_names_its_recording(feed: RecordedFeed) -> None:
    assert feed.name == "three.csv"
    assert len(feed.recording) == 3


# --- round trip --------------------------------------------------------------------------

_EPOCH_2000 = 946_684_800
_EPOCH_2100 = 4_102_444_800


@given(
    series=st.lists(
        st.tuples(
            st.integers(_EPOCH_2000, _EPOCH_2100),
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=40,
        unique_by=lambda p: p[0],
    ).map(sorted)
)
def test_canonical_file_loads_back_identically(
    tmp_path_factory: pytest.TempPathFactory, series: list[tuple[int, float]]
) -> None:
    path = tmp_path_factory.mktemp("roundtrip") / "series.csv"
    lines = [f"timestamp,{HASHPRICE_COLUMN}"]
    lines += [f"{datetime.fromtimestamp(t, UTC):%Y-%m-%dT%H:%M:%SZ},{v!r}" for t, v in series]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rec = load_recording(path, HASHPRICE_COLUMN)
    assert rec.times.tolist() == [float(t) for t, _ in series]
    assert rec.values.tolist() == [v for _, v in series]
    assert [np.signbit(v) for v in rec.values] == [np.signbit(v) for _, v in series]
