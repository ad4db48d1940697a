"""``hashspark recordings import`` and the canonical price recording's labels.

The table test imports real market slices (tests/fixtures/markets, with their SOURCE notes)
and checks each recording against an independent reading of the same file: row count, first
and last rows, and every gap. The packaged recordings are checked against the figures their
SOURCE notes state.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import importlib.util
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from adapters.feeds.recorded import RecordingError, load_recording
from adapters.recordings.importer import ImportRequest, run_import
from adapters.recordings.meta import RecordingMeta, price_column, read_meta
from adapters.recordings.sources import Selection, SourceError
from controller.app.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "markets"
RECORDINGS = Path(__file__).parent.parent / "simulators" / "recordings"

SPP = "spp_rtm_lmp_5min_hubs_eia_2024-01-31_2024-02-25.csv"
US = "us_rtm_lmp_hourly_miso_nyiso_isone_eia_2024-01-01_2024-02-25.csv"
DE_LU = "de_lu_day_ahead_hourly_energycharts_2024-10-24_2024-10-31.csv"
NORDIC = "nordic_day_ahead_hourly_smard_entsoe_2024-10-01_2024-10-08.csv"
EIA = "eia_miso_lmp_rt_hr_hubs_2024_head.csv"


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reference(name: str, column: str, eia_interval_s: int = 3600) -> list[tuple[str, str]]:
    """(UTC interval start, value text) of the non-empty cells of ``column``, read plainly."""
    with (FIXTURES / name).open(newline="") as f:
        rows = list(csv.reader(f))
    if name == EIA:  # three title lines; stamps are the UTC interval ENDING
        header, body = rows[3], rows[4:]
        i = header.index(column)
        return [
            (
                _z(
                    datetime.fromisoformat(r[0]).replace(tzinfo=UTC)
                    - timedelta(seconds=eia_interval_s)
                ),
                r[i],
            )
            for r in body
            if r[i].strip()
        ]
    header, body = rows[0], rows[1:]
    i = header.index(column)
    return [(r[0], r[i]) for r in body if r[i].strip()]


def _reference_gaps(times: list[str] | list[float], interval_s: int) -> list[tuple[str, str, int]]:
    """Runs of missing grid points between the first and last time: (after, before, count).

    ``times`` are ISO-8601 strings or epoch seconds.
    """
    stamps = [
        round(t) if isinstance(t, float) else round(datetime.fromisoformat(t).timestamp())
        for t in times
    ]
    present = set(stamps)
    gaps: list[tuple[str, str, int]] = []
    run_start, missing = stamps[0], 0
    for t in range(stamps[0], stamps[-1] + 1, interval_s):
        if t in present:
            if missing:
                gaps.append(
                    (
                        _z(datetime.fromtimestamp(run_start, UTC)),
                        _z(datetime.fromtimestamp(t, UTC)),
                        missing,
                    )
                )
            run_start, missing = t, 0
        else:
            missing += 1
    return gaps


def _import(tmp_path: Path, name: str, location: str, **kw: object) -> RecordingMeta:
    out = tmp_path / (Path(name).stem + f"_{location}.csv.gz")
    sel = Selection(
        location=location,
        **{
            k: v
            for k, v in kw.items()  # type: ignore[arg-type]
            if k in ("iso", "market", "column", "timezone")
        },
    )
    req = ImportRequest(
        source=FIXTURES / name if "/" not in name else Path(name),
        out=out,
        selection=sel,
        **{
            k: v
            for k, v in kw.items()  # type: ignore[arg-type]
            if k in ("currency", "on_repeat", "interval_s")
        },
    )
    report = run_import(req)
    return report.meta


# (fixture, --location, source column, ISO, currency, market kind, interval)
TABLE = [
    (SPP, "spp_south_hub", "spp_south_hub", "SPP", "USD", "real-time", 300),
    (SPP, "SPP North Hub", "spp_north_hub", "SPP", "USD", "real-time", 300),
    (US, "miso_illinois_hub", "miso_illinois_hub", "MISO", "USD", "real-time", 3600),
    (US, "nyiso_j_nyc", "nyiso_j_nyc", "NYISO", "USD", "real-time", 3600),
    (US, "isone_internal_hub", "isone_internal_hub", "ISONE", "USD", "real-time", 3600),
    (DE_LU, "DE-LU", "de_lu_eur_per_mwh", "SDAC", "EUR", "day-ahead", 3600),
    (NORDIC, "SE1", "se1_eur_per_mwh", "SDAC", "EUR", "day-ahead", 3600),
    (NORDIC, "dk1", "dk1_eur_per_mwh", "SDAC", "EUR", "day-ahead", 3600),
    (EIA, "Illinois Hub", "Illinois Hub LMP", "MISO", "USD", "real-time", 3600),
]


@pytest.mark.parametrize(("name", "location", "column", "iso", "ccy", "kind", "interval"), TABLE)
def test_import_matches_the_source(
    tmp_path: Path,
    name: str,
    location: str,
    column: str,
    iso: str,
    ccy: str,
    kind: str,
    interval: int,
) -> None:
    meta = _import(tmp_path, name, location)
    out = tmp_path / (Path(name).stem + f"_{location}.csv.gz")
    expected = _reference(name, column)
    assert (meta.iso, meta.currency, meta.market, meta.interval_s) == (iso, ccy, kind, interval)
    # The recording loads through the replay's loader, in the currency its header names.
    rec = load_recording(out, price_column(ccy))
    assert len(rec) == meta.rows == len(expected)
    written = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert written[0] == f"timestamp,{price_column(ccy)}"
    assert written[1] == ",".join(expected[0])
    assert written[-1] == ",".join(expected[-1])
    assert [_z(datetime.fromtimestamp(t, UTC)) for t in rec.times] == [t for t, _ in expected]
    np.testing.assert_array_equal(rec.values, [float(v) for _, v in expected])
    gaps = _reference_gaps([t for t, _ in expected], interval)
    assert [(g.after, g.before, g.missing) for g in meta.gaps] == gaps
    assert meta.missing_intervals == sum(g[2] for g in gaps)
    assert read_meta(out) == meta


def test_the_fixtures_have_gaps_to_find() -> None:
    """The table is only worth something if the slices contain gaps: EIA's February hole."""
    spp = _reference(SPP, "spp_south_hub")
    assert max(g[2] for g in _reference_gaps([t for t, _ in spp], 300)) > 6000
    assert _reference_gaps([t for t, _ in _reference(EIA, "Illinois Hub LMP")], 3600)


