"""``hashspark recordings import``: a market export into a canonical price recording.

The result is ``NAME.csv`` or ``NAME.csv.gz`` (``timestamp,<ccy>_per_mwh``, UTC interval
starts, values verbatim), ``NAME.meta.json`` (currency, market kind, interval, ISO, location,
gaps) and ``NAME.SOURCE.txt`` (how it was made, then the export's own SOURCE note). Gaps,
empty cells and repeated intervals are reported and recorded in the sidecar, never filled:
a row the export does not have is not invented, and two different prices for one interval
stop the import unless ``--on-repeat`` says which one to keep.

Over 300 lines: resolving currency, market kind and interval against what the file says,
then the gap and repeat analysis and the three files written, one pass over one series.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from adapters.recordings.meta import (
    CURRENCIES,
    Gap,
    MarketKind,
    RecordingMeta,
    base_path,
    meta_path,
    price_column,
    source_note_currency,
    source_path,
    write_meta,
)
from adapters.recordings.sources import (
    KNOWN_ISOS,
    US_ISOS,
    Progress,
    RawSeries,
    Selection,
    SourceError,
    check_iso,
    normalise,
    read_source,
    typical_step,
)

OnRepeat = Literal["error", "first", "last"]
MAX_ABS_PRICE = 1e6  # the canonical loader's bound


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """What the command line asked for."""

    source: Path
    out: Path
    selection: Selection
    currency: str | None = None
    market: MarketKind | None = None
    interval_s: int | None = None
    on_repeat: OnRepeat = "error"
    source_note: Path | None = None


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import found and wrote."""

    meta: RecordingMeta
    shape: str
    value_column: str
    first_value: str
    last_value: str
    empty_cells: int
    irregular_steps: int
    files: tuple[Path, ...]

    def lines(self) -> list[str]:
        """The command's summary, one fact a line."""
        m = self.meta
        gaps = f"{len(m.gaps)} gaps, {m.missing_intervals:,} missing intervals"
        if m.gaps:
            big = max(m.gaps, key=lambda g: g.missing)
            gaps += f" (largest {big.missing:,} after {big.after})"
        return [
            f"recording  {m.iso} {m.location} ({self.shape} export, column {self.value_column}): "
            f"{m.market}, {m.interval_s} s intervals, {m.currency}/MWh",
            f"rows       {m.rows:,}: first {m.first} {self.first_value}, "
            f"last {m.last} {self.last_value}",
            f"gaps       {gaps if m.gaps else 'none'}; not filled",
            f"empty      {self.empty_cells:,} rows without a value (left out)",
            f"repeated   {len(m.repeated)}" + (f" (first {m.repeated[0]})" if m.repeated else ""),
            f"irregular  {self.irregular_steps} steps not a whole number of intervals",
            *(f"note       {n}" for n in m.notes),
            "wrote      " + ", ".join(str(f) for f in self.files),
        ]


