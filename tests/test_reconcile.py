"""Dispatch outcomes: one text per outcome, read back the same, and aligned with their batch."""

from __future__ import annotations

from typing import get_args

import numpy as np

from controller.decision.reconcile import (
    Applied,
    CommandBatch,
    DispatchReport,
    FailedName,
    Outcome,
    OutcomeName,
    Rejected,
    Unreachable,
    Unverified,
    failed_from,
    failed_name,
    outcome_name,
    outcome_reason,
)


def test_each_outcome_has_its_own_text_and_failures_read_back() -> None:
    outcomes: list[Outcome] = [Applied(), Rejected("r"), Unreachable("u"), Unverified("v")]
    assert [outcome_name(o) for o in outcomes] == list(get_args(OutcomeName))
    for name in get_args(FailedName):
        failed = failed_from(name, "why")
        assert failed_name(failed) == outcome_name(failed) == name
        assert outcome_reason(failed) == "why"
    assert outcome_reason(Applied()) is None


def test_a_report_has_one_outcome_per_commanded_miner_in_batch_order() -> None:
    batch = CommandBatch(miner=np.array([7, 2, 5, 9]), point=np.array([0, 3, 1, 0]))
    results: dict[int, tuple[Outcome, float | None]] = {
        9: (Applied(), None),  # applied but not timed (the in-process fleet)
        2: (Unreachable("gone"), 4.0),  # a failure has no latency
        5: (Applied(), 1.5),
        7: (Rejected("no"), None),
    }
    report = DispatchReport.of(batch, results)
    assert [(d.miner, d.point) for d in report.dispatched] == [(7, 0), (2, 3), (5, 1), (9, 0)]
    assert [outcome_name(d.outcome) for d in report.dispatched] == [
        "rejected",
        "unreachable",
        "applied",
        "applied",
    ]
    assert [d.confirmation_s for d in report.dispatched] == [None, None, 1.5, None]
    assert report.applied.tolist() == [5, 9]
    assert report.confirmation_s == (1.5,)
    assert report.failed == ((7, Rejected("no")), (2, Unreachable("gone")))
    assert report.counts() == {"applied": 2, "rejected": 1, "unreachable": 1}
