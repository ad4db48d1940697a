"""Import pyasic once, quietly, and leave our logging as it was.

``import pyasic`` resets the root logger's level and emits deprecation warnings; importing
it here (lazily: it costs about a second) keeps both out of the rest of the process.
"""

from __future__ import annotations

import functools
import logging
import warnings
from types import ModuleType


@functools.cache
def pyasic() -> ModuleType:
    """The pyasic module, imported on first use with the root logger's level restored."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyasic as lib  # noqa: PLC0415
        import pyasic.miners.base  # noqa: PLC0415
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    # pyasic talks to stock Antminers through httpx, which logs every request at INFO as a
    # plain-text line: thousands per cycle on a large site, and not JSON. Our own log lines
    # say what changed; the library's per-request lines stay out unless they are warnings.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    module: ModuleType = lib
    return module


def miner_protocol() -> type:
    """pyasic's ``MinerProtocol``, whose methods a firmware class overrides when it can."""
    base: type = pyasic().miners.base.MinerProtocol
    return base
