"""ERCOT public API: real-time prices at one settlement point.

Two products: NP6-905-CD (``spp_node_zone_hub``, 15-minute settlement point prices, the
price a site pays) and NP6-788-CD (``lmp_node_zone_hub``, SCED LMPs about every 5 minutes).
Every request carries two credentials: the API Management subscription key
(``Ocp-Apim-Subscription-Key``) and a bearer ID token from ERCOT's Azure B2C ROPC flow,
valid one hour and refreshed five minutes early. A 401 on data first refreshes the token
once; a second 401, or a refused token request, is permanent.

Responses are column-oriented: ``fields[]`` names the columns of each row in ``data``.
Market time is America/Chicago; the DST flag marks the repeated hour in November.
A reading is stamped with its interval start (SPP) or SCED timestamp (LMP) in UTC, as the
recordings are.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.feeds.config import BackoffConfig, BoundedFeedConfig, HttpUrl
from adapters.feeds.health import PermanentFeedError, TransientFeedError
from adapters.feeds.http import PollingFeed, fetch_bytes
from adapters.feeds.payloads import (
    Candidate,
    ParseResult,
    ReadingKind,
    ValueBound,
    check_value,
    epoch_of,
    validation_detail,
)
from adapters.feeds.registry import FEEDS, FeedContext
from adapters.feeds.store import LatestStore, Rejected, RejectReason, StoreFeed
from controller.domain import EpochS
from controller.runtime.config_base import Secret
from controller.runtime.ports import Clock
from controller.runtime.redact import forget_secret, redact_url, register_secret
from controller.runtime.retry import Backoff

MARKET_TZ = ZoneInfo("America/Chicago")
TOKEN_REFRESH_MARGIN_S = 300.0
_PATHS = {"spp": "np6-905-cd/spp_node_zone_hub", "lmp": "np6-788-cd/lmp_node_zone_hub"}


_B2C = "https://ercotb2c.b2clogin.com/ercotb2c.onmicrosoft.com"
ERCOT_TOKEN_URL = f"{_B2C}/B2C_1_PUBAPI-ROPC-FLOW/oauth2/v2.0/token"
ERCOT_CLIENT_ID = "fec253ea-0d06-4272-a5e6-b478baeecd70"  # ERCOT's public ROPC client, fixed


class ErcotFeedConfig(BoundedFeedConfig):
    """ERCOT public API: 15-min settlement point prices (NP6-905-CD) or SCED LMPs (NP6-788-CD)."""

    type: Literal["ercot"]
    product: Literal["spp", "lmp"] = "spp"
    settlement_point: str = Field(pattern=r"^[A-Z0-9_]{2,32}$")
    username: str = Field(min_length=1)
    password: Secret
    subscription_key: Secret
    base_url: HttpUrl = "https://api.ercot.com/api/public-reports"
    token_url: HttpUrl = ERCOT_TOKEN_URL
    client_id: str = ERCOT_CLIENT_ID
    # ERCOT allows 30 requests a minute per subscription; one poll is one request.
    interval_s: float = Field(default=60.0, ge=2.0, le=3600)
    timeout_s: float = Field(default=20.0, gt=0, le=120)
    lookback_h: float = Field(default=2.0, gt=0, le=48)
    backoff: BackoffConfig = BackoffConfig(base_s=5.0, cap_s=600.0)


class _Lax(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TokenResponse(_Lax):
    """The B2C token endpoint's answer; ERCOT wants the ``id_token`` as bearer."""

    id_token: str = Field(min_length=1)
    expires_in: int = Field(default=3600, gt=0)


class ReportField(_Lax):
    """One column of a report."""

    name: str


class Report(_Lax):
    """The envelope every ERCOT report query returns."""

    fields: list[ReportField]
    data: list[list[Any]]


class SppRow(_Lax):
    """A row of NP6-905-CD."""

    deliveryDate: date  # noqa: N815 (ERCOT's column names)
    deliveryHour: int = Field(ge=1, le=24)  # noqa: N815 (hour ending)
    deliveryInterval: int = Field(ge=1, le=4)  # noqa: N815
    settlementPoint: str  # noqa: N815
    settlementPointPrice: float  # noqa: N815
    DSTFlag: bool = False

    def interval_start(self) -> datetime:
        """The interval's start, aware (UTC offset from the Chicago zone and the DST flag)."""
        local = datetime.combine(self.deliveryDate, datetime.min.time()) + timedelta(
            hours=self.deliveryHour - 1, minutes=15 * (self.deliveryInterval - 1)
        )
        return local.replace(tzinfo=MARKET_TZ, fold=int(self.DSTFlag))


class LmpRow(_Lax):
    """A row of NP6-788-CD."""

    SCEDTimestamp: datetime
    repeatHourFlag: bool = False  # noqa: N815
    settlementPoint: str  # noqa: N815
    LMP: float

    def stamp(self) -> datetime:
        """The SCED run time, aware."""
        ts = self.SCEDTimestamp
        if ts.tzinfo is not None:
            return ts
        return ts.replace(tzinfo=MARKET_TZ, fold=int(self.repeatHourFlag))


