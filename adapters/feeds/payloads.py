"""Payload models and parsers for live feeds: bytes in, a candidate reading or a rejection out.

Parsing never raises on bad input: whatever arrives (not UTF-8, not JSON, a JSON array, a
string where a number belongs, NaN, 1e400, an absurd price) becomes a ``Rejected`` with a
reason, which the adapter hands to its ``LatestStore`` to count and log. Only a
``Candidate`` can become a reading, and the store still checks its order and time.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model

from adapters.feeds.store import Accepted, LatestStore, Rejected, RejectReason, check_time
from controller.domain import EpochS

#: Longest payload any parser looks at; a price update is ~100 bytes.
MAX_PAYLOAD_BYTES = 64 * 1024
_SOURCE_PATTERN = r"^[\x21-\x7e]{1,128}$"  # printable ASCII, no spaces: goes into CSV and logs


class ReadingKind(StrEnum):
    """What a feed carries; names the payload's value key and its unit."""

    PRICE = "usd_per_mwh"
    HASHPRICE = "usd_per_ph_day"
    #: Bitcoin inputs (a site's ``[sites.bitcoin]`` feeds): the BTC price, the network
    #: difficulty in units of 1e12, and the mean transaction fees per block.
    BTC_USD = "usd_per_btc"
    DIFFICULTY = "difficulty_t"
    FEES = "btc_per_block"


@dataclass(frozen=True, slots=True)
class ValueBound:
    """Plausible values of a feed: readings outside are refused as out of range."""

    min_value: float
    max_value: float

    def check(self, value: float) -> str | None:
        """Why ``value`` is out of range, or None if it is fine."""
        if value < self.min_value or value > self.max_value:
            return f"{value:g} outside [{self.min_value:g}, {self.max_value:g}]"
        return None


#: Defaults: ERCOT's offer cap is 5,000 USD/MWh and its floor -251; hashprice is positive.
DEFAULT_PRICE_BOUND = ValueBound(-10_000.0, 10_000.0)
DEFAULT_HASHPRICE_BOUND = ValueBound(1e-3, 10_000.0)
#: A coin's price, the difficulty (x 1e12) and a block's fees (BTC): positive, generous.
DEFAULT_BTC_USD_BOUND = ValueBound(1.0, 1e6)
DEFAULT_DIFFICULTY_BOUND = ValueBound(1e-3, 1e6)
DEFAULT_FEES_BOUND = ValueBound(0.0, 100.0)


def default_bound(kind: ReadingKind) -> ValueBound:
    """The plausible values of ``kind`` when the feed's config sets none."""
    return {
        ReadingKind.PRICE: DEFAULT_PRICE_BOUND,
        ReadingKind.HASHPRICE: DEFAULT_HASHPRICE_BOUND,
        ReadingKind.BTC_USD: DEFAULT_BTC_USD_BOUND,
        ReadingKind.DIFFICULTY: DEFAULT_DIFFICULTY_BOUND,
        ReadingKind.FEES: DEFAULT_FEES_BOUND,
    }[kind]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A payload that parsed: value, when it was observed and its source."""

    value: float
    observed_at: EpochS
    source: str


ParseResult = Candidate | Rejected


class _Payload(BaseModel):
    # Strict: "41.2" (a string) or true is not a price; unknown keys are a publisher's bug.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    ts: AwareDatetime
    source: str | None = Field(default=None, pattern=_SOURCE_PATTERN)


class PricePayload(_Payload):
    """``{"usd_per_mwh": 41.2, "ts": "2026-11-21T22:15:00Z", "source": "ercot:HB_WEST"}``."""

    usd_per_mwh: float


def price_key(currency: str) -> str:
    """The value key (payload field, recording column) of a price: ``eur_per_mwh``."""
    return f"{currency.lower()}_per_mwh"


def value_key(kind: ReadingKind, price_currency: str) -> str:
    """The value key of ``kind`` at a site whose prices are in ``price_currency``.

    Only power prices come in other currencies (``eur_per_mwh``); the hashprice and the
    Bitcoin inputs are USD (or unitless) at their source and keep their USD-named keys.
    """
    return price_key(price_currency) if kind is ReadingKind.PRICE else kind.value


#: A price field of any currency: ``usd_per_mwh``, ``eur_per_mwh``, ``sek_per_mwh``.
_ANY_PRICE_KEY = re.compile(r"^[a-z]{3}_per_mwh$")
_PRICE_MODELS: dict[str, type[_Payload]] = {}


def _price_model(key: str) -> type[_Payload]:
    """The strict payload model of a price under ``key`` (``{"eur_per_mwh": 81.2, "ts": ...}``)."""
    if key == ReadingKind.PRICE.value:
        return PricePayload
    model = _PRICE_MODELS.get(key)
    if model is None:
        fields: dict[str, Any] = {key: (float, ...)}
        model = create_model(f"PricePayload_{key}", __base__=_Payload, **fields)
        _PRICE_MODELS[key] = model
    return model


def _foreign_price(raw: bytes, key: str) -> Rejected | None:
    """A rejection naming the currency when the payload quotes a price under another key."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    found = sorted(k for k in data if _ANY_PRICE_KEY.match(k) and k != key)
    if not found:
        return None
    return Rejected(
        RejectReason.CURRENCY,
        f"price in {found[0][:3].upper()} ({found[0]}), the site's prices are in "
        f"{key[:3].upper()} ({key}): never read as another currency",
    )


