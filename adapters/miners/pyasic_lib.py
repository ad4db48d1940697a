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
    module: ModuleType = lib
    return module


def miner_protocol() -> type:
    """pyasic's ``MinerProtocol``, whose methods a firmware class overrides when it can."""
    base: type = pyasic().miners.base.MinerProtocol
    return base