def iso_z(t: float) -> str:
    """Epoch seconds as ``2024-01-01T00:00:00Z``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_import(req: ImportRequest, progress: Progress | None = None) -> ImportReport:
    """Read, check and write; raise ``SourceError`` (one line) on anything to fix."""
    sel = replace(req.selection, iso=check_iso(req.selection.iso))
    note = req.source_note or source_path(req.source)
    _check_out(req, note)
    raw = read_source(req.source, sel, progress)
    iso = raw.iso or sel.iso
    if iso is None:
        raise SourceError(
            f"--iso: {req.source.name} does not say its ISO; known: {', '.join(KNOWN_ISOS)}"
        )
    currency = _currency(req, raw, iso, note)
    market = _market_kind(req, raw, iso, note)
    rows, empty = _values(req.source, raw)
    if not rows:
        raise SourceError(f"{req.source}: no prices for {raw.location}")
    rows, repeated = _dedupe(req.source, rows, req.on_repeat)
    interval = _interval(req, raw, [t for t, _ in rows])
    gaps, irregular = _gaps([t for t, _ in rows], interval)
    notes = _empty_notes(raw, rows[0][0], rows[-1][0], empty)
    meta = RecordingMeta(
        currency=currency,
        market=market,
        interval_s=interval,
        iso=iso,
        location=raw.location,
        rows=len(rows),
        first=iso_z(rows[0][0]),
        last=iso_z(rows[-1][0]),
        source_file=req.source.name,
        missing_intervals=sum(g.missing for g in gaps),
        gaps=tuple(gaps),
        repeated=tuple(repeated),
        notes=tuple(notes),
    )
    files = _write(req, meta, rows, raw, note)
    return ImportReport(
        meta, raw.shape, raw.value_column, rows[0][1], rows[-1][1], empty, irregular, files
    )


def _currency(req: ImportRequest, raw: RawSeries, iso: str, note: Path) -> str:
    said: list[tuple[str, str]] = []
    if raw.currency_hint is not None:
        said.append(raw.currency_hint)
    stated = source_note_currency(note)
    if stated is not None:
        said.append((stated[0], f"{note.name}:{stated[1]}"))
    for (a, where_a), (b, where_b) in itertools.pairwise(said):
        if a != b:
            raise SourceError(f"{where_a} says {a}/MWh but {where_b} says {b}/MWh")
    if req.currency is not None:
        currency = req.currency.upper()
        if currency not in CURRENCIES:
            raise SourceError(
                f"--currency: unknown {req.currency!r}; known: {', '.join(CURRENCIES)}"
            )
        for ccy, where in said:
            if ccy != currency:
                raise SourceError(f"--currency {currency}, but {where} says {ccy}/MWh")
        return currency
    if said:
        return said[0][0]
    if iso in US_ISOS:
        return "USD"
    if iso == "SDAC":  # the single day-ahead coupling clears in EUR
        return "EUR"
    raise SourceError(
        f"--currency: {req.source.name} does not say its currency; give it "
        f"(one of {', '.join(CURRENCIES)})"
    )


_KIND_WORDS = {
    "day-ahead": re.compile(r"day[- _]?ahead|\bdam\b|\bda\b", re.IGNORECASE),
    "real-time": re.compile(r"real[- _]?time|\brtm\b|\brt\b", re.IGNORECASE),
}


def _market_kind(req: ImportRequest, raw: RawSeries, iso: str, note: Path) -> MarketKind:
    said: list[tuple[MarketKind, str]] = []
    if raw.market_label:
        label = raw.market_label.upper()
        kind: MarketKind = "day-ahead" if label.startswith("DAY_AHEAD") else "real-time"
        said.append((kind, f"market {raw.market_label}"))
    elif raw.kind_hint is not None:
        said.append(raw.kind_hint)  # type: ignore[arg-type]
    else:
        name_words = req.source.name.replace("_", " ").replace(".", " ")
        for where, text in ((req.source.name, name_words), (note.name, _read(note))):
            hits = [k for k, rx in _KIND_WORDS.items() if rx.search(text)]
            if len(hits) == 1:
                said.append((hits[0], where))  # type: ignore[arg-type]
    if iso == "SDAC":
        said.append(("day-ahead", "SDAC is a day-ahead market"))
    if req.market is not None:
        for kind, where in said:
            if kind != req.market:
                raise SourceError(f"--market {req.market}, but {where} says {kind}")
        return req.market
    kinds = {k for k, _ in said}
    if len(kinds) == 1:
        return said[0][0]
    if len(kinds) > 1:
        told = "; ".join(f"{w}: {k}" for k, w in said)
        raise SourceError(
            f"{req.source.name}: conflicting market kinds ({told}); check --iso and --market"
        )
    raise SourceError(f"--market: {req.source.name} does not say real-time or day-ahead; give it")


def _empty_notes(raw: RawSeries, first: float, last: float, empty: int) -> list[str]:
    """Where the export's empty cells were: before the first price, after the last, inside."""
    if not empty:
        return []
    before = sum(1 for t, v in zip(raw.times, raw.values, strict=True) if not v and t < first)
    after = sum(1 for t, v in zip(raw.times, raw.values, strict=True) if not v and t > last)
    return [
        f"{empty} rows of the export have no value for {raw.location}, left out: {before} "
        f"before the first price, {after} after the last, {empty - before - after} inside "
        "the gaps"
    ]


