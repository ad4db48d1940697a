"""An in-memory ledger for replays and tests (the durable SQLite ledger is the daemon's)."""

from __future__ import annotations

from controller.records import IntervalRecord


class MemoryLedger:
    """Keeps settled intervals in a list, in order."""

    def __init__(self) -> None:
        self.records: list[IntervalRecord] = []

    def append(self, record: IntervalRecord) -> None:
        """Store one settled interval."""
        if self.records and record.start < self.records[-1].end:
            previous = self.records[-1].end
            raise ValueError(
                f"interval from {record.start} overlaps the previous one (to {previous})"
            )
        self.records.append(record)
