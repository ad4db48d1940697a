"""Feed recorder: every accepted live reading, in the canonical replay CSV, one file per UTC day.

Today's feed is tomorrow's replay: ``<dir>/<YYYY-MM-DD>.csv`` with the header
``timestamp,<column>`` loads with ``load_recording``. Each line is flushed (and fsynced by
default) as it is written, so a crash loses at most the line being written; on reopening,
a torn last line is cut off and readings not newer than the file's last row are skipped,
so a restart never breaks the file's strictly increasing order.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import structlog

from controller.domain import EpochS, Reading
from controller.runtime.storage import StorageHealth

_log = structlog.get_logger("hashspark.recorder")


def format_timestamp(t: EpochS) -> str:
    """ISO-8601 UTC with a Z, microseconds only when there are some (round-trips exactly)."""
    dt = datetime.fromtimestamp(t, tz=UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


class FeedRecorder:
    """Writes readings of one feed to daily canonical CSV files; use as a store listener."""

    def __init__(
        self,
        directory: Path,
        column: str,
        *,
        fsync: bool = True,
        storage: StorageHealth | None = None,
    ) -> None:
        self.storage = storage or StorageHealth()
        self.directory = directory
        self.column = column
        self._fsync = fsync
        self._day: str | None = None
        self._file: TextIO | None = None
        self._last_t: EpochS | None = None
        self.written = 0
        self.skipped = 0

    def __call__(self, reading: Reading) -> None:
        """Record ``reading`` (the signature of a ``LatestStore`` listener)."""
        self.record(reading)

    def record(self, reading: Reading) -> None:
        """Append one reading to its day's file.

        A write that fails (disk full, read-only) is logged and counted, never raised: the
        reading is still used. The file is closed; the next reading reopens it, which cuts
        off a line the failure may have torn (the reading is missing from the recording).
        """
        try:
            self._record(reading)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.close()
            self._file, self._day = None, None
            self.storage.failed("recordings", exc, path=str(self.directory))
            return
        self.storage.succeeded("recordings")

    def _record(self, reading: Reading) -> None:
        day = datetime.fromtimestamp(reading.observed_at, tz=UTC).strftime("%Y-%m-%d")
        if day != self._day:
            self._open(day)
        assert self._file is not None
        if self._last_t is not None and reading.observed_at <= self._last_t:
            self.skipped += 1  # already in the file (a restart re-received it)
            return
        self._file.write(f"{format_timestamp(reading.observed_at)},{reading.value!r}\n")
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self._last_t = reading.observed_at
        self.written += 1

    def path_for(self, day: str) -> Path:
        """The file of a UTC day (``YYYY-MM-DD``)."""
        return self.directory / f"{day}.csv"

    def _open(self, day: str) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(day)
        self._last_t = _repair(path)
        is_new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", encoding="utf-8", newline="")
        if is_new:
            self._file.write(f"timestamp,{self.column}\n")
            self._file.flush()
        self._day = day
        _log.info("recording_opened", path=str(path), resumed=not is_new)

    def close(self) -> None:
        """Close the current file (the next reading reopens one)."""
        if self._file is not None:
            self._file.close()
        self._file = None
        self._day = None


def _repair(path: Path) -> EpochS | None:
    """Cut a torn last line off ``path``; return the timestamp of its last complete row."""
    if not path.exists():
        return None
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        with path.open("r+b") as f:
            f.truncate(end)
        _log.warning("recording_repaired", path=str(path), dropped_bytes=len(raw) - end)
    lines = raw[:end].decode("utf-8", "replace").splitlines()
    for line in reversed(lines[1:]):
        stamp = line.split(",", 1)[0].strip()
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            continue
    return None