# The packaged recordings against the figures their SOURCE notes state (rows, window, missing
# intervals of the original files in ../shared/data/markets/).
PACKAGED = [
    (
        "spp_south_hub_rtm_lmp_5min_2023-12_2024-12.csv.gz",
        "USD",
        98_119,
        7_217,
        "2023-12-06T05:00:00Z",
        "2024-12-05T22:55:00Z",
    ),
    (
        "miso_illinois_hub_rtm_lmp_hourly_2023-12_2024-12.csv.gz",
        "USD",
        None,
        382,
        "2023-12-06T05:00:00Z",
        "2024-12-05T22:00:00Z",
    ),
    (
        "nyiso_j_nyc_rtm_lmp_hourly_2023-12_2024-12.csv.gz",
        "USD",
        None,
        579,
        "2023-12-06T05:00:00Z",
        "2024-12-05T22:00:00Z",
    ),
    (
        "isone_internal_hub_rtm_lmp_hourly_2023-12_2024-12.csv.gz",
        "USD",
        None,
        589,
        "2023-12-06T05:00:00Z",
        None,
    ),
    (
        "de_lu_dam_hourly_2024-01_2025-09.csv.gz",
        "EUR",
        15_334,
        0,
        "2024-01-01T00:00:00Z",
        "2025-09-30T21:00:00Z",
    ),
    (
        "se1_dam_hourly_2024-01_2024-10.csv.gz",
        "EUR",
        6_671,
        0,
        "2023-12-31T23:00:00Z",
        "2024-10-04T21:00:00Z",
    ),
]


