"""The ledger's one error: a ledger that cannot be opened, or that refuses a write."""

from __future__ import annotations


class LedgerError(Exception):
    """The ledger cannot be opened or refuses a write (with the reason, in one line)."""
