"""Every number a config file can hold, with its range: walked from the models themselves.

``docs/configuration.md`` carries the table ``bounds_table()`` renders, and
``tests/test_config_bounds.py`` checks that it is the same table and that every number has
a lower and an upper bound. Regenerate it with ``python -m controller.config.bounds``.
The figures themselves live in ``controller/runtime/config_bounds.py``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from controller.config.load import HashsparkConfig


@dataclass(frozen=True, slots=True)
class NumberField:
    """A number's key path (first place the model is met), type and bounds."""

    path: str
    kind: str  # "int" or "float"
    lower: tuple[str, float] | None  # (">" or ">=", bound)
    upper: tuple[str, float] | None  # ("<" or "<=", bound)
    optional: bool


def _bounds(metadata: list[Any]) -> tuple[tuple[str, float] | None, tuple[str, float] | None]:
    lower: tuple[str, float] | None = None
    upper: tuple[str, float] | None = None
    # pydantic's constraint objects (annotated-types' Gt, Ge, Lt, Le), read by attribute:
    # annotated-types is pydantic's dependency, not ours.
    for m in metadata:
        for attr, op in (("gt", ">"), ("ge", ">=")):
            if isinstance(getattr(m, attr, None), int | float):
                lower = (op, float(getattr(m, attr)))
        for attr, op in (("lt", "<"), ("le", "<=")):
            if isinstance(getattr(m, attr, None), int | float):
                upper = (op, float(getattr(m, attr)))
    return lower, upper


def _unwrap(tp: Any) -> tuple[list[Any], list[Any]]:
    """The concrete types a field annotation may hold, and the metadata on the way."""
    metadata: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        tp, *extra = typing.get_args(tp)
        for e in extra:
            metadata += e.metadata if isinstance(e, FieldInfo) else [e]
    if typing.get_origin(tp) in (Union, UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            inner, meta = _unwrap(arg)
            out += inner
            metadata += meta
        return out, metadata
    return [tp], metadata


def _walk(model: type[BaseModel], prefix: str, seen: set[type[BaseModel]]) -> list[NumberField]:
    if model in seen:
        return []
    seen.add(model)
    out: list[NumberField] = []
    for name, info in model.model_fields.items():
        types, metadata = _unwrap(info.annotation)
        metadata += info.metadata
        optional = NoneType in types
        path = f"{prefix}.{name}" if prefix else name
        for tp in types:
            if tp in (int, float):
                lower, upper = _bounds(metadata)
                out.append(NumberField(path, tp.__name__, lower, upper, optional))
            elif typing.get_origin(tp) is tuple:
                for item in typing.get_args(tp):
                    for inner in _unwrap(item)[0]:
                        if isinstance(inner, type) and issubclass(inner, BaseModel):
                            out += _walk(inner, f"{path}[]", seen)
            elif isinstance(tp, type) and issubclass(tp, BaseModel):
                tag = _tag(tp)
                out += _walk(tp, f"{path}{{{tag}}}" if tag else path, seen)
    return out


def _tag(model: type[BaseModel]) -> str | None:
    """A union member's ``type`` value, to tell which member a key belongs to."""
    field = model.model_fields.get("type")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return str(args[0]) if args else None


def number_fields() -> list[NumberField]:
    """Every number of a config file; a model met in several places is listed once."""
    return _walk(HashsparkConfig, "", set())


def _num(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) and abs(value) < 1e15 else f"{value:g}"


def _range(f: NumberField) -> str:
    lower = "" if f.lower is None else f"{_num(f.lower[1])} {f.lower[0].replace('>', '<')} "
    upper = "" if f.upper is None else f" {f.upper[0]} {_num(f.upper[1])}"
    return f"{lower}x{upper}".replace("<=", "≤")


def bounds_table() -> str:
    """The markdown table of ``docs/configuration.md``: key, type, range."""
    rows = ["| key | type | range |", "|---|---|---|"]
    for f in number_fields():
        kind = f"{f.kind} or unset" if f.optional else f.kind
        rows.append(f"| `{f.path}` | {kind} | {_range(f)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(bounds_table(), end="")
