"""Reading market price exports: gridstatus frames (CSV or Parquet) and the EIA shapes.

Three shapes, told apart by their header:

- **gridstatus** (long): ``Time``/``Interval Start``/``Interval End``, ``Location``,
  ``Market`` and the price (``LMP`` with ``Energy``/``Congestion``/``Loss``, or ``SPP``), one
  row per location and interval, as ``gridstatus`` returns and ``DataFrame.to_csv`` writes.
- **wide**: ``timestamp`` (UTC interval start) and one column per location, as the market
  recordings in the project's shared data folder (``spp_north_hub``, ``de_lu_eur_per_mwh``).
- **EIA**: the U.S. EIA Wholesale Electricity Market download, a few title lines, then
  ``UTC Timestamp (Interval Ending)``, local stamps, and ``<Hub> LMP`` columns.

Only the chosen location's rows are kept; times become UTC interval starts. Naive local times
need a time zone: the repeated hour of a DST fall-back is told apart by order (first the
summer-time hour, then the winter-time one) and an hour that does not exist is refused.

Over 300 lines: three export shapes, each with its own header and time rules, and the
DST-correct clock they share.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from adapters.recordings.meta import column_currency

#: The markets an import may be labelled with: the U.S. ISOs gridstatus covers, and the
#: European single day-ahead coupling (its locations are bidding zones: DE-LU, SE1, ...).
KNOWN_ISOS = ("CAISO", "ERCOT", "ISONE", "MISO", "NYISO", "PJM", "SPP", "SDAC")
US_ISOS = frozenset(KNOWN_ISOS[:-1])
_SDAC_ZONES = frozenset(
    ["de_lu", "at", "fr", "nl", "be", "fi", "dk1", "dk2", "pl", "ch"]
    + [f"no{i}" for i in range(1, 6)]
    + [f"se{i}" for i in range(1, 5)]
)
_ISO_PREFIX = {
    "miso": "MISO",
    "nyiso": "NYISO",
    "isone": "ISONE",
    "spp": "SPP",
    "ercot": "ERCOT",
    "pjm": "PJM",
    "caiso": "CAISO",
}
_PRICE_COLUMNS = ("LMP", "SPP", "Price")
_EIA_UTC_END = "UTC Timestamp (Interval Ending)"
_PREAMBLE_LINES = 10

Progress = Callable[[int, int], None]  # (bytes read, total bytes; 0 if unknown)


class SourceError(ValueError):
    """An export that cannot be imported as asked: file, line and the reason."""


@dataclass(slots=True)
class RawSeries:
    """One location's rows from an export, in file order, times already UTC interval starts."""

    shape: str
    location: str
    value_column: str
    times: list[float] = field(default_factory=list)
    values: list[str] = field(default_factory=list)  # verbatim text; "" where empty
    lines: list[int] = field(default_factory=list)
    iso: str | None = None
    market_label: str | None = None
    interval_s: int | None = None
    currency_hint: tuple[str, str] | None = None  # (currency, where the file says so)
    kind_hint: tuple[str, str] | None = None  # (real-time or day-ahead, where it says so)


@dataclass(frozen=True, slots=True)
class Selection:
    """What to take from an export."""

    location: str | None = None
    iso: str | None = None
    market: str | None = None  # a gridstatus Market value, or a kind (real-time, day-ahead)
    column: str | None = None  # the price column (gridstatus: LMP, Energy, Congestion, ...)
    timezone: str | None = None  # for naive local times


