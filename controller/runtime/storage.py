"""How the daemon's writes to the state directory are going: failures counted, never fatal.

Every durable write the daemon makes beside its decisions (the ledger, the command audits,
the active commands, the remembered and recorded readings, the learned curve samples)
reports here. A failed write (disk full, read-only file system, I/O error) is logged once
when a streak of failures begins and once when the writes succeed again, counted per kind,
and exported as
``hashspark_storage_failures_total{what}`` and ``hashspark_storage_ok{what}``: the site
stays controlled meanwhile (docs/reliability.md, "Storage failures keep control").
"""

from __future__ import annotations

from typing import Literal

import structlog

#: What the daemon writes: each is a ``what`` label value of the storage metrics.
StorageKind = Literal[
    "ledger", "command_audit", "operator_audit", "commands", "readings", "recordings", "curves"
]
STORAGE_KINDS: tuple[StorageKind, ...] = (
    "ledger",
    "command_audit",
    "operator_audit",
    "commands",
    "readings",
    "recordings",
    "curves",
)

_log = structlog.get_logger("hashspark.storage")


class StorageHealth:
    """Failure counts and the state of the last write, per kind of write."""

    def __init__(self) -> None:
        self.failures: dict[StorageKind, int] = dict.fromkeys(STORAGE_KINDS, 0)
        self.ok: dict[StorageKind, bool] = dict.fromkeys(STORAGE_KINDS, True)

    def failed(
        self, what: StorageKind, error: BaseException, *, logged: bool = False, **context: object
    ) -> None:
        """A write of ``what`` failed: counted; logged when a streak of failures begins
        (unless the writer ``logged`` it in its own words)."""
        self.failures[what] += 1
        if self.ok[what] and not logged:
            _log.error("storage_write_failed", what=what, reason=str(error), **context)
        self.ok[what] = False

    def succeeded(self, what: StorageKind, *, logged: bool = False) -> None:
        """A write of ``what`` went through: logged if it ends a streak of failures."""
        if not self.ok[what] and not logged:
            _log.info("storage_write_recovered", what=what, failures=self.failures[what])
        self.ok[what] = True
