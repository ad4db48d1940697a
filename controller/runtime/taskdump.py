"""On SIGUSR1, log where every asyncio task is waiting: how to see into a stuck cycle.

A cycle that never finishes (``site_loop_stuck``) leaves an idle event loop that a native
profiler cannot see into; each task's chain of awaits can. One ``task_stack`` line per
task: its name, the frames it is suspended in (``file:line function``, outermost first,
following each coroutine's ``await``) and what the innermost one awaits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

_log = structlog.get_logger("hashspark.daemon")
MAX_FRAMES = 60


def await_chain(task: asyncio.Task[Any]) -> tuple[list[str], str]:
    """The frames a task is suspended in, outermost first, and what the last one awaits."""
    frames: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(frames) < MAX_FRAMES:
        frame = next(
            (f for a in ("cr_frame", "gi_frame", "ag_frame") if (f := getattr(awaited, a, None))),
            None,
        )
        if frame is None:
            break  # a future, a task or another awaitable: where the chain ends
        frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = next(
            (
                n
                for a in ("cr_await", "gi_yieldfrom", "ag_await")
                if (n := getattr(awaited, a, None)) is not None
            ),
            None,
        )
    return frames, "" if awaited is None else repr(awaited)[:300]


def dump_tasks() -> int:
    """Log every task's await chain; returns how many tasks there were."""
    tasks = asyncio.all_tasks()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        frames, awaiting = await_chain(task)
        _log.warning("task_stack", task=task.get_name(), frames=frames, awaiting=awaiting)
    return len(tasks)