@pytest.mark.parametrize(("name", "ccy", "rows", "missing", "first", "last"), PACKAGED)
def test_packaged_recordings_match_their_source_notes(
    name: str, ccy: str, rows: int | None, missing: int, first: str, last: str | None
) -> None:
    path = RECORDINGS / name
    rec = load_recording(path, price_column(ccy))
    meta = read_meta(path)
    assert meta is not None
    assert meta.currency == ccy
    times = rec.times.tolist()
    assert _z(datetime.fromtimestamp(times[0], UTC)) == first == meta.first
    if last is not None:
        assert _z(datetime.fromtimestamp(times[-1], UTC)) == last
    if rows is not None:
        assert len(rec) == rows
    gaps = _reference_gaps(times, meta.interval_s)
    assert sum(g[2] for g in gaps) == missing == meta.missing_intervals
    assert len(rec) == meta.rows
    assert (RECORDINGS / name.replace(".csv.gz", ".SOURCE.txt")).is_file()


# --- DST: a gridstatus-shaped export in local time -------------------------------------


def _gridstatus_copy(tmp_path: Path, *, naive: bool, extra: list[list[str]] | None = None) -> Path:
    """The DE-LU slice rewritten as gridstatus writes a frame: local Berlin interval starts.

    Across 2024-10-27 03:00 CEST -> 02:00 CET, so 02:00 appears twice in local time.
    """
    berlin = ZoneInfo("Europe/Berlin")
    out = tmp_path / "gridstatus_de_lu.csv"
    header = [
        "Time",
        "Interval Start",
        "Interval End",
        "Market",
        "Location",
        "Location Type",
        "LMP",
        "Energy",
        "Congestion",
        "Loss",
    ]
    rows = []
    for t, v in _reference(DE_LU, "de_lu_eur_per_mwh"):
        start = datetime.fromisoformat(t).astimezone(berlin)
        end = (datetime.fromisoformat(t) + timedelta(hours=1)).astimezone(berlin)

        def fmt(d: datetime) -> str:
            return d.replace(tzinfo=None).isoformat(sep=" ") if naive else d.isoformat(sep=" ")

        rows.append(
            [fmt(start), fmt(start), fmt(end), "DAY_AHEAD_HOURLY", "DE-LU", "Zone", v, v, "0", "0"]
        )
        rows.append(
            [
                fmt(start),
                fmt(start),
                fmt(end),
                "DAY_AHEAD_HOURLY",
                "FR",
                "Zone",
                "1.5",
                "1.5",
                "0",
                "0",
            ]
        )
    with out.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows + (extra or []))
    return out


@pytest.mark.parametrize("naive", [False, True], ids=["offsets", "naive-local"])
def test_gridstatus_local_times_become_utc_starts_across_dst(tmp_path: Path, naive: bool) -> None:
    src = _gridstatus_copy(tmp_path, naive=naive)
    tz = {"timezone": "Europe/Berlin"} if naive else {}
    meta = _import(tmp_path, str(src), "de-lu", iso="SDAC", **tz)
    assert meta.repeated == ()
    assert meta.gaps == ()
    rec = load_recording(tmp_path / "gridstatus_de_lu_de-lu.csv.gz", "eur_per_mwh")
    expected = _reference(DE_LU, "de_lu_eur_per_mwh")
    assert [_z(datetime.fromtimestamp(t, UTC)) for t in rec.times] == [t for t, _ in expected]
    assert rec.values.tolist() == [float(v) for _, v in expected]
    assert meta.interval_s == 3600
    assert meta.market == "day-ahead"


