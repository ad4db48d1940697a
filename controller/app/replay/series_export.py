"""Each compared book's cash flows as series, CSV and JSON, for tools beyond this report.

Per book, under ``series/`` beside the report: ``<book>.intervals.csv`` (every interval:
its span, the prices that held, the load, and every settlement component and instrument
flow), ``<book>.daily.csv`` (the same components summed per UTC day of each interval's
start, with the day's hours) and ``<book>.json`` (both, as columns). The columns follow the
settlement's components, so a component added there is exported without a change here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.accounting.capital import DAY_S
from controller.app.replay.compare import StrategyResult
from controller.domain import iso
from controller.records import IntervalTable

SERIES_DIR = "series"


@dataclass(frozen=True, slots=True)
class SeriesFiles:
    """One book's exported files, relative to the report directory."""

    intervals_csv: str
    daily_csv: str
    json: str

    def as_dict(self) -> dict[str, str]:
        """Where comparison.json points for this book's series."""
        return {"intervals_csv": self.intervals_csv, "daily_csv": self.daily_csv, "json": self.json}


def _iso(epoch_s: np.ndarray) -> list[str]:
    """Epoch seconds as ISO-8601 UTC with a Z, whole seconds (vectorised ``iso``)."""
    stamps = np.datetime_as_string(np.floor(epoch_s).astype("datetime64[s]"), unit="s")
    return [f"{x}Z" for x in stamps]


def interval_columns(table: IntervalTable) -> dict[str, list[Any]]:
    """Every interval's span, inputs, load and flows, as named columns."""
    t, s = table.inputs, table.settlement
    cols: dict[str, list[Any]] = {
        "start": _iso(t.start),
        "end": _iso(t.end),
        "hours": t.dt_h.tolist(),
        "price_usd_per_mwh": t.price_usd_per_mwh.tolist(),
        "hashprice_usd_per_ph_day": t.hashprice_usd_per_ph_day.tolist(),
        "running_mw": t.running_mw.tolist(),
        "running_ph": t.running_ph.tolist(),
    }
    for name in s.component_names():
        cols[name] = np.asarray(getattr(s, name), dtype=np.float64).tolist()
    for instrument, component, usd in s.by_instrument:
        cols[f"{instrument}.{component}"] = usd.tolist()
    return cols


def daily_columns(table: IntervalTable) -> dict[str, list[Any]]:
    """The settlement's components (and instrument flows) summed per UTC day."""
    t, s = table.inputs, table.settlement
    day = np.floor(t.start / DAY_S).astype(np.int64)
    days, inverse = np.unique(day, return_inverse=True)

    def by_day(values: np.ndarray) -> list[float]:
        sums = np.bincount(inverse, weights=np.asarray(values, np.float64), minlength=days.size)
        return [float(x) for x in sums]

    cols: dict[str, list[Any]] = {
        "date": [str(np.datetime64(int(d), "D")) for d in days],
        "intervals": [int(n) for n in np.bincount(inverse, minlength=days.size)],
        "hours": by_day(t.dt_h),
    }
    for name in s.component_names():
        cols[name] = by_day(getattr(s, name))
    for instrument, component, usd in s.by_instrument:
        cols[f"{instrument}.{component}"] = by_day(usd)
    return cols


def csv_bytes(cols: dict[str, list[Any]]) -> bytes:
    """Named columns as CSV: a header row, then one row per value."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    writer.writerows(zip(*cols.values(), strict=True))
    return buf.getvalue().encode("utf-8")


def write_series(
    directory: Path, results: tuple[StrategyResult, ...], write: Callable[[Path, bytes], None]
) -> dict[str, SeriesFiles]:
    """Write every book's series under ``directory/series``; what was written, by book."""
    out = directory / SERIES_DIR
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, SeriesFiles] = {}
    for r in results:
        name, table = r.strategy.name, r.table
        intervals, daily = interval_columns(table), daily_columns(table)
        write(out / f"{name}.intervals.csv", csv_bytes(intervals))
        write(out / f"{name}.daily.csv", csv_bytes(daily))
        doc = {
            "book": name,
            "description": r.strategy.description,
            "window": {
                "from": iso(float(table.inputs.start[0])),
                "to": iso(float(table.inputs.end[-1])),
            },
            "intervals": intervals,
            "daily": daily,
        }
        write(out / f"{name}.json", (json.dumps(doc, separators=(",", ":")) + "\n").encode())
        files[name] = SeriesFiles(
            f"{SERIES_DIR}/{name}.intervals.csv",
            f"{SERIES_DIR}/{name}.daily.csv",
            f"{SERIES_DIR}/{name}.json",
        )
    return files
