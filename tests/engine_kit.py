"""What the fast and loop replay engines must agree on, checked one way for every test."""

from __future__ import annotations

import numpy as np

from controller.accounting.report import TOTAL_KEYS
from controller.records import IntervalTable


def assert_engines_agree(fast: IntervalTable, loop: IntervalTable) -> None:
    """The same intervals, model load and every settled total, each within 1e-6 absolute."""
    np.testing.assert_array_equal(fast.inputs.start, loop.inputs.start)
    np.testing.assert_allclose(fast.model_running_mw, loop.model_running_mw, rtol=0, atol=1e-6)
    for key in TOTAL_KEYS:
        if key in ("intervals", "hours"):
            continue
        f, lp = getattr(fast.settlement, key), getattr(loop.settlement, key)
        np.testing.assert_allclose(f, lp, rtol=0, atol=1e-6, err_msg=key)