def parse_report(raw: bytes, product: str, point: str, bound: ValueBound) -> ParseResult | None:
    """The newest reading for ``point`` in an ERCOT report; None if it has no row for it."""
    try:
        report = Report.model_validate_json(raw)
    except ValidationError as exc:
        return Rejected(RejectReason.MALFORMED, validation_detail(exc))
    names = [f.name for f in report.fields]
    row_model: type[SppRow] | type[LmpRow] = SppRow if product == "spp" else LmpRow
    best: tuple[EpochS, float] | None = None
    for i, values in enumerate(report.data):
        if len(values) != len(names):
            return Rejected(RejectReason.MALFORMED, f"row {i} has {len(values)} of {len(names)}")
        row = dict(zip(names, values, strict=True))
        if row.get("settlementPoint") != point:
            continue
        try:
            parsed = row_model.model_validate(row)
        except ValidationError as exc:
            return Rejected(RejectReason.MALFORMED, f"row {i}: {validation_detail(exc)}")
        if isinstance(parsed, SppRow):
            when, value = parsed.interval_start(), parsed.settlementPointPrice
        else:
            when, value = parsed.stamp(), parsed.LMP
        t = epoch_of(when)
        if t is None:
            return Rejected(RejectReason.MALFORMED, f"row {i}: time out of range")
        if best is None or t > best[0]:
            best = (t, value)
    if best is None:
        return None
    source = f"ercot:{point}" if product == "spp" else f"ercot-lmp:{point}"
    return check_value(best[1], best[0], source, bound)


class ErcotFeed(PollingFeed):
    """Real-time price at one ERCOT settlement point, polled from the public API."""

    def __init__(
        self,
        config: ErcotFeedConfig,
        store: LatestStore,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(config, ReadingKind.PRICE, store, clock, backoff=backoff)
        self._cfg = config
        self._token: str | None = None
        self._last_token: str | None = None  # the token registered for masking
        self._token_expires_at: EpochS = 0.0
        self.token_requests = 0

    async def _bearer(self, session: aiohttp.ClientSession) -> str:
        now = self._clock.now()
        if self._token is not None and now < self._token_expires_at:
            return self._token
        cfg = self._cfg
        self.token_requests += 1
        form = {
            "username": cfg.username,
            "password": cfg.password.get_secret_value(),
            "grant_type": "password",
            "scope": f"openid {cfg.client_id} offline_access",
            "client_id": cfg.client_id,
            "response_type": "id_token",
        }
        try:
            body = await fetch_bytes(
                session, "POST", cfg.token_url, timeout_s=cfg.timeout_s, data=form
            )
        except PermanentFeedError as exc:
            raise PermanentFeedError(f"ERCOT token refused: {exc}", status=exc.status) from None
        try:
            token = TokenResponse.model_validate_json(body)
        except ValidationError as exc:
            raise TransientFeedError(f"ERCOT token response: {validation_detail(exc)}") from None
        if token.id_token != self._last_token:  # masked if a server or library echoes it
            forget_secret(self._last_token)  # one token an hour: the set must not grow for ever
            register_secret(token.id_token)
            self._last_token = token.id_token
        self._token = token.id_token
        self._token_expires_at = now + max(token.expires_in - TOKEN_REFRESH_MARGIN_S, 30.0)
        return self._token

    def _params(self) -> dict[str, str]:
        now_local = datetime.fromtimestamp(self._clock.now(), tz=MARKET_TZ)
        params = {"settlementPoint": self._cfg.settlement_point, "size": "1000"}
        if self._cfg.product == "spp":
            start = now_local - timedelta(hours=self._cfg.lookback_h)
            params["deliveryDateFrom"] = start.date().isoformat()
            params["deliveryDateTo"] = now_local.date().isoformat()
        else:
            start = now_local - timedelta(hours=self._cfg.lookback_h)
            params["SCEDTimestampFrom"] = start.strftime("%Y-%m-%dT%H:%M:%S")
        return params

    async def poll(self, session: aiohttp.ClientSession) -> Candidate | Rejected:
        """Fetch the recent report rows for the settlement point; the newest is the reading."""
        cfg = self._cfg
        url = f"{cfg.base_url.rstrip('/')}/{_PATHS[cfg.product]}"
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {await self._bearer(session)}",
                "Ocp-Apim-Subscription-Key": cfg.subscription_key.get_secret_value(),
                "Accept": "application/json",
            }
            try:
                body = await fetch_bytes(
                    session, "GET", url, timeout_s=cfg.timeout_s, headers=headers,
                    params=self._params(),
                )  # fmt: skip
            except PermanentFeedError as exc:
                if exc.status == 401 and attempt == 1:
                    self._token = None  # expired or revoked early: one fresh token, one retry
                    continue
                raise
            result = parse_report(body, cfg.product, cfg.settlement_point, self._bound)
            if result is None:
                raise TransientFeedError(f"no {cfg.settlement_point} rows in {redact_url(url)} yet")
            return result
        raise AssertionError("unreachable")  # pragma: no cover


def _build(config: ErcotFeedConfig, kind: ReadingKind, ctx: FeedContext) -> StoreFeed:
    store = ctx.store(kind, config.type, config.max_future_s)
    return ctx.poll(ErcotFeed(config, store, ctx.clock))


FEEDS.register("ercot", ErcotFeedConfig, _build)
