"""Captured real replies (see captures/SOURCE.txt), loaded once as templates."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("simulators.miners").joinpath("captures", name).read_text("utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def template(name: str) -> dict[str, Any]:
    """A fresh deep copy of a captured reply, to fill with live values."""
    return copy.deepcopy(_load(name))