class HashpricePayload(_Payload):
    """``{"usd_per_ph_day": 55.2, "ts": "2026-11-21T00:00:00Z", "source": "index:luxor"}``."""

    usd_per_ph_day: float


class BtcUsdPayload(_Payload):
    """``{"usd_per_btc": 93450.0, "ts": "2026-11-21T00:00:00Z"}``."""

    usd_per_btc: float


class DifficultyPayload(_Payload):
    """``{"difficulty_t": 108.52, "ts": "2026-11-21T00:00:00Z"}`` (difficulty / 1e12)."""

    difficulty_t: float


class FeesPayload(_Payload):
    """``{"btc_per_block": 0.0931, "ts": "2026-11-21T00:00:00Z"}``."""

    btc_per_block: float


_MODELS: dict[ReadingKind, type[_Payload]] = {
    ReadingKind.PRICE: PricePayload,
    ReadingKind.HASHPRICE: HashpricePayload,
    ReadingKind.BTC_USD: BtcUsdPayload,
    ReadingKind.DIFFICULTY: DifficultyPayload,
    ReadingKind.FEES: FeesPayload,
}


def validation_detail(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``key.path: message`` (inputs are not echoed)."""
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"


def check_value(value: float, observed_at: EpochS, source: str, bound: ValueBound) -> ParseResult:
    """Refuse NaN, infinities, values outside ``bound`` and times outside 2000..2100."""
    if not math.isfinite(value):
        return Rejected(RejectReason.NOT_FINITE, f"value {value!r} is not finite")
    problem = bound.check(value)
    if problem is not None:
        return Rejected(RejectReason.OUT_OF_RANGE, problem)
    bad_time = check_time(observed_at)
    if bad_time is not None:
        return bad_time
    return Candidate(value, observed_at, source)


def epoch_of(ts: datetime) -> EpochS | None:
    """Epoch seconds of an aware datetime, or None if it cannot be represented."""
    try:
        return ts.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def parse_reading(
    raw: bytes,
    kind: ReadingKind,
    bound: ValueBound,
    *,
    default_source: str,
    key: str | None = None,
) -> ParseResult:
    """Parse one MQTT (or index) payload of ``kind``, its value under ``key``.

    ``key`` defaults to the kind's own (``usd_per_mwh``); a price feed of a site whose
    ``price_currency`` is EUR reads ``eur_per_mwh``, and a payload quoting a price under
    another currency's key is refused as ``currency``, never read as the site's currency.
    """
    if len(raw) > MAX_PAYLOAD_BYTES:
        return Rejected(RejectReason.MALFORMED, f"payload of {len(raw)} bytes is too large")
    key = key if kind is ReadingKind.PRICE and key else kind.value
    model = _price_model(key) if kind is ReadingKind.PRICE else _MODELS[kind]
    try:
        payload = model.model_validate_json(raw)
    except ValidationError as exc:
        foreign = _foreign_price(raw, key) if kind is ReadingKind.PRICE else None
        return foreign or Rejected(RejectReason.MALFORMED, validation_detail(exc))
    value = float(getattr(payload, key))
    observed_at = epoch_of(payload.ts)
    if observed_at is None:
        return Rejected(RejectReason.MALFORMED, "ts out of range")
    return check_value(value, observed_at, payload.source or default_source, bound)


def ingest(store: LatestStore, result: ParseResult, now: EpochS) -> Accepted | Rejected:
    """Offer a parsed candidate to the store, or count the parser's rejection there."""
    match result:
        case Candidate(value=value, observed_at=observed_at, source=source):
            return store.offer(value, observed_at, source, now)
        case Rejected(reason=reason, detail=detail):
            return store.reject(reason, detail)


def lookup(data: Any, path: str) -> Any:
    """Follow a dotted path (``data.0.usdHashprice``) through parsed JSON; KeyError if absent."""
    node = data
    for part in path.split(".") if path else []:
        if isinstance(node, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(node) <= index < len(node):
                raise KeyError(path)
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node
