"""Just enough GraphQL to serve a firmware's API: parse a document, resolve it over plain objects.

Over 300 lines: a lexer, a parser and an executor, which only make sense together.

Supported: one operation per document (``query``/``mutation``, optionally named, with
variable definitions), fields with aliases and arguments, inline fragments
(``... on Type``), and values (variables, numbers, strings, booleans, null, enums, lists,
input objects). Not supported, and answered as a GraphQL error: named fragments,
directives, subscriptions, several operations in one document.

The resolved tree is plain Python: a ``Node`` maps field names to values or to callables
taking the field's arguments; its ``typename`` is what inline fragments match (a type, or
an interface it names in ``implements``). A field the node does not have is an error for
the whole request, as a GraphQL server's validation makes it; a ``FieldError`` raised by a
resolver nulls that field and is reported in ``errors`` with its path, as execution does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,\ufeff]+|\#[^\n]*)
    |(?P<spread>\.\.\.)
    |(?P<punct>[{}()\[\]:=!$@])
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<string>"(?:[^"\\\n]|\\.)*")
    |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class GraphQLError(Exception):
    """The request cannot run (syntax, an unknown field, an unsupported feature)."""


class FieldError(Exception):
    """A resolver failed: its field is null and the message goes to ``errors``."""


@dataclass(frozen=True, slots=True)
class Var:
    """A ``$name`` in an argument, resolved from the request's variables."""

    name: str


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a selection set."""

    name: str
    alias: str
    args: tuple[tuple[str, Any], ...]
    selections: tuple[Selection, ...] | None


@dataclass(frozen=True, slots=True)
class Fragment:
    """``... on Type { ... }``."""

    on: str | None
    selections: tuple[Selection, ...]


Selection = Field | Fragment


@dataclass(frozen=True, slots=True)
class Operation:
    """The document's one operation."""

    kind: str  # "query" | "mutation"
    defaults: tuple[tuple[str, Any], ...]
    selections: tuple[Selection, ...]


@dataclass(slots=True)
class Node:
    """An object in the resolved tree."""

    typename: str
    fields: Mapping[str, Any]
    implements: tuple[str, ...] = field(default=())


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            raise GraphQLError(f"Syntax Error: unexpected character {text[at]!r}")
        at = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "skip":
            out.append((kind, m.group()))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.at] if self.at < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind) or k == "eof":
            want = value or kind or "a token"
            raise GraphQLError(f"Syntax Error: expected {want}, found {v or '<EOF>'!r}")
        self.at += 1
        return v

    def document(self) -> Operation:
        kind, value = self.peek()
        op = "query"
        defaults: tuple[tuple[str, Any], ...] = ()
        if kind == "name":
            if value not in ("query", "mutation"):
                raise GraphQLError(f"Unsupported operation {value!r}")
            op = self.take()
            if self.peek()[0] == "name":
                self.take()
            if self.peek()[1] == "(":
                defaults = self.variable_definitions()
        selections = self.selection_set()
        if self.peek()[0] != "eof":
            raise GraphQLError("Only one operation per document is supported")
        return Operation(op, defaults, selections)

    def variable_definitions(self) -> tuple[tuple[str, Any], ...]:
        self.take("(")
        defaults = []
        while self.peek()[1] != ")":
            self.take("$")
            name = self.take(kind="name")
            self.take(":")
            self.type_ref()
            if self.peek()[1] == "=":
                self.take("=")
                defaults.append((name, self.value()))
        self.take(")")
        return tuple(defaults)

    def type_ref(self) -> None:
        if self.peek()[1] == "[":
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.peek()[1] == "!":
            self.take("!")

    def selection_set(self) -> tuple[Selection, ...]:
        self.take("{")
        items: list[Selection] = []
        while self.peek()[1] != "}":
            items.append(self.selection())
        self.take("}")
        if not items:
            raise GraphQLError("Syntax Error: empty selection set")
        return tuple(items)

    def selection(self) -> Selection:
        if self.peek()[0] == "spread":
            self.take()
            if self.peek()[1] != "on":
                raise GraphQLError("Named fragments are not supported")
            self.take("on")
            return Fragment(self.take(kind="name"), self.selection_set())
        name = alias = self.take(kind="name")
        if self.peek()[1] == ":":
            self.take(":")
            name = self.take(kind="name")
        args: list[tuple[str, Any]] = []
        if self.peek()[1] == "(":
            self.take("(")
            while self.peek()[1] != ")":
                key = self.take(kind="name")
                self.take(":")
                args.append((key, self.value()))
            self.take(")")
        if self.peek()[1] == "@":
            raise GraphQLError("Directives are not supported")
        sub = self.selection_set() if self.peek()[1] == "{" else None
        return Field(name, alias, tuple(args), sub)

    def value(self) -> Any:
        kind, text = self.peek()
        if text == "$":
            self.take("$")
            return Var(self.take(kind="name"))
        if text == "[":
            self.take("[")
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        if text == "{":
            self.take("{")
            obj = {}
            while self.peek()[1] != "}":
                key = self.take(kind="name")
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        self.take()
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", _unescape, text[1:-1])
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        raise GraphQLError(f"Syntax Error: unexpected {text!r}")


