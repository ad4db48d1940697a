"""The Prometheus exposition a P&L book produces, for tests of what a ledger shows as metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from adapters.metrics.book import PnlBook
from adapters.metrics.collector import Metrics


def metrics_text(book: PnlBook) -> str:
    """What ``/metrics`` serves for ``book`` (a fresh registry, the daemon's collector)."""
    registry = CollectorRegistry()
    Metrics(registry, book)
    return generate_latest(registry).decode()
