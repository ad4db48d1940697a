"""Prometheus exposition: every metric declared in one table, read from snapshots.

``table`` declares the metrics, ``book`` keeps the cumulative P&L, ``ledger`` books each
stored interval into it, and ``collector`` serves them all to the registry.
"""

from adapters.metrics.book import PnlBook
from adapters.metrics.collector import Metrics
from adapters.metrics.ledger import BookedLedger
from adapters.metrics.table import METRICS, MetricSpec

__all__ = ["METRICS", "BookedLedger", "MetricSpec", "Metrics", "PnlBook"]
