"""The command audit log: one JSON line per miner command, what it was for and what came of it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from controller.decision.policy import Plan
from controller.decision.reconcile import (
    CommandBatch,
    DispatchReport,
    outcome_name,
    outcome_reason,
)
from controller.domain import FleetSpec, iso
from controller.runtime.durable import append_lines
from controller.runtime.storage import StorageHealth


class CommandAuditLog:
    """Appends to ``STATE_DIR/audit/<site>-commands.jsonl``, fsynced once per cycle.

    A write that fails (disk full, read-only) is logged and counted in ``storage``, never
    raised: the commands went out, and the site goes on being controlled.
    """

    def __init__(
        self,
        path: Path,
        addresses: Sequence[str] | None = None,
        storage: StorageHealth | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._addresses = addresses
        self.storage = storage or StorageHealth()

    def record(
        self,
        site_id: str,
        fleet: FleetSpec,
        plan: Plan,
        batch: CommandBatch,
        report: DispatchReport | None,
        *,
        dry_run: bool,
    ) -> None:
        """One line per commanded (or, in a dry run, would-be commanded) miner."""
        rule = f"failsafe_{plan.failsafe.action}" if plan.failsafe else plan.override or "economics"
        rows: list[tuple[int, int, str, str | None, float | None]]
        if report is None:
            missing = "dry_run" if dry_run else "unknown"
            miners = zip(batch.miner.tolist(), batch.point.tolist(), strict=True)
            rows = [(i, point, missing, None, None) for i, point in miners]
        else:
            rows = [
                (
                    d.miner,
                    d.point,
                    outcome_name(d.outcome),
                    outcome_reason(d.outcome),
                    d.confirmation_s,
                )
                for d in report.dispatched
            ]
        lines = [
            json.dumps(
                {
                    "at": iso(plan.now),
                    "site": site_id,
                    "miner": self._addresses[i] if self._addresses else i,
                    "model": fleet.model_names[int(fleet.model_index[i])],
                    "command": "curtail" if point == 0 else "run",
                    "power_target_w": float(fleet.power_w[i, point]),
                    "rule": rule,
                    "opportunity_cost_usd_per_mwh": plan.opportunity_cost_usd_per_mwh,
                    "net_hashprice_usd_per_ph_day": plan.net_hashprice_usd_per_ph_day,
                    "failsafe": plan.failsafe.reason if plan.failsafe else None,
                    "outcome": status,
                    "reason": detail,
                    "confirmation_s": seconds,
                },
                sort_keys=True,
            )
            for i, point, status, detail, seconds in rows
        ]
        if not lines:
            return
        try:
            append_lines(self.path, lines)
        except OSError as exc:
            self.storage.failed("command_audit", exc, path=str(self.path), lines=len(lines))
            return
        self.storage.succeeded("command_audit")