def _unescape(m: re.Match[str]) -> str:
    s = m.group(1)
    return chr(int(s[1:], 16)) if s.startswith("u") else _ESCAPES.get(s, s)


@functools.lru_cache(maxsize=256)
def parse(text: str) -> Operation:
    """The document's operation (cached: clients send the same few documents again and again)."""
    return _Parser(text).document()


def _bind(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, list):
        return [_bind(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _bind(v, variables) for k, v in value.items()}
    return value


class _Run:
    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables
        self.errors: list[dict[str, Any]] = []

    def node(self, node: Node, selections: tuple[Selection, ...], path: list[Any]) -> Any:
        out: dict[str, Any] = {}
        for sel in selections:
            if isinstance(sel, Fragment):
                if sel.on is None or sel.on == node.typename or sel.on in node.implements:
                    out.update(self.node(node, sel.selections, path))
                continue
            if sel.name == "__typename":
                out[sel.alias] = node.typename
                continue
            if sel.name not in node.fields:
                raise GraphQLError(f'Cannot query field "{sel.name}" on type "{node.typename}".')
            value = node.fields[sel.name]
            where = [*path, sel.alias]
            if callable(value):
                args = {k: _bind(v, self.variables) for k, v in sel.args}
                try:
                    value = value(**args)
                except FieldError as exc:
                    self.errors.append({"message": str(exc), "path": where})
                    out[sel.alias] = None
                    continue
                except TypeError as exc:
                    raise GraphQLError(f'Bad arguments for field "{sel.name}": {exc}') from exc
            out[sel.alias] = self.value(value, sel, where)
        return out

    def value(self, value: Any, sel: Field, path: list[Any]) -> Any:
        if isinstance(value, list):
            return [self.value(v, sel, [*path, i]) for i, v in enumerate(value)]
        if isinstance(value, Node):
            if sel.selections is None:
                raise GraphQLError(
                    f'Field "{sel.name}" of type "{value.typename}" must have a selection of '
                    "subfields."
                )
            return self.node(value, sel.selections, path)
        if sel.selections is not None and value is not None:
            raise GraphQLError(f'Field "{sel.name}" must not have a selection')
        return value


def execute(
    root: Callable[[str], Node], text: str, variables: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The response to one request: ``{"data": ...}`` and ``errors`` if any, as GraphQL has it.

    ``root(kind)`` gives the root node of ``"query"`` or ``"mutation"``.
    """
    try:
        op = parse(text)
        bound = dict(op.defaults) | dict(variables or {})
        run = _Run(bound)
        data = run.node(root(op.kind), op.selections, [])
    except GraphQLError as exc:
        return {"errors": [{"message": str(exc)}]}
    if run.errors:
        return {"data": data, "errors": run.errors}
    return {"data": data}