def test_naive_local_times_need_a_zone_and_a_skipped_hour_is_refused(tmp_path: Path) -> None:
    src = _gridstatus_copy(tmp_path, naive=True)
    with pytest.raises(SourceError, match="pass --timezone"):
        _import(tmp_path, str(src), "DE-LU", iso="SDAC")
    spring = tmp_path / "spring.csv"
    spring.write_text(
        "Interval Start,Interval End,Market,Location,LMP\n"
        "2024-03-31 01:00:00,2024-03-31 03:00:00,DAY_AHEAD_HOURLY,DE-LU,10\n"
        "2024-03-31 02:00:00,2024-03-31 03:00:00,DAY_AHEAD_HOURLY,DE-LU,11\n"
    )
    with pytest.raises(SourceError, match=r"spring.csv:3: 2024-03-31 02:00:00 does not exist"):
        _import(tmp_path, str(spring), "DE-LU", iso="SDAC", timezone="Europe/Berlin")


def test_gridstatus_market_and_location_choice(tmp_path: Path) -> None:
    rt = [
        [
            "2024-10-24 02:00:00+02:00",
            "2024-10-24 02:00:00+02:00",
            "2024-10-24 02:15:00+02:00",
            "REAL_TIME_15_MIN",
            "DE-LU",
            "Zone",
            "99",
            "99",
            "0",
            "0",
        ]
    ]
    src = _gridstatus_copy(tmp_path, naive=False, extra=rt)
    with pytest.raises(
        SourceError, match="choose --market; the file has: DAY_AHEAD_HOURLY, REAL_TIME_15_MIN"
    ):
        _import(tmp_path, str(src), "DE-LU", iso="SDAC")
    meta = _import(tmp_path, str(src), "DE-LU", iso="SDAC", market="day-ahead")
    assert meta.rows == len(_reference(DE_LU, "de_lu_eur_per_mwh"))
    with pytest.raises(
        SourceError,
        match=r"conflicting market kinds \(market REAL_TIME_15_MIN: "
        r"real-time; SDAC is a day-ahead market: day-ahead\)",
    ):
        _import(tmp_path, str(src), "DE-LU", iso="SDAC", market="REAL_TIME_15_MIN")
    with pytest.raises(
        SourceError, match=r"no location 'AT' in gridstatus_de_lu\.csv; known: DE-LU, FR"
    ):
        _import(tmp_path, str(src), "AT", iso="SDAC", market="day-ahead")


# --- Repeated and missing intervals: reported, never filled -------------------------------