def normalise(name: str) -> str:
    """``DE-LU`` -> ``de_lu``; ``N.Y.C.`` -> ``n_y_c``: how location names are matched."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def check_iso(iso: str | None) -> str | None:
    """The ISO in its known spelling; an unknown one names the known ones."""
    if iso is None:
        return None
    key = normalise(iso).replace("_", "")
    for known in KNOWN_ISOS:
        if known.lower() == key:
            return known
    raise SourceError(f"--iso: unknown ISO {iso!r}; known: {', '.join(KNOWN_ISOS)}")


def _names(items: Iterable[str], limit: int = 40) -> str:
    items = sorted(set(items))
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class _Lines:
    """Decoded lines of a (possibly gzipped) file, counting bytes for progress."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self.path = path
        self.progress = progress
        self.total = path.stat().st_size
        self.done = 0
        self._next_report = self.total // 10

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as raw:
            is_gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if is_gz else raw
            for number, line in enumerate(stream, start=1):
                try:
                    text = line.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise SourceError(f"{self.path}:{number}: not UTF-8 text") from None
                if self.progress is not None:
                    self.done = raw.tell()
                    if self.done >= self._next_report:
                        self.progress(self.done, self.total)
                        self._next_report += max(self.total // 10, 1)
                yield text


def read_source(path: Path, sel: Selection, progress: Progress | None = None) -> RawSeries:
    """The chosen location's rows from a CSV (optionally gzipped) or Parquet export."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _gridstatus(path, _parquet_rows(path), sel, first_line=2)
    reader = csv.reader(_Lines(path, progress))
    preamble: list[str] = []
    try:
        for header in reader:
            cells = [c.strip() for c in header]
            if "Location" in cells and ("Interval Start" in cells or "Time" in cells):
                return _gridstatus(path, _with_lines(reader, cells), sel, reader.line_num + 1)
            if cells and cells[0] == "timestamp":
                return _wide(path, reader, cells, sel)
            if _EIA_UTC_END in cells:
                return _eia(path, reader, cells, " ".join(preamble), sel)
            preamble.append(",".join(cells))
            if len(preamble) >= _PREAMBLE_LINES:
                break
    except csv.Error as exc:
        raise SourceError(f"{path}:{reader.line_num}: not CSV ({str(exc)[:60]})") from None
    raise SourceError(
        f"{path}: not a known export shape (expected a gridstatus header with Location and "
        "Interval Start, a wide 'timestamp,...' header, or an EIA wholesale-market download)"
    )


def _with_lines(reader: Iterator[list[str]], header: list[str]) -> Iterator[list[str]]:
    yield header
    yield from reader


def _parquet_rows(path: Path) -> Iterator[list[str]]:
    try:
        # Optional and not a dependency of hashspark: imported by name so that a site that
        # never imports Parquet does not need it.
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise SourceError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or export to CSV"
        ) from None
    table = pq.read_table(path)
    names = [str(n) for n in table.column_names]
    columns = [table.column(n).to_pylist() for n in names]
    yield names
    for row in zip(*columns, strict=True):
        yield [
            "" if v is None else (v.isoformat() if isinstance(v, datetime) else str(v)) for v in row
        ]


class _Clock:
    """Text -> UTC epoch seconds; naive local times through ``tz``, DST-correct."""

    def __init__(self, path: Path, tz_name: str | None, naive_is_utc: bool = False) -> None:
        self.path = path
        self.tz_name = tz_name
        self.tz: ZoneInfo | None = None
        if tz_name is not None:
            try:
                self.tz = ZoneInfo(tz_name)
            except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
                raise SourceError(f"--timezone: unknown time zone {tz_name!r}") from None
        self.naive_is_utc = naive_is_utc
        self._seen_ambiguous: set[datetime] = set()

    def epoch(self, text: str, line: int) -> float:
        try:
            stamp = datetime.fromisoformat(text.strip())
        except ValueError:
            raise SourceError(f"{self.path}:{line}: time is not ISO-8601") from None
        if stamp.tzinfo is not None:
            return stamp.timestamp()
        if self.naive_is_utc:
            return stamp.replace(tzinfo=UTC).timestamp()
        if self.tz is None:
            raise SourceError(
                f"{self.path}:{line}: time has no zone: pass --timezone (e.g. America/Chicago)"
            )
        early = stamp.replace(tzinfo=self.tz, fold=0)
        if datetime.fromtimestamp(early.timestamp(), self.tz).replace(tzinfo=None) != stamp:
            raise SourceError(
                f"{self.path}:{line}: {stamp.isoformat(sep=' ')} does not exist in "
                f"{self.tz_name} (the DST spring-forward hour)"
            )
        late = stamp.replace(tzinfo=self.tz, fold=1)
        if early.utcoffset() == late.utcoffset():
            return early.timestamp()
        if stamp in self._seen_ambiguous:  # its second occurrence: the winter-time hour
            return late.timestamp()
        self._seen_ambiguous.add(stamp)
        return early.timestamp()


def _pick(
    path: Path,
    wanted: str | None,
    candidates: dict[str, str],
    what: str,
    shown: Iterable[str] | None = None,
) -> str:
    """The candidate ``wanted`` names (matched on normalised names); else name them all."""
    names = _names(candidates.values() if shown is None else shown)
    if wanted is None:
        if len(set(candidates.values())) == 1:
            return next(iter(candidates.values()))
        raise SourceError(f"{path}: choose --{what}; the file has: {names}")
    key = normalise(wanted)
    if key in candidates:
        return candidates[key]
    raise SourceError(f"--{what}: no {what} {wanted!r} in {path.name}; known: {names}")


def _choose_market(path: Path, wanted: str | None, markets: dict[str, str]) -> str:
    """A gridstatus Market value, or the one market of a kind (``real-time``, ``day-ahead``)."""
    prefix = {"real_time": "REAL_TIME", "day_ahead": "DAY_AHEAD"}.get(normalise(wanted or ""))
    if prefix is None:
        return _pick(path, wanted, markets, "market")
    of_kind = {k: v for k, v in markets.items() if v.upper().startswith(prefix)}
    if not of_kind:
        raise SourceError(
            f"--market: no {wanted} market in {path.name}; known: {_names(markets.values())}"
        )
    return _pick(path, None, of_kind, "market")


def _gridstatus(
    path: Path, rows: Iterator[list[str]], sel: Selection, first_line: int
) -> RawSeries:
    header = [c.strip() for c in next(rows)]
    col = {name: i for i, name in enumerate(header)}
    start_col = col.get("Interval Start", col.get("Time"))
    assert start_col is not None  # the shape test saw one of them
    end_col = col.get("Interval End")
    value_name = sel.column or next((c for c in _PRICE_COLUMNS if c in col), None)
    if value_name is None or value_name not in col:
        numeric = [
            h
            for h in header
            if h
            not in ("Time", "Interval Start", "Interval End", "Location", "Location Type", "Market")
        ]
        raise SourceError(
            f"--column: no price column {value_name!r} in {path.name}; known: {_names(numeric)}"
        )
    value_col, loc_col, market_col = col[value_name], col["Location"], col.get("Market")
    # Starts and ends each see a DST fall-back's repeated hour twice, in their own order.
    clock, end_clock = _Clock(path, sel.timezone), _Clock(path, sel.timezone)
    locations: dict[str, str] = {}
    markets: dict[str, str] = {}
    kept: list[tuple[list[str], int]] = []
    wanted_loc = normalise(sel.location) if sel.location else None
    for line, row in enumerate(rows, start=first_line):
        if not row or len(row) != len(header):
            if not row or not any(c.strip() for c in row):
                continue
            raise SourceError(f"{path}:{line}: expected {len(header)} fields, found {len(row)}")
        loc = row[loc_col].strip()
        locations.setdefault(normalise(loc), loc)
        if market_col is not None:
            markets.setdefault(normalise(row[market_col]), row[market_col].strip())
        if wanted_loc is None or normalise(loc) == wanted_loc:
            kept.append((row, line))
    location = _pick(path, sel.location, locations, "location")
    market = None if market_col is None else _choose_market(path, sel.market, markets)
    series = RawSeries("gridstatus", location, value_name, iso=sel.iso, market_label=market)
    widths: set[float] = set()
    for row, line in kept:
        if market_col is not None and row[market_col].strip() != market:
            continue
        start = clock.epoch(row[start_col], line)
        if end_col is not None and row[end_col].strip():
            widths.add(end_clock.epoch(row[end_col], line) - start)
        series.times.append(start)
        series.values.append(row[value_col].strip())
        series.lines.append(line)
    if len(widths) > 1:
        shown = ", ".join(f"{w:g} s" for w in sorted(widths)[:5])
        raise SourceError(f"{path}: intervals of several lengths ({shown}): choose one --market")
    if widths:
        series.interval_s = round(widths.pop())
    return series


def _wide(path: Path, reader: Iterator[list[str]], header: list[str], sel: Selection) -> RawSeries:
    locations: dict[str, str] = {}
    for name in header[1:]:
        key = normalise(_split_wide(name)[0])
        locations[key] = name
        prefix, _, rest = key.partition("_")
        if prefix in _ISO_PREFIX and rest:
            locations.setdefault(rest, name)  # "illinois_hub" for "miso_illinois_hub"
    shown = [_split_wide(name)[0] for name in header[1:]]
    column = _pick(path, sel.location, locations, "location", shown)
    label, ccy = _split_wide(column)
    iso = _ISO_PREFIX.get(normalise(label).partition("_")[0])
    if iso is None and normalise(label) in _SDAC_ZONES:
        iso = "SDAC"
    if sel.iso is not None and iso is not None and sel.iso != iso:
        raise SourceError(f"--iso {sel.iso}: column {column!r} of {path.name} is {iso}")
    series = RawSeries("wide", label, column, iso=iso or sel.iso)
    if ccy is not None:
        series.currency_hint = (ccy, f"{path.name}: header column {column}")
    index = header.index(column)
    clock = _Clock(path, sel.timezone)
    for line, row in _data_rows(path, reader, len(header)):
        series.times.append(clock.epoch(row[0], line))
        series.values.append(row[index].strip())
        series.lines.append(line)
    return series


def _data_rows(
    path: Path, reader: Iterator[list[str]], width: int
) -> Iterator[tuple[int, list[str]]]:
    """A csv reader's rows with their line numbers: blank rows skipped, a row of another
    width than the header's an error naming its line."""
    for row in reader:
        line = reader.line_num  # type: ignore[attr-defined]
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != width:
            raise SourceError(f"{path}:{line}: expected {width} fields, found {len(row)}")
        yield line, row


def _split_wide(name: str) -> tuple[str, str | None]:
    """``de_lu_eur_per_mwh`` -> (``de_lu``, ``EUR``); ``spp_south_hub`` -> (itself, None)."""
    m = re.match(r"^(.+)_([a-z]{3}_per_mwh)$", name.strip())
    if m is None:
        return name.strip(), None
    return m.group(1), column_currency(m.group(2))


def _eia(
    path: Path, reader: Iterator[list[str]], header: list[str], title: str, sel: Selection
) -> RawSeries:
    component = sel.column or "LMP"
    suffix = f" {component}" if component.upper() in ("LMP", "LBMP") else f" ({component})"
    locations = {normalise(h[: -len(suffix)]): h for h in header if h.endswith(suffix)}
    if not locations:
        raise SourceError(f"--column: no {component!r} columns in {path.name}")
    column = _pick(path, sel.location, locations, "location")
    series = RawSeries("eia", column[: -len(suffix)], column, iso=sel.iso)
    m = re.search(r"EIA collected from ([A-Za-z-]+)", title)
    if m and series.iso is None:
        series.iso = check_iso(m.group(1))
    for kind, word in (("real-time", "Real-Time"), ("day-ahead", "Day-Ahead")):
        if word.lower() in title.lower():
            series.kind_hint = (kind, f"{path.name}: title '{word}'")
    if "($/megawatt" in title:
        series.currency_hint = ("USD", f"{path.name}: title '($/megawatt...)'")
    end_i, value_i = header.index(_EIA_UTC_END), header.index(column)
    clock = _Clock(path, None, naive_is_utc=True)
    for line, row in _data_rows(path, reader, len(header)):
        series.times.append(clock.epoch(row[end_i], line))  # interval END for now
        series.values.append(row[value_i].strip())
        series.lines.append(line)
    width = typical_step(series.times)
    if width is None:
        raise SourceError(f"{path}: too few rows to tell the interval length")
    series.interval_s = width
    series.times = [t - width for t in series.times]  # EIA stamps the interval's end
    return series


def typical_step(times: list[float]) -> int | None:
    """The most common positive step between consecutive times, in seconds."""
    counts: dict[float, int] = {}
    for a, b in itertools.pairwise(times):
        if b > a:
            counts[b - a] = counts.get(b - a, 0) + 1
    if not counts:
        return None
    return round(max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0])
