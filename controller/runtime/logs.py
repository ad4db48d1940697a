"""Structured JSON logs on stderr (configure after importing pyasic: it resets the root level).

Every line passes through ``controller.runtime.redact``: URL credentials and every secret the
process resolved are masked, in structlog events and stdlib records alike.

The level can change while the daemon runs (``set_level``, on SIGHUP): the loggers bound at
start keep passing every event to one filter that reads the level in force.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from controller.runtime.redact import scrub, scrub_value

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
#: structlog method names and their numeric levels (``msg`` and unknown ones: info).
_METHODS = {
    **_LEVELS,
    "warn": logging.WARNING,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_level = [logging.INFO]  # the level in force: one cell, read by the filter on every event


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (tests and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _below_level(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop events under the level in force."""
    del logger
    if _METHODS.get(method_name, logging.INFO) < _level[0]:
        raise structlog.DropEvent
    return event_dict


def _scrubbed(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every value with URL credentials and registered secrets masked (``redact.scrub``)."""
    del logger, method_name
    for key, value in event_dict.items():
        event_dict[key] = scrub_value(value)
    return event_dict


class _ScrubbingFormatter(logging.Formatter):
    """Stdlib records (aiohttp, aiomqtt, asyncio) masked the same way as structlog's."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def level() -> str:
    """The level in force, by name."""
    return next(name for name, n in _LEVELS.items() if n == _level[0])


def set_level(name: str) -> None:
    """Change the level of structlog and stdlib logging at once, for loggers already bound."""
    numeric = _LEVELS[name]
    _level[0] = numeric
    logging.getLogger().setLevel(numeric)


def configure(level: str = "info") -> None:
    """Send structlog and stdlib logging to stderr as one JSON object per line."""
    numeric = _LEVELS[level]
    _level[0] = numeric
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(_ScrubbingFormatter("%(message)s"))
    logging.basicConfig(handlers=[handler], level=numeric, force=True)
    structlog.configure(
        processors=[
            _below_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrubbed,  # last before rendering: exception text included
            structlog.processors.JSONRenderer(),
        ],
        # Every method passes to the processors, whose first one filters: a bound logger
        # keeps its wrapper class for life, so the level cannot live in the class.
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
