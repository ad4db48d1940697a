"""The corrections file ``hashspark ledger restate`` reads: a re-published recording.

The same shape as the recordings the feeds replay (``simulators/recordings/``): a CSV with a
``timestamp`` column (ISO-8601 with a zone) and a value column whose name carries its currency
and unit, ``<ccy>_per_mwh`` (the power price) and/or ``<ccy>_per_ph_day`` (the hashprice); an
optional ``currency`` column names each row's currency (it must agree with the header). A row
holds from its timestamp until the next row's (the last one for as long as the step before
it, or until ``--to``), and corrects every interval of the site that starts in that span. An
empty cell leaves that input as it stands.

Every problem is collected with its line number, so the whole file is refused at once, one
line per problem.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller.domain import EpochS, iso

_PRICE = re.compile(r"^([a-z]{3})_per_mwh$")
_HASHPRICE = re.compile(r"^([a-z]{3})_per_ph_day$")
_KNOWN = "timestamp, <ccy>_per_mwh, <ccy>_per_ph_day, currency"


@dataclass(frozen=True, slots=True)
class CorrectionRow:
    """One row: the span it holds over and the corrected inputs (None: unchanged)."""

    line: int  # in the file (the header is line 1)
    start: EpochS
    end: EpochS
    price_usd_per_mwh: float | None
    hashprice_usd_per_ph_day: float | None

    def where(self, path: Path) -> str:
        """``FILE line N (TIMESTAMP)``: how a problem names the row."""
        return f"{path.name} line {self.line} ({iso(self.start)})"


@dataclass(frozen=True, slots=True)
class Corrections:
    """The rows of a corrections file that fall in the chosen range, and its problems."""

    path: Path
    digest: str  # the file's SHA-256, first 12 hex digits: which file this was
    rows: tuple[CorrectionRow, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Header:
    price: str | None
    hashprice: str | None
    currency_column: bool


def _header(path: Path, names: list[str], currency: str) -> tuple[_Header | None, list[str]]:
    problems: list[str] = []
    price = [n for n in names if _PRICE.match(n)]
    hashprice = [n for n in names if _HASHPRICE.match(n)]
    unknown = [n for n in names if n not in ("timestamp", "currency", *price, *hashprice)]
    if "timestamp" not in names:
        problems.append(f"{path.name} line 1: no timestamp column (columns: {_KNOWN})")
    if unknown:
        problems.append(
            f"{path.name} line 1: column {', '.join(unknown)} not understood ({_KNOWN})"
        )
    if not price and not hashprice:
        problems.append(
            f"{path.name} line 1: no value column: <ccy>_per_mwh (a power price) or "
            "<ccy>_per_ph_day (a hashprice), e.g. usd_per_mwh"
        )
    if len(price) > 1 or len(hashprice) > 1:
        problems.append(f"{path.name} line 1: one price and one hashprice column at most")
    if problems:
        return None, problems
    for column in (*price, *hashprice):
        ccy = column[:3].upper()
        if ccy != currency:
            problems.append(
                f"{path.name} line 1: column {column} is in {ccy}, the ledger books {currency}: "
                "every row of it refused"
            )
    return _Header(
        price[0] if price else None, hashprice[0] if hashprice else None, "currency" in names
    ), problems


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def read_corrections(
    path: Path, *, currency: str, start: EpochS | None = None, end: EpochS | None = None
) -> Corrections:
    """The rows of ``path`` whose timestamp is in ``[start, end)``, each holding until the
    next row (the last until ``end``, else for the step before it), and every problem."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return Corrections(path, "", (), (f"{path}: cannot read the corrections file: {exc}",))
    digest = hashlib.sha256(raw).hexdigest()[:12]
    reader = csv.DictReader(text.splitlines())
    header, problems = _header(path, list(reader.fieldnames or []), currency)
    if header is None:
        return Corrections(path, digest, (), tuple(problems))
    parsed: list[tuple[int, EpochS, float | None, float | None]] = []
    previous: EpochS | None = None
    for line, row in enumerate(reader, start=2):
        at = _time(row.get("timestamp") or "")
        label = f"{path.name} line {line}"
        if at is None:
            problems.append(
                f"{label}: timestamp {row.get('timestamp')!r} is not ISO-8601 with a zone"
            )
            continue
        t = at.timestamp()
        label = f"{label} ({iso(t)})"
        if previous is not None and t <= previous:
            problems.append(f"{label}: not after the row before it ({iso(previous)})")
            continue
        previous = t
        known = len(problems)
        values: list[float | None] = []
        for column in (header.price, header.hashprice):
            cell = (row.get(column) or "").strip() if column else ""
            value = _number(cell) if cell else None
            if cell and value is None:
                problems.append(f"{label}: {column} {cell!r} is not a finite number")
            values.append(value)
        if header.currency_column:
            ccy = (row.get("currency") or "").strip().upper()
            if ccy != currency:
                problems.append(
                    f"{label}: currency {ccy or '(empty)'}, the ledger books {currency}"
                )
        if values == [None, None] and len(problems) == known:
            problems.append(f"{label}: no corrected value")
        if len(problems) == known:  # a row with a problem corrects nothing
            parsed.append((line, t, values[0], values[1]))
    return Corrections(path, digest, _spans(path, parsed, start, end, problems), tuple(problems))


def _spans(
    path: Path,
    parsed: list[tuple[int, EpochS, float | None, float | None]],
    start: EpochS | None,
    end: EpochS | None,
    problems: list[str],
) -> tuple[CorrectionRow, ...]:
    """Each row with the span it holds over, for the rows in ``[start, end)``."""
    rows: list[CorrectionRow] = []
    for k, (line, t, price, hashprice) in enumerate(parsed):
        if (start is not None and t < start) or (end is not None and t >= end):
            continue
        if k + 1 < len(parsed):
            until = parsed[k + 1][1]
        elif end is not None:
            until = end
        elif k > 0:
            until = t + (t - parsed[k - 1][1])  # the last row: as long as the step before it
        else:
            problems.append(
                f"{path.name} line {line} ({iso(t)}): the only row: until when it holds is "
                "unknown; give --to"
            )
            continue
        rows.append(
            CorrectionRow(line, t, until if end is None else min(until, end), price, hashprice)
        )
    return tuple(rows)
