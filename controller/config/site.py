"""A site's config: its feeds, fleet, driver, supply and hedges, policy and fail-safe.

Over 300 lines: every check that spans a site's sections (addresses against the driver,
MQTT topics across feeds, sharding against the fleet) is a validator of the site, so that
``check-config`` and ``run`` refuse the same configs.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from adapters.control.auth import CommandAuthConfig
from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.mqtt import MqttFeedConfig
from adapters.miners.addresses import AddressError, expand_all
from adapters.miners.config import PyasicDriverConfig
from adapters.miners.simulated import SimulatedDriverConfig
from adapters.sharding.config import ShardingConfig
from controller.accounting.grid_revenue import GridProgram
from controller.accounting.instruments import Hedge, Supply
from controller.accounting.pool_payout import pool_of
from controller.catalog import DEFAULT_SLEEP_FRACTION, NAMEPLATES, SLEEP_POWER_W
from controller.config.adapters import DriverConfig, FeedConfig
from controller.config.bitcoin_inputs import BitcoinConfig, missing_bitcoin_feed
from controller.config.contracts import (
    HedgeConfig,
    SupplyConfig,
    hedge_book,
    one_pool,
    supply_contract,
    unique,
)
from controller.config.currency import (
    CURRENCY_PATTERN,
    USD_ONLY_PRICE_FEEDS,
    ExchangeRateConfig,
    Market,
    check_currencies,
)
from controller.config.grid import CapacityAwardConfig, GridProgramConfig, grid_book
from controller.config.pacing import GroupPacingConfig, PacingConfig, pacing_params
from controller.currency import USD
from controller.curves.book import CurveBook, CurvePreference, GroupSpec, sorted_points
from controller.curves.fit import FitParams
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.domain import FailSafeAction, FleetSpec, FloatArray, build_fleet, group_names
from controller.runtime.config_base import NonEmpty, Strict
from controller.runtime.config_bounds import (
    MAX_ADDERS_USD_PER_MWH,
    MAX_CURVE_POINTS,
    MAX_DELAY_S,
    MAX_GROUP_MINERS,
    MAX_GROUPS,
    MAX_HASHPRICE_AGE_S,
    MAX_HEDGES,
    MAX_MINER_HASHRATE_TH,
    MAX_MINER_POWER_W,
    MAX_OUTLIER_MADS,
    MAX_PRICE_AGE_S,
    MAX_REFRESH_S,
    MAX_SAMPLES,
    MAX_SITE_MINERS,
    MAX_SITE_MW,
)


class CommandsConfig(CommandAuthConfig):
    """Bounds on operator and grid commands (the site's nominal MW caps demand response), and
    who may send them: issuers with keys (then every command must be signed) and the replay
    window."""

    max_hold_s: float = Field(default=86_400.0, gt=0, le=7 * 86_400)
    max_lead_s: float = Field(default=172_800.0, gt=0, le=14 * 86_400)


class CurvePoint(Strict):
    """One operating point: hashrate at a wall power."""

    hashrate_th: float = Field(gt=0, le=MAX_MINER_HASHRATE_TH)
    power_w: float = Field(gt=0, le=MAX_MINER_POWER_W)


class MinerGroup(Strict):
    """Identical miners: a model, how many (or their addresses), and a curve (nameplate if none)."""

    model: str = Field(min_length=1, max_length=128)
    count: int = Field(ge=1, le=MAX_GROUP_MINERS)
    curve: tuple[CurvePoint, ...] | None = Field(default=None, max_length=MAX_CURVE_POINTS)
    # Where the miners are (pyasic driver): addresses, FIRST-LAST ranges or CIDR blocks;
    # ``count`` defaults to how many they expand to. ``firmware`` is what discovery must find.
    addresses: tuple[str, ...] | None = None
    firmware: Literal["luxos", "stock", "braiins"] | None = None
    # Where the curve the optimiser plans with comes from (controller/curves/book.py):
    # config (this curve, or the nameplate), firmware, learned, or auto.
    curve_source: CurvePreference = CurvePreference.CONFIG
    # No point above this power, whatever the source (e.g. a LuxOS overclock profile).
    max_power_w: float | None = Field(default=None, gt=0, le=MAX_MINER_POWER_W)
    # What one miner draws asleep (curtailed): counted in grid compliance. Default: the
    # catalog's figure for the model, else 1 % of its top point (controller/catalog.py).
    sleep_power_w: float | None = Field(default=None, ge=0, le=MAX_MINER_POWER_W)
    # The group's own actuation pacing; unset keys come from [sites.pacing].
    pacing: GroupPacingConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _count_from_addresses(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("addresses") is not None:
            try:
                n = len(expand_all(data["addresses"]))
            except (AddressError, TypeError) as exc:
                raise ValueError(f"addresses: {exc}") from None
            if data.get("count") is None:
                data = {**data, "count": n}
            elif data["count"] != n:
                raise ValueError(f"count is {data['count']} but the addresses name {n} miners")
        return data

    @model_validator(mode="after")
    def _known_curve(self) -> MinerGroup:
        if self.curve is None and self.model not in NAMEPLATES:
            known = ", ".join(sorted(NAMEPLATES))
            raise ValueError(f"no curve given and {self.model!r} is not a known model ({known})")
        if self.curve is not None:
            if not self.curve:
                raise ValueError("curve needs at least one point")
            powers = [p.power_w for p in self.curve]
            if len(set(powers)) != len(powers):
                raise ValueError("curve points need distinct power_w")
        if self.max_power_w is not None:
            above = [w for _, w in self.points() if w > self.max_power_w]
            if above:
                raise ValueError(
                    f"max_power_w {self.max_power_w:g} is below the curve's {max(above):g} W "
                    "(the nameplate's, if no curve is given)"
                )
        return self

    def sleep_w(self) -> float:
        """What one miner of the group draws asleep."""
        if self.sleep_power_w is not None:
            return self.sleep_power_w
        if self.model in SLEEP_POWER_W:
            return SLEEP_POWER_W[self.model]
        return DEFAULT_SLEEP_FRACTION * max(w for _, w in self.points())

    def points(self) -> list[tuple[float, float]]:
        """The curve as (hashrate_th, power_w) pairs."""
        if self.curve is None:
            return [NAMEPLATES[self.model]]
        return [(p.hashrate_th, p.power_w) for p in self.curve]


class CurvesConfig(Strict):
    """How learned curves are fitted and when a new curve replaces the one in use."""

    # Samples over all levels after rejection.
    min_samples: int = Field(default=60, ge=1, le=MAX_SAMPLES)
    # A power level with fewer is no point.
    min_samples_per_point: int = Field(default=5, ge=1, le=MAX_SAMPLES)
    min_points: int = Field(default=2, ge=1, le=MAX_CURVE_POINTS)  # levels a learned curve needs
    level_tolerance: float = Field(default=0.03, gt=0, le=0.2)  # one level spans 3 % of power
    # Rejection beyond this many scaled MADs.
    outlier_mads: float = Field(default=3.5, gt=0, le=MAX_OUTLIER_MADS)
    # Between fits of the learned curves.
    refit_interval_s: float = Field(default=600.0, ge=0, le=MAX_REFRESH_S)
    change_threshold: float = Field(default=0.02, ge=0, lt=1)  # smaller moves keep the curve
    # Re-read the firmware's curves this often; None: at start only.
    firmware_refresh_s: float | None = Field(default=None, gt=0, le=MAX_REFRESH_S)

    def fit_params(self) -> FitParams:
        """The fit's parameters as a core value."""
        return FitParams(
            min_samples=self.min_samples,
            min_samples_per_point=self.min_samples_per_point,
            min_points=self.min_points,
            level_tolerance=self.level_tolerance,
            outlier_mads=self.outlier_mads,
        )


class PolicyConfig(Strict):
    """Hysteresis, delays, dwell times and ramp; all zero reproduces the pure rule."""

    adders_usd_per_mwh: float = Field(
        default=0.0, ge=-MAX_ADDERS_USD_PER_MWH, le=MAX_ADDERS_USD_PER_MWH
    )
    hysteresis_usd_per_mwh: float = Field(default=0.0, ge=0, le=MAX_ADDERS_USD_PER_MWH)
    curtail_delay_s: float = Field(default=0.0, ge=0, le=MAX_DELAY_S)
    resume_delay_s: float = Field(default=0.0, ge=0, le=MAX_DELAY_S)
    min_run_s: float = Field(default=0.0, ge=0, le=MAX_DELAY_S)
    min_off_s: float = Field(default=0.0, ge=0, le=MAX_DELAY_S)
    ramp_up_mw_per_min: float | None = Field(default=None, gt=0, le=MAX_SITE_MW)
    # Never draw more (the interconnect).
    site_cap_mw: float | None = Field(default=None, ge=0, le=MAX_SITE_MW)


class FailSafeConfig(Strict):
    """What to do when an input is older than its maximum age."""

    price_max_age_s: float = Field(default=900.0, gt=0, le=MAX_PRICE_AGE_S)
    hashprice_max_age_s: float = Field(default=172_800.0, gt=0, le=MAX_HASHPRICE_AGE_S)
    action: FailSafeAction = FailSafeAction.HOLD


class SiteConfig(Strict):
    """One site: feeds, fleet, driver, supply and hedges, and its policy."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    pool_fee: float = Field(default=0.0, ge=0, lt=1)
    price_feed: FeedConfig
    #: None only when ``bitcoin.hashprice = "derived"`` builds it from the Bitcoin feeds.
    hashprice_feed: FeedConfig | None = None
    #: The BTC price, difficulty and fees per block (Bitcoin instruments settle on them).
    bitcoin: BitcoinConfig | None = None
    #: Day-ahead prices for options settled on them; never enters the decision. A site
    #: whose price feed is the day-ahead market (market = "day_ahead") needs none.
    day_ahead_feed: FeedConfig | None = None
    driver: DriverConfig = SimulatedDriverConfig(type="simulated")
    miners: Annotated[tuple[MinerGroup, ...], NonEmpty, Field(max_length=MAX_GROUPS)]
    supply: SupplyConfig
    hedges: tuple[HedgeConfig, ...] = Field(default=(), max_length=MAX_HEDGES)
    # Capacity awards and 4CP credits: settled and reported, never deciding.
    grid_programs: tuple[GridProgramConfig, ...] = Field(default=(), max_length=MAX_HEDGES)
    policy: PolicyConfig = PolicyConfig()
    failsafe: FailSafeConfig = FailSafeConfig()
    pacing: PacingConfig = PacingConfig()  # per-miner command pacing and failure backoff
    mqtt: MqttBrokerConfig | None = None  # status and commands; default: an MQTT feed's broker
    commands: CommandsConfig = CommandsConfig()
    curves: CurvesConfig = CurvesConfig()
    sharding: ShardingConfig | None = None  # fleet workers over MQTT; off: one process
    # What the site's figures are in, what its prices are in, and the rate between them
    # (controller/config/currency.py); the market its price feed is.
    currency: str = Field(default="USD", pattern=CURRENCY_PATTERN)
    price_currency: str | None = Field(default=None, pattern=CURRENCY_PATTERN)
    exchange_rate: ExchangeRateConfig | None = None
    market: Market = "real_time"

    @property
    def broker(self) -> MqttBrokerConfig | None:
        """Where the site publishes its status and takes commands, if anywhere."""
        if self.mqtt is not None:
            return self.mqtt
        for feed in (self.price_feed, self.hashprice_feed):
            if isinstance(feed, MqttFeedConfig):
                return feed.broker
        return None

    @model_validator(mode="after")
    def _unique_hedge_ids(self) -> SiteConfig:
        unique("hedge ids", [h.id for h in self.hedges])
        one_pool(self.hedges)
        # Grid programs book flows under their ids beside the hedges': one namespace.
        unique("hedge and grid program ids", [*(h.id for h in self.hedges), *self.grid_ids()])
        return self

    @property
    def prices_in(self) -> str:
        """The price feed's currency."""
        return self.price_currency or self.currency

    @model_validator(mode="after")
    def _rates_for_currencies(self) -> SiteConfig:
        check_currencies(self.currency, self.prices_in, self.exchange_rate)
        for key in ("price_feed", "day_ahead_feed"):
            feed_type = getattr(getattr(self, key), "type", None)
            if feed_type in USD_ONLY_PRICE_FEEDS and self.prices_in != USD:
                raise ValueError(
                    f"{key}: an {feed_type} feed quotes USD/MWh, and price_currency is "
                    f'{self.prices_in}: set price_currency = "USD" (or leave it out)'
                )
        return self

    @model_validator(mode="after")
    def _day_ahead_market_holds_its_hour(self) -> SiteConfig:
        if self.market == "day_ahead" and self.failsafe.price_max_age_s <= 3600:
            raise ValueError(
                "failsafe.price_max_age_s: a day-ahead price holds for its hour; give more "
                f"than 3600 s (it is {self.failsafe.price_max_age_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _bitcoin_feeds(self) -> SiteConfig:
        derived = self.bitcoin is not None and self.bitcoin.hashprice == "derived"
        if derived and self.hashprice_feed is not None:
            raise ValueError(
                "hashprice_feed: bitcoin.hashprice is 'derived' (built from the Bitcoin "
                "feeds); drop hashprice_feed or set bitcoin.hashprice = 'feed'"
            )
        if not derived and self.hashprice_feed is None:
            raise ValueError("hashprice_feed: give it (or bitcoin.hashprice = 'derived')")
        missing = missing_bitcoin_feed(self.hedges, self.bitcoin)
        if missing is not None:
            raise ValueError(missing)
        return self

    @model_validator(mode="after")
    def _day_ahead_for_options(self) -> SiteConfig:
        day_ahead_market = self.market == "day_ahead"
        for k, h in enumerate(self.hedges):
            if (
                getattr(h, "settlement", None) == "day_ahead"
                and self.day_ahead_feed is None
                and not day_ahead_market
            ):
                raise ValueError(
                    f"hedges[{k}] ({h.id}) settles on day-ahead prices: give day_ahead_feed"
                )
        if isinstance(self.day_ahead_feed, MqttFeedConfig) and self.day_ahead_feed.topic is None:
            raise ValueError(
                "day_ahead_feed.topic: give the topic (the default one is the price feed's), "
                f"e.g. hashspark/{self.id}/price_da"
            )
        return self

    def grid_ids(self) -> list[str]:
        """The grid programs' ids."""
        return [g.id for g in self.grid_programs]

    def award_ids(self) -> set[str]:
        """The capacity awards' ids (what a grid event's ``award`` may name)."""
        return {g.id for g in self.grid_programs if isinstance(g, CapacityAwardConfig)}

    def grid_book(self) -> tuple[GridProgram, ...]:
        """The grid programs as core values."""
        return grid_book(self.grid_programs)

    @model_validator(mode="after")
    def _plausible_fleet(self) -> SiteConfig:
        total = sum(g.count for g in self.miners)
        if total > MAX_SITE_MINERS:
            raise ValueError(f"the miners' counts add up to {total}, more than {MAX_SITE_MINERS}")
        return self

    @model_validator(mode="after")
    def _distinct_mqtt_topics(self) -> SiteConfig:
        """Two feeds on one broker cannot read one topic, nor the site's own topics."""
        seen: dict[tuple[MqttBrokerConfig, str], str] = {}
        for name, feed in (
            ("price_feed", self.price_feed),
            ("hashprice_feed", self.hashprice_feed),
            ("day_ahead_feed", self.day_ahead_feed),
        ):
            if not isinstance(feed, MqttFeedConfig):
                continue
            prefix = f"{feed.broker.topic_prefix.rstrip('/')}/{self.id}"
            topic = feed.topic or f"{prefix}/{name.removesuffix('_feed')}"
            if topic in (f"{prefix}/status", f"{prefix}/command", f"{prefix}/command/ack"):
                raise ValueError(f"{name}.topic {topic} is the site's own status or command topic")
            other = seen.setdefault((feed.broker, topic), name)
            if other != name:
                raise ValueError(f"{other} and {name} both read {topic} on the same broker")
        return self

    @model_validator(mode="after")
    def _addresses_for_the_driver(self) -> SiteConfig:
        """A driver that talks to miners needs every group's addresses, and no address may
        be in two groups (checked here, so ``check-config`` refuses what ``run`` refuses)."""
        if self.driver.needs_addresses:
            missing = [
                f"miners[{k}] ({g.model})" for k, g in enumerate(self.miners) if not g.addresses
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)}: the {self.driver.type} driver needs every group's "
                    "addresses"
                )
        listed = [ip for g in self.miners if g.addresses for ip in expand_all(g.addresses)]
        dupes = sorted(ip for ip, n in Counter(listed).items() if n > 1)
        if dupes:
            raise ValueError(f"addresses listed twice: {', '.join(dupes)}")
        return self

    def addresses(self) -> tuple[list[str], list[str | None]]:
        """Every miner's address and expected firmware, in fleet order (group by group).

        Only for a site whose groups all list addresses: the validator makes sure of it for a
        driver that talks to miners.
        """
        addresses: list[str] = []
        firmware: list[str | None] = []
        for k, group in enumerate(self.miners):
            if group.addresses is None:
                raise ValueError(f"sites[{self.id}].miners[{k}] ({group.model}) has no addresses")
            ips = expand_all(group.addresses)
            addresses += ips
            firmware += [group.firmware] * len(ips)
        return addresses, firmware

    @model_validator(mode="after")
    def _sharding_needs_pyasic_and_a_broker(self) -> SiteConfig:
        if self.sharding is None:
            return self
        if not isinstance(self.driver, PyasicDriverConfig):
            raise ValueError('sharding needs driver.type = "pyasic" (workers drive miners)')
        if self.shard_broker is None:
            raise ValueError(
                "sharding needs a broker: sharding.broker, [sites.mqtt] or an MQTT feed"
            )
        miners = sum(g.count for g in self.miners)
        if self.sharding.shards > miners:
            raise ValueError(f"sharding.shards is {self.sharding.shards} for {miners} miners")
        return self

    @property
    def shard_broker(self) -> MqttBrokerConfig | None:
        """Where a sharded site's planner and workers meet."""
        if self.sharding is not None and self.sharding.broker is not None:
            return self.sharding.broker
        return self.broker

    def fleet(self) -> FleetSpec:
        """The fleet as arrays for the core."""
        return build_fleet(
            [(g.model, g.count, g.points()) for g in self.miners],
            group_names([g.model for g in self.miners], [g.firmware for g in self.miners]),
        )

    def sleep_power_w(self) -> FloatArray:
        """Each miner's draw asleep, in fleet order (group by group)."""
        return np.concatenate([np.full(g.count, g.sleep_w()) for g in self.miners])

    def supply_contract(self) -> Supply:
        """The supply contract as a core value."""
        return supply_contract(self.supply)

    def curve_book(self) -> CurveBook:
        """Each group's curve sources, with the config's curves in use until others arrive."""
        groups = [
            GroupSpec(
                model=g.model,
                count=g.count,
                firmware=g.firmware,
                config_points=sorted_points(g.points()),
                config_is_nameplate=g.curve is None,
                preference=g.curve_source,
                max_power_w=g.max_power_w,
            )
            for g in self.miners
        ]
        c = self.curves
        return CurveBook(
            groups,
            fit=c.fit_params(),
            refit_interval_s=c.refit_interval_s,
            change_threshold=c.change_threshold,
        )

    def hedge_book(self) -> tuple[Hedge, ...]:
        """The hedges as core values."""
        return hedge_book(self.hedges)

    def pacing_params(self) -> PacingParams:
        """The actuation pacing as a core value (per miner where a group sets its own)."""
        return pacing_params(self.pacing, [(g.count, g.pacing) for g in self.miners])

    @model_validator(mode="after")
    def _group_pacing_whole(self) -> SiteConfig:
        """A group's keys over the site's must make a valid whole (cap above the first wait)."""
        for k, g in enumerate(self.miners):
            if g.pacing is not None:
                try:
                    g.pacing.over(self.pacing)
                except ValueError as exc:
                    raise ValueError(f"miners[{k}].pacing: {_first_error(exc)}") from None
        return self

    def policy_params(self) -> PolicyParams:
        """The decision parameters as a core value."""
        p, f = self.policy, self.failsafe
        return PolicyParams(
            supply=self.supply_contract(),
            pool_fee=self.pool_fee,
            adders_usd_per_mwh=p.adders_usd_per_mwh,
            hysteresis_usd_per_mwh=p.hysteresis_usd_per_mwh,
            curtail_delay_s=p.curtail_delay_s,
            resume_delay_s=p.resume_delay_s,
            min_run_s=p.min_run_s,
            min_off_s=p.min_off_s,
            ramp_up_mw_per_min=p.ramp_up_mw_per_min,
            site_cap_mw=p.site_cap_mw,
            price_max_age_s=f.price_max_age_s,
            hashprice_max_age_s=f.hashprice_max_age_s,
            failsafe_action=f.action,
            pool=pool_of(self.hedge_book()),
        )


def _first_error(exc: ValueError) -> str:
    """A validation error's first message, without pydantic's decoration."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return str(first.get("msg", exc)).removeprefix("Value error, ")
    return str(exc)
