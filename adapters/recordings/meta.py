"""What a canonical price recording is: its currency, market kind and interval length.

A price recording is ``NAME.csv`` (or ``NAME.csv.gz``) with the header
``timestamp,<ccy>_per_mwh`` (``usd_per_mwh``, ``eur_per_mwh``): the header names the
currency. Beside it, ``NAME.meta.json`` (written by ``hashspark recordings import``) says the
rest: market kind (``real-time`` or ``day-ahead``), interval length, ISO and location, and
the gaps and repeated intervals the import found. ``NAME.SOURCE.txt`` is the human note; a
``Units: EUR/MWh`` in it is checked against the header too, so a EUR series labelled USD
stops at load, wherever the label was wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

MarketKind = Literal["real-time", "day-ahead"]
MARKET_KINDS: tuple[MarketKind, ...] = ("real-time", "day-ahead")

#: Currencies a price recording may be in (ISO 4217), as its header spells them.
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "NOK", "SEK", "DKK", "CHF", "JPY")

FORMAT = "hashspark-price-recording/1"

_COLUMN = re.compile(r"^([a-z]{3})_per_mwh$")
_UNITS = re.compile(r"\bunits?\s*:\s*([A-Za-z]{3})\s*/\s*MWh\b", re.IGNORECASE)


def price_column(currency: str) -> str:
    """The value column of a price recording in ``currency``: ``usd_per_mwh``."""
    return f"{currency.lower()}_per_mwh"


def column_currency(column: str) -> str | None:
    """The currency a price column names (``eur_per_mwh`` -> ``EUR``); None if not a price."""
    m = _COLUMN.match(column.strip())
    return m.group(1).upper() if m else None


def base_path(path: Path) -> Path:
    """``dir/NAME`` for ``dir/NAME.csv`` or ``dir/NAME.csv.gz``."""
    name = path.name
    for suffix in (".csv.gz", ".csv"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path.with_name(path.stem)


def meta_path(path: Path) -> Path:
    """The metadata sidecar of a recording: ``NAME.meta.json``."""
    base = base_path(path)
    return base.with_name(base.name + ".meta.json")


def source_path(path: Path) -> Path:
    """The SOURCE note of a recording: ``NAME.SOURCE.txt``."""
    base = base_path(path)
    return base.with_name(base.name + ".SOURCE.txt")


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing intervals between two observations (both UTC interval starts, ISO-8601)."""

    after: str
    before: str
    missing: int


@dataclass(frozen=True, slots=True)
class RecordingMeta:
    """The sidecar of a canonical price recording."""

    currency: str
    market: MarketKind
    interval_s: int
    iso: str
    location: str
    rows: int
    first: str
    last: str
    source_file: str = ""
    missing_intervals: int = 0
    gaps: tuple[Gap, ...] = ()
    repeated: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def column(self) -> str:
        """The CSV value column this recording has."""
        return price_column(self.currency)

    def as_dict(self) -> dict[str, Any]:
        """JSON form, ``format`` first."""
        data = asdict(self)
        data["gaps"] = [asdict(g) for g in self.gaps]
        data["repeated"] = list(self.repeated)
        data["notes"] = list(self.notes)
        return {"format": FORMAT, "unit": f"{self.currency}/MWh", **data}


def write_meta(path: Path, meta: RecordingMeta) -> Path:
    """Write ``meta`` beside the recording at ``path``; return the sidecar's path."""
    target = meta_path(path)
    target.write_text(json.dumps(meta.as_dict(), indent=1) + "\n", encoding="utf-8")
    return target


class MetaError(ValueError):
    """A sidecar that cannot be read or says something else than the recording."""


def read_meta(path: Path) -> RecordingMeta | None:
    """The sidecar of the recording at ``path``, or None if it has none."""
    target = meta_path(path)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetaError(f"{target}: not a readable JSON sidecar ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MetaError(f"{target}: format is not {FORMAT!r}")
    try:
        market = data["market"]
        if market not in MARKET_KINDS:
            raise MetaError(f"{target}: market {market!r} is not one of {', '.join(MARKET_KINDS)}")
        return RecordingMeta(
            currency=str(data["currency"]),
            market=market,
            interval_s=int(data["interval_s"]),
            iso=str(data["iso"]),
            location=str(data["location"]),
            rows=int(data["rows"]),
            first=str(data["first"]),
            last=str(data["last"]),
            source_file=str(data.get("source_file", "")),
            missing_intervals=int(data.get("missing_intervals", 0)),
            gaps=tuple(
                Gap(str(g["after"]), str(g["before"]), int(g["missing"]))
                for g in data.get("gaps", ())
            ),
            repeated=tuple(str(r) for r in data.get("repeated", ())),
            notes=tuple(str(n) for n in data.get("notes", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MetaError):
            raise
        raise MetaError(f"{target}: missing or bad field ({exc})") from None


def source_note_currency(note: Path) -> tuple[str, int] | None:
    """The currency a SOURCE note's ``Units: XXX/MWh`` states, with its line; None if none.

    Several ``Units:`` lines must agree; a note that says both USD and EUR is refused.
    """
    try:
        text = note.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MetaError(f"{note}: {exc.strerror}") from None
    found: tuple[str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        for m in _UNITS.finditer(line):
            currency = m.group(1).upper()
            if found is not None and found[0] != currency:
                raise MetaError(
                    f"{note}:{number}: units {currency}/MWh, but line {found[1]} says "
                    f"{found[0]}/MWh"
                )
            found = found or (currency, number)
    return found


def check_labels(path: Path, column: str) -> RecordingMeta | None:
    """Refuse a price recording whose header currency contradicts its sidecar or SOURCE note.

    ``column`` is the header's value column. Returns the sidecar (None if there is none).
    """
    meta = read_meta(path)
    currency = column_currency(column)
    if currency is None:
        return meta
    if meta is not None and meta.currency != currency:
        raise MetaError(
            f"{path}: header says {currency} ({column}) but {meta_path(path).name} says "
            f"{meta.currency}/MWh"
        )
    stated = source_note_currency(source_path(path))
    if stated is not None and stated[0] != currency:
        raise MetaError(
            f"{path}: header says {currency} ({column}) but {source_path(path).name}:{stated[1]} "
            f"says {stated[0]}/MWh"
        )
    return meta
