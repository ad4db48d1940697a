"""The command audit log: one JSON line per miner command, what it was for and what came of it."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from controller.decision.policy import Plan
from controller.decision.reconcile import (
    Applied,
    CommandBatch,
    DispatchReport,
    Rejected,
    Unreachable,
    Unverified,
)
from controller.domain import FleetSpec, iso


class CommandAuditLog:
    """Appends to ``STATE_DIR/audit/<site>-commands.jsonl``, fsynced once per cycle."""

    def __init__(self, path: Path, addresses: Sequence[str] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._addresses = addresses

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
        outcome: dict[int, tuple[str, str | None, float | None]] = {}
        if report is not None:
            latencies = list(report.confirmation_s)
            for k, i in enumerate(report.applied.tolist()):
                outcome[i] = ("applied", None, latencies[k] if k < len(latencies) else None)
            for i, result in report.failed:
                match result:
                    case Applied():
                        outcome[i] = ("applied", None, None)
                    case Rejected(reason=why):
                        outcome[i] = ("rejected", why, None)
                    case Unreachable(reason=why):
                        outcome[i] = ("unreachable", why, None)
                    case Unverified(reason=why):
                        outcome[i] = ("unverified", why, None)
        rule = f"failsafe_{plan.failsafe.action}" if plan.failsafe else plan.override or "economics"
        lines = []
        for i, point in zip(batch.miner.tolist(), batch.point.tolist(), strict=True):
            missing: tuple[str, str | None, float | None] = (
                "dry_run" if dry_run else "unknown",
                None,
                None,
            )
            status, detail, seconds = outcome.get(i, missing)
            lines.append(
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
            )
        if not lines:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
