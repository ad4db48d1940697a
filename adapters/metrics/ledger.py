"""A ledger that books every interval it stores into the P&L metrics."""

from __future__ import annotations

from adapters.metrics.book import PnlBook
from controller.accounting.money import booked
from controller.records import IntervalRecord
from controller.runtime.ports import Ledger


class BookedLedger:
    """A ``Ledger`` that also books each stored interval into the metrics."""

    def __init__(self, inner: Ledger, book: PnlBook) -> None:
        self._inner = inner
        self._book = book

    def append(self, record: IntervalRecord) -> None:
        """Store, then book (only what was stored counts), with the money as the ledger
        books it (to the micro-dollar): the counters and the ledger's totals agree, also
        after a restart seeds the counters from the ledger."""
        self._inner.append(record)
        self._book.add(booked(record))