def _read(note: Path) -> str:
    try:
        return note.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _values(path: Path, raw: RawSeries) -> tuple[list[tuple[float, str]], int]:
    rows: list[tuple[float, str]] = []
    empty = 0
    for t, text, line in zip(raw.times, raw.values, raw.lines, strict=True):
        if not text or text.lower() in ("nan", "n/e", "-"):
            empty += 1
            continue
        try:
            value = float(text)
        except ValueError:
            raise SourceError(f"{path}:{line}: price is not a number") from None
        if not math.isfinite(value) or abs(value) > MAX_ABS_PRICE:
            raise SourceError(f"{path}:{line}: price not finite or beyond +-{MAX_ABS_PRICE:g}")
        rows.append((t, text))
    rows.sort(key=lambda r: r[0])  # stable: repeated intervals keep their file order
    return rows, empty


def _dedupe(
    path: Path, rows: list[tuple[float, str]], on_repeat: OnRepeat
) -> tuple[list[tuple[float, str]], list[str]]:
    kept: list[tuple[float, str]] = []
    repeated: list[str] = []
    for t, text in rows:
        if kept and kept[-1][0] == t:
            repeated.append(iso_z(t))
            if float(kept[-1][1]) != float(text):
                if on_repeat == "error":
                    raise SourceError(
                        f"{path}: interval {iso_z(t)} appears twice with different prices "
                        f"({kept[-1][1]} and {text}); choose --on-repeat first or last"
                    )
                if on_repeat == "last":
                    kept[-1] = (t, text)
            continue
        kept.append((t, text))
    return kept, repeated


def _interval(req: ImportRequest, raw: RawSeries, times: list[float]) -> int:
    found = raw.interval_s or typical_step(times)
    if req.interval_s is not None:
        if found is not None and found != req.interval_s:
            raise SourceError(
                f"--interval {req.interval_s} s, but {req.source.name} has {found} s intervals"
            )
        return req.interval_s
    if found is None:
        raise SourceError(f"--interval: one row only in {req.source.name}; give its length")
    return found


def _gaps(times: list[float], interval: int) -> tuple[list[Gap], int]:
    gaps: list[Gap] = []
    irregular = 0
    for a, b in itertools.pairwise(times):
        step = b - a
        if step % interval:
            irregular += 1
        if step > interval:
            gaps.append(Gap(iso_z(a), iso_z(b), int(step // interval) - 1 + bool(step % interval)))
    return gaps, irregular


def _check_out(req: ImportRequest, note: Path) -> None:
    """Before reading anything: a usable ``--out`` that overwrites neither input."""
    out = req.out
    if not (out.name.endswith(".csv") or out.name.endswith(".csv.gz")):
        raise SourceError(f"--out: {out} must end in .csv or .csv.gz")
    inputs = {req.source.resolve(), note.resolve()}
    for target in (out, meta_path(out), source_path(out)):
        if target.resolve() in inputs:
            raise SourceError(f"--out: writing {target} would overwrite the export or its note")


def _write(
    req: ImportRequest,
    meta: RecordingMeta,
    rows: list[tuple[float, str]],
    raw: RawSeries,
    note: Path,
) -> tuple[Path, ...]:
    out = req.out
    out.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    text.write(f"timestamp,{price_column(meta.currency)}\n")
    for t, value in rows:
        text.write(f"{iso_z(t)},{value}\n")
    data = text.getvalue().encode("utf-8")
    if out.name.endswith(".gz"):  # reproducible: no name, no time in the gzip header
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
            gz.write(data)
        data = buffer.getvalue()
    out.write_bytes(data)
    sidecar = write_meta(out, meta)
    source = source_path(out)
    preamble = (
        f"Imported with `hashspark recordings import` from {req.source.name} ({raw.shape} "
        f"export): {meta.iso} {meta.location}, column {raw.value_column}"
        + (f", market {raw.market_label}" if raw.market_label else "")
        + f"; {meta.market}, {meta.interval_s} s intervals, UTC interval starts; values "
        f"verbatim; {meta.rows} rows {meta.first} .. {meta.last}; "
        f"{meta.missing_intervals} missing intervals in {len(meta.gaps)} gaps and "
        f"{len(meta.repeated)} repeated intervals, none filled (listed in "
        f"{meta_path(out).name}).\nUnits: {meta.currency}/MWh.\n"
    )
    original = _read(note)
    if original:
        preamble += f"\nSource note of the original file ({note.name}):\n{original}"
    source.write_text(preamble, encoding="utf-8")
    return out, sidecar, source


__all__ = ["ImportReport", "ImportRequest", "SourceError", "base_path", "normalise", "run_import"]