def _edited(tmp_path: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    lines = (FIXTURES / DE_LU).read_text().splitlines()
    out = tmp_path / DE_LU
    out.write_text("\n".join(edit(lines)) + "\n")
    return out


def test_a_missing_hour_is_reported_not_filled(tmp_path: Path) -> None:
    src = _edited(tmp_path, lambda ls: ls[:50] + ls[51:])  # drop data row 50
    meta = _import(tmp_path, str(src), "DE-LU")
    full = _reference(DE_LU, "de_lu_eur_per_mwh")
    assert meta.rows == len(full) - 1
    assert [(g.after, g.before, g.missing) for g in meta.gaps] == [(full[48][0], full[50][0], 1)]
    rec = load_recording(tmp_path / (Path(DE_LU).stem + "_DE-LU.csv.gz"), "eur_per_mwh")
    assert full[49][0] not in {_z(datetime.fromtimestamp(t, UTC)) for t in rec.times}


def test_a_repeated_hour_is_reported(tmp_path: Path) -> None:
    full = _reference(DE_LU, "de_lu_eur_per_mwh")
    same = _edited(tmp_path, lambda ls: [*ls[:31], ls[30], *ls[31:]])  # row 30 twice, same
    meta = _import(tmp_path, str(same), "DE-LU")
    assert meta.repeated == (full[29][0],)
    assert meta.rows == len(full)
    assert meta.gaps == ()

    def other_price(ls: list[str]) -> list[str]:
        return [*ls[:31], ls[30].split(",")[0] + ",123.45", *ls[31:]]

    differing = _edited(tmp_path, other_price)
    with pytest.raises(
        SourceError,
        match=f"interval {full[29][0]} appears twice with "
        f"different prices \\({full[29][1]} and 123.45\\)",
    ):
        _import(tmp_path, str(differing), "DE-LU")
    meta = _import(tmp_path, str(differing), "DE-LU", on_repeat="last")
    assert meta.repeated == (full[29][0],)
    rec = load_recording(tmp_path / (Path(DE_LU).stem + "_DE-LU.csv.gz"), "eur_per_mwh")
    assert 123.45 in rec.values.tolist()
    assert float(full[29][1]) not in rec.values.tolist()[29:30]


# --- Bad input: one line, exit 2, naming what is known ------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["recordings", "import", "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_unknown_iso_and_location_name_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.csv")
    code, _, err = _cli(
        capsys, str(FIXTURES / US), "--location", "nyiso_j_nyc", "--iso", "NEISO", "--out", out
    )
    assert code == 2
    assert err == (
        "hashspark: error: --iso: unknown ISO 'NEISO'; known: CAISO, ERCOT, ISONE, "
        "MISO, NYISO, PJM, SPP, SDAC\n"
    )
    code, _, err = _cli(capsys, str(FIXTURES / US), "--location", "nyiso_zone_j", "--out", out)
    assert code == 2
    assert err.count("\n") == 1
    assert (
        "known: isone_internal_hub, miso_illinois_hub, miso_texas_hub, nyiso_j_nyc, "
        "nyiso_k_long_island"
    ) in err
    code, stdout, _ = _cli(capsys, str(FIXTURES / US), "--location", "nyiso_j_nyc", "--out", out)
    assert code == 0
    assert "NYISO nyiso_j_nyc" in stdout
    assert "missing intervals" in stdout


def test_eur_labelled_usd_is_caught_at_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.csv")
    code, _, err = _cli(
        capsys, str(FIXTURES / NORDIC), "--location", "SE1", "--currency", "USD", "--out", out
    )
    assert code == 2
    assert "--currency USD, but" in err
    assert "se1_eur_per_mwh says EUR/MWh" in err
    # A header without a currency: the SOURCE note beside the export says EUR.
    src = tmp_path / "prices.csv"
    shutil.copy(FIXTURES / US, src)
    (tmp_path / "prices.SOURCE.txt").write_text("Real-time hub prices.\nUnits: EUR/MWh.\n")
    code, _, err = _cli(
        capsys, str(src), "--location", "miso_illinois_hub", "--currency", "USD", "--out", out
    )
    assert (code, err) == (
        2,
        "hashspark: error: --currency USD, but prices.SOURCE.txt:2 says EUR/MWh\n",
    )


def _canonical(tmp_path: Path, header: str) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(f"timestamp,{header}\n2024-01-01T00:00:00Z,10\n2024-01-01T01:00:00Z,11\n")
    return path


def test_eur_labelled_usd_is_caught_at_load(tmp_path: Path) -> None:
    path = _canonical(tmp_path, "usd_per_mwh")
    assert len(load_recording(path, "usd_per_mwh")) == 2  # no notes: the header is the label
    note = tmp_path / "prices.SOURCE.txt"
    note.write_text("Day-ahead prices from the exchange.\nResolution: hourly. Units: EUR/MWh.\n")
    with pytest.raises(
        RecordingError,
        match=r"header says USD \(usd_per_mwh\) but "
        r"prices.SOURCE.txt:2 says EUR/MWh",
    ):
        load_recording(path, "usd_per_mwh")
    note.unlink()
    eur = _import(tmp_path, DE_LU, "DE-LU")
    (tmp_path / "prices.meta.json").write_text(
        (tmp_path / (Path(DE_LU).stem + "_DE-LU.meta.json")).read_text()
    )
    assert eur.currency == "EUR"
    with pytest.raises(RecordingError, match=r"header says USD .* prices\.meta\.json says EUR/MWh"):
        load_recording(path, "usd_per_mwh")
    with pytest.raises(RecordingError, match=r"prices in EUR \(eur_per_mwh\), expected USD"):
        load_recording(_canonical(tmp_path / "..", "eur_per_mwh"), "usd_per_mwh")


def test_gzip_recordings_load_like_plain_ones(tmp_path: Path) -> None:
    plain = _canonical(tmp_path, "usd_per_mwh")
    packed = tmp_path / "packed.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_recording(plain, "usd_per_mwh"), load_recording(packed, "usd_per_mwh")
    assert a.times.tolist() == b.times.tolist()
    assert a.values.tolist() == b.values.tolist()
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:30])
    with pytest.raises(RecordingError, match="not a readable gzip file"):
        load_recording(broken, "usd_per_mwh")


