"""Recorded feeds in the canonical CSV form: ``timestamp`` (ISO-8601 UTC) and one value column.

The file may be gzipped (``NAME.csv.gz``, told by its magic bytes). A price column names its
currency (``usd_per_mwh``, ``eur_per_mwh``); a ``NAME.meta.json`` or ``NAME.SOURCE.txt``
beside it that says another currency stops the load (adapters/recordings/meta.py).
An observation holds from its timestamp until the next one. Parsing is strict: a bad row
stops the load with the file, the line and the reason, so a replay never runs on data it
silently skipped.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import math
import zlib
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import field_validator

from adapters.feeds.payloads import ReadingKind
from adapters.feeds.registry import FEEDS, FeedContext
from adapters.feeds.store import EARLIEST_EPOCH_S, LATEST_EPOCH_S
from adapters.recordings.meta import MetaError, check_labels, column_currency
from controller.domain import EpochS, Reading, Recording
from controller.runtime.config_base import Strict, resolve_path

#: The value column each kind of feed expects, with its unit in the name.
PRICE_COLUMN = "usd_per_mwh"
HASHPRICE_COLUMN = "usd_per_ph_day"
#: A gzipped recording unzips to at most this: a year of 1-minute prices is about 20 MB.
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024


class RecordingError(Exception):
    """A recording that cannot be used: file, line and what was expected in its message.

    Never the content of the line: pointed at the wrong file (``/etc/shadow``), the message
    must not print what it read.
    """


def load_recording(path: Path, column: str, *, max_abs: float = 1e6) -> Recording:
    """Load and validate a canonical CSV recording."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(MAX_UNZIPPED_BYTES + 1)
        except (OSError, EOFError, zlib.error):
            raise RecordingError(f"{path}: not a readable gzip file") from None
        if len(raw) > MAX_UNZIPPED_BYTES:
            raise RecordingError(f"{path}: unzips to more than {MAX_UNZIPPED_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Decoded whole so the bad byte has a line: a streamed decode fails a chunk early.
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RecordingError(
            f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    times: list[float] = []
    values: list[float] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise RecordingError(f"{path}:1: empty file (expected header timestamp,{column})")
        _check_header(path, [h.strip() for h in header], column)
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank lines carry nothing
            t, v = _parse_row(path, line, row, max_abs)
            if times and t <= times[-1]:
                what = "duplicate" if t == times[-1] else "out-of-order"
                raise RecordingError(f"{path}:{line}: {what} timestamp")
            times.append(t)
            values.append(v)
    except csv.Error as exc:
        raise RecordingError(f"{path}:{reader.line_num}: not CSV ({_csv_reason(exc)})") from None
    if not times:
        raise RecordingError(f"{path}:{reader.line_num}: no data rows after the header")
    return Recording(
        source=path.name,
        path=path,
        column=column,
        times=np.asarray(times, dtype=np.float64),
        values=np.asarray(values, dtype=np.float64),
    )


def _check_header(path: Path, header: list[str], column: str) -> None:
    """The expected header, and a price recording's labels agreeing with its notes."""
    if header != ["timestamp", column]:
        found = column_currency(header[1]) if len(header) == 2 else None
        wanted = column_currency(column)
        if header[:1] == ["timestamp"] and found is not None and wanted not in (None, found):
            raise RecordingError(
                f"{path}:1: prices in {found} ({header[-1]}), expected {wanted} ({column}): "
                "convert them or give the site that currency"
            )
        raise RecordingError(f"{path}:1: header is not the expected 'timestamp,{column}'")
    try:
        check_labels(path, column)
    except MetaError as exc:
        raise RecordingError(str(exc)) from None


def _csv_reason(exc: csv.Error) -> str:
    """The csv module's reason, cut before any quoted content."""
    text = str(exc)
    return text.split(":", 1)[0].split("'", 1)[0].strip() or "malformed"


def _parse_row(path: Path, line: int, row: list[str], max_abs: float) -> tuple[float, float]:
    if len(row) != 2:
        raise RecordingError(f"{path}:{line}: expected 2 fields, found {len(row)}")
    ts_text, value_text = row[0].strip(), row[1].strip()
    try:
        ts = datetime.fromisoformat(ts_text)
    except ValueError:
        raise RecordingError(
            f"{path}:{line}: timestamp is not ISO-8601 (expected e.g. 2024-08-20T00:15:00Z)"
        ) from None
    if ts.tzinfo is None:
        raise RecordingError(f"{path}:{line}: timestamp has no time zone (add Z)")
    # The times a live reading may carry: a row of year 0 or 10000 would start a replay or
    # `run --simulated` 2,000 years away (and book every interval in between).
    if not EARLIEST_EPOCH_S <= ts.timestamp() <= LATEST_EPOCH_S:
        raise RecordingError(f"{path}:{line}: timestamp outside 2000-01-01..2100-01-01 UTC")
    if not value_text:
        raise RecordingError(f"{path}:{line}: empty value")
    try:
        value = float(value_text)
    except ValueError:
        raise RecordingError(f"{path}:{line}: value is not a number") from None
    if not math.isfinite(value):
        raise RecordingError(f"{path}:{line}: value is not finite (NaN or infinity)")
    if abs(value) > max_abs:
        raise RecordingError(f"{path}:{line}: value beyond +-{max_abs:g}")
    return ts.timestamp(), value


class RecordedFeed:
    """A ``ReadingFeed`` over a recording: at any time, the newest observation so far."""

    def __init__(self, recording: Recording) -> None:
        self._rec = recording
        self._times = recording.times.tolist()
        self._values = recording.values.tolist()

    @property
    def name(self) -> str:
        """The recording's file name."""
        return self._rec.source

    @property
    def recording(self) -> Recording:
        """The series behind the feed."""
        return self._rec

    def latest(self, now: EpochS) -> Reading | None:
        """The observation holding at ``now``."""
        i = bisect.bisect_right(self._times, now) - 1
        if i < 0:
            return None
        return Reading(self._values[i], self._times[i], self._rec.source)

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """Timestamp of the first observation after ``now``."""
        i = bisect.bisect_right(self._times, now)
        return self._times[i] if i < len(self._times) else None


class RecordedFeedConfig(Strict):
    """Readings replayed from a canonical CSV recording (``timestamp`` + one value column)."""

    type: Literal["recorded"]
    path: Path

    _check_path = field_validator("path")(resolve_path)


def _build(config: RecordedFeedConfig, kind: ReadingKind, ctx: FeedContext) -> RecordedFeed:
    # The value column is named by the kind and, for prices, the site's price currency
    # (usd_per_mwh, eur_per_mwh, usd_per_ph_day, usd_per_btc, ...).
    return RecordedFeed(load_recording(config.path, ctx.value_key(kind)))


FEEDS.register("recorded", RecordedFeedConfig, _build)
