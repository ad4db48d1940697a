"""Small state files that survive a crash: written whole or not at all.

``write_json_atomic`` writes a temporary file beside the target, fsyncs it, renames it over
the target and fsyncs the directory, so after a crash (SIGKILL or power loss) the file is
either the old one or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, durably and atomically (raises ``OSError``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def append_lines(path: Path, lines: list[str]) -> None:
    """Append ``lines`` to ``path`` and fsync (raises ``OSError``).

    A write that fails part way (disk full) is cut back off, as far as the file system
    lets us, so that the file never keeps half a line for the next append to follow.
    Unbuffered: nothing is left in a buffer to be flushed after the failure.
    """
    data = ("\n".join(lines) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """The JSON document at ``path`` (raises ``FileNotFoundError``, ``OSError``, ``ValueError``)."""
    return json.loads(path.read_text(encoding="utf-8"))


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (the directory entry); not every filesystem allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