def test_parquet_needs_pyarrow_or_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "lmp.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        src.write_bytes(b"PAR1")
        code, _, err = _cli(capsys, str(src), "--location", "X", "--out", str(tmp_path / "x.csv"))
        assert code == 2
        assert err == (
            f"hashspark: error: {src}: reading Parquet needs pyarrow "
            "(pip install pyarrow), or export to CSV\n"
        )
        return
    pa = importlib.import_module("pyarrow")  # only where it is installed
    pq = importlib.import_module("pyarrow.parquet")

    csv_src = _gridstatus_copy(tmp_path, naive=False)
    with csv_src.open(newline="") as f:
        rows = list(csv.DictReader(f))
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), src)
    meta = _import(tmp_path, str(src), "DE-LU", iso="SDAC")
    assert meta.rows == len(_reference(DE_LU, "de_lu_eur_per_mwh"))


def test_progress_is_reported_to_the_end(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    req = ImportRequest(
        source=FIXTURES / SPP,
        out=tmp_path / "spp.csv",
        selection=Selection(location="spp_south_hub"),
    )
    run_import(req, lambda done, total: seen.append((done, total)))
    assert len(seen) >= 9
    assert seen[-1][0] == seen[-1][1] == (FIXTURES / SPP).stat().st_size


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--out", "{tmp}/x.csv"], "missing.csv: no such file"),
        ([f"{FIXTURES / 'README.md'}", "--out", "{tmp}/x.csv"], "not a known export shape"),
        (
            [f"{FIXTURES / US}", "--location", "nyiso_j_nyc", "--out", "{tmp}/x.txt"],
            "must end in .csv or .csv.gz",
        ),
        ([f"{FIXTURES / US}", "--out", "{tmp}/x.csv"], "choose --location; the file has: "),
        (
            [
                f"{FIXTURES / US}",
                "--location",
                "nyiso_j_nyc",
                "--interval",
                "5min",
                "--out",
                "{tmp}/x.csv",
            ],
            "--interval 300 s, but",
        ),
        (
            [
                f"{FIXTURES / US}",
                "--location",
                "nyiso_j_nyc",
                "--market",
                "day-ahead",
                "--out",
                "{tmp}/x.csv",
            ],
            "--market day-ahead, but",
        ),
        (
            [f"{FIXTURES / US}", "--location", "nyiso_j_nyc", "--out", f"{FIXTURES / US}"],
            "would overwrite the export or its note",
        ),
    ],
    ids=["no-file", "not-an-export", "bad-out", "no-location", "interval", "market", "overwrite"],
)
def test_cli_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _cli(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert code == 2
    assert out == ""
    assert err.startswith("hashspark: error: ")
    assert err.count("\n") == 1
    assert message in err
    assert not list(tmp_path.iterdir())  # nothing written
