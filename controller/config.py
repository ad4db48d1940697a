"""Configuration: TOML parsed once into frozen pydantic models; unknown keys are errors.

Adapter configs are discriminated unions on ``type``. Relative paths resolve against the
directory of the file that names them. Secrets are never written inline: a secret field
takes ``{ env = "HASHSPARK_..." }`` or ``{ file = "/path" }`` and is held as a
``SecretStr`` that prints masked.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from adapters.feeds.config import (
    LIVE_FEED_TYPES,
    ChainFeedConfig,
    ErcotFeedConfig,
    HashpriceIndexFeedConfig,
    MqttBrokerConfig,
    MqttFeedConfig,
)
from controller.accounting.instruments import (
    FixedPpa,
    HashrateForward,
    Hedge,
    ShortCall,
    SpotSupply,
    Supply,
)
from controller.catalog import NAMEPLATES
from controller.curves.book import CurveBook, CurvePreference, GroupSpec, sorted_points
from controller.curves.fit import FitParams
from controller.decision.overrides import Override, OverrideKind
from controller.decision.policy import PolicyParams
from controller.domain import FailSafeAction, FleetSpec, build_fleet
from controller.runtime.config_base import (  # re-exported: the config's public names
    SECRET_ENV_PREFIX,
    ConfigError,
    NonEmpty,
    Secret,
    Strict,
    resolve_path,
)

__all__ = [
    "SECRET_ENV_PREFIX",
    "ConfigError",
    "HashsparkConfig",
    "LoadedConfig",
    "Secret",
    "Strict",
    "load_config",
]


# --- feeds -------------------------------------------------------------------------------


class RecordedFeedConfig(Strict):
    """Readings replayed from a canonical CSV recording (``timestamp`` + one value column)."""

    type: Literal["recorded"]
    path: Path

    _check_path = field_validator("path")(resolve_path)


#: Feed adapters by ``type``: recorded files, and the live feeds of ``adapters.feeds``.
FeedConfig = Annotated[
    RecordedFeedConfig
    | MqttFeedConfig
    | ErcotFeedConfig
    | ChainFeedConfig
    | HashpriceIndexFeedConfig,
    Field(discriminator="type"),
]


class CommandsConfig(Strict):
    """Bounds on operator and grid commands (the site's nominal MW caps demand response)."""

    max_hold_s: float = Field(default=86_400.0, gt=0, le=7 * 86_400)
    max_lead_s: float = Field(default=172_800.0, gt=0, le=14 * 86_400)


# --- miners ------------------------------------------------------------------------------


class CurvePoint(Strict):
    """One operating point: hashrate at a wall power."""

    hashrate_th: float = Field(gt=0)
    power_w: float = Field(gt=0)


class MinerGroup(Strict):
    """Identical miners: a model, how many (or their addresses), and a curve (nameplate if none)."""

    model: str = Field(min_length=1)
    count: int = Field(ge=1)
    curve: tuple[CurvePoint, ...] | None = None
    # Where the miners are (pyasic driver): addresses, FIRST-LAST ranges or CIDR blocks;
    # ``count`` defaults to how many they expand to. ``firmware`` is what discovery must find.
    addresses: tuple[str, ...] | None = None
    firmware: Literal["luxos", "stock", "braiins"] | None = None
    # Where the curve the optimiser plans with comes from (controller/curves/book.py):
    # config (this curve, or the nameplate), firmware, learned, or auto.
    curve_source: CurvePreference = CurvePreference.CONFIG
    # No point above this power, whatever the source (e.g. a LuxOS overclock profile).
    max_power_w: float | None = Field(default=None, gt=0)

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

    def points(self) -> list[tuple[float, float]]:
        """The curve as (hashrate_th, power_w) pairs."""
        if self.curve is None:
            return [NAMEPLATES[self.model]]
        return [(p.hashrate_th, p.power_w) for p in self.curve]


class CurvesConfig(Strict):
    """How learned curves are fitted and when a new curve replaces the one in use."""

    min_samples: int = Field(default=60, ge=1)  # samples over all levels after rejection
    min_samples_per_point: int = Field(default=5, ge=1)  # a power level with fewer is no point
    min_points: int = Field(default=2, ge=1)  # power levels a learned curve needs
    level_tolerance: float = Field(default=0.03, gt=0, le=0.2)  # one level spans 3 % of power
    outlier_mads: float = Field(default=3.5, gt=0)  # rejection beyond this many scaled MADs
    refit_interval_s: float = Field(default=600.0, ge=0)  # between fits of the learned curves
    change_threshold: float = Field(default=0.02, ge=0, lt=1)  # smaller moves keep the curve
    firmware_refresh_s: float | None = Field(default=None, gt=0)  # re-read; None: at start

    def fit_params(self) -> FitParams:
        """The fit's parameters as a core value."""
        return FitParams(
            min_samples=self.min_samples,
            min_samples_per_point=self.min_samples_per_point,
            min_points=self.min_points,
            level_tolerance=self.level_tolerance,
            outlier_mads=self.outlier_mads,
        )


class SimulatedDriverConfig(Strict):
    """The in-process fleet model: obeys every command at once (replays and tests)."""

    type: Literal["simulated"]
    initial_state: Literal["running", "curtailed"] = "running"


# The pyasic driver's model lives with its adapter; it imports Secret and Strict from here,
# so it is imported once they exist.
from adapters.miners.addresses import AddressError, expand_all  # noqa: E402
from adapters.miners.config import PyasicDriverConfig  # noqa: E402
from adapters.sharding.config import ShardingConfig  # noqa: E402

DriverConfig = Annotated[SimulatedDriverConfig | PyasicDriverConfig, Field(discriminator="type")]


# --- contracts ---------------------------------------------------------------------------


class SpotSupplyConfig(Strict):
    """Power bought at the real-time price."""

    type: Literal["spot"]


class FixedPpaConfig(Strict):
    """Fixed-price PPA; spare power resold at spot."""

    type: Literal["fixed_ppa"]
    quantity_mw: float = Field(gt=0)
    price_usd_per_mwh: float


class CappedPpaConfig(Strict):
    """Fixed-price PPA whose resale is capped at a strike (an embedded short call)."""

    type: Literal["capped_ppa"]
    quantity_mw: float = Field(gt=0)
    price_usd_per_mwh: float
    strike_usd_per_mwh: float


SupplyConfig = Annotated[
    SpotSupplyConfig | FixedPpaConfig | CappedPpaConfig, Field(discriminator="type")
]


class Term(Strict):
    """An instrument's term; open ends mean "throughout"."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ShortCallConfig(Term):
    """A financially settled short call on power."""

    type: Literal["short_call"]
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    quantity_mw: float = Field(gt=0)
    strike_usd_per_mwh: float
    premium_usd_per_mwh: float = Field(ge=0)


class HashrateForwardConfig(Term):
    """A hashrate forward or fixed pool payout, cash-settled on the hashprice index."""

    type: Literal["hashrate_forward"]
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    hashrate_ph: float = Field(gt=0)
    price_usd_per_ph_day: float = Field(gt=0)


HedgeConfig = Annotated[ShortCallConfig | HashrateForwardConfig, Field(discriminator="type")]


def _unique(kind: str, ids: list[str]) -> None:
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"{kind} must be unique: {', '.join(dupes)}")


def supply_contract(supply: SpotSupplyConfig | FixedPpaConfig | CappedPpaConfig) -> Supply:
    """A supply config as a core value."""
    match supply:
        case SpotSupplyConfig():
            return SpotSupply()
        case FixedPpaConfig(quantity_mw=q, price_usd_per_mwh=k):
            return FixedPpa(q, k)
        case CappedPpaConfig(quantity_mw=q, price_usd_per_mwh=k, strike_usd_per_mwh=s):
            return FixedPpa(q, k, resale_cap_usd_per_mwh=s)


def hedge_book(hedges: tuple[ShortCallConfig | HashrateForwardConfig, ...]) -> tuple[Hedge, ...]:
    """Hedge configs as core values."""
    book: list[Hedge] = []
    for h in hedges:
        start = h.start.timestamp() if h.start else None
        end = h.end.timestamp() if h.end else None
        match h:
            case ShortCallConfig():
                book.append(
                    ShortCall(
                        h.id, h.quantity_mw, h.strike_usd_per_mwh, h.premium_usd_per_mwh, start, end
                    )
                )
            case HashrateForwardConfig():
                book.append(
                    HashrateForward(h.id, h.hashrate_ph, h.price_usd_per_ph_day, start, end)
                )
    return tuple(book)


# --- policy ------------------------------------------------------------------------------


class PolicyConfig(Strict):
    """Hysteresis, delays, dwell times and ramp; all zero reproduces the pure rule."""

    adders_usd_per_mwh: float = 0.0
    hysteresis_usd_per_mwh: float = Field(default=0.0, ge=0)
    curtail_delay_s: float = Field(default=0.0, ge=0)
    resume_delay_s: float = Field(default=0.0, ge=0)
    min_run_s: float = Field(default=0.0, ge=0)
    min_off_s: float = Field(default=0.0, ge=0)
    ramp_up_mw_per_min: float | None = Field(default=None, gt=0)
    site_cap_mw: float | None = Field(default=None, ge=0)  # never draw more (interconnect)


class FailSafeConfig(Strict):
    """What to do when an input is older than its maximum age."""

    price_max_age_s: float = Field(default=900.0, gt=0)
    hashprice_max_age_s: float = Field(default=172_800.0, gt=0)
    action: FailSafeAction = FailSafeAction.HOLD


class SiteConfig(Strict):
    """One site: feeds, fleet, driver, supply and hedges, and its policy."""

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    pool_fee: float = Field(default=0.0, ge=0, lt=1)
    price_feed: FeedConfig
    hashprice_feed: FeedConfig
    driver: DriverConfig = SimulatedDriverConfig(type="simulated")
    miners: Annotated[tuple[MinerGroup, ...], NonEmpty]
    supply: SupplyConfig
    hedges: tuple[HedgeConfig, ...] = ()
    policy: PolicyConfig = PolicyConfig()
    failsafe: FailSafeConfig = FailSafeConfig()
    mqtt: MqttBrokerConfig | None = None  # status and commands; default: an MQTT feed's broker
    commands: CommandsConfig = CommandsConfig()
    curves: CurvesConfig = CurvesConfig()
    sharding: ShardingConfig | None = None  # fleet workers over MQTT; off: one process

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
        _unique("hedge ids", [h.id for h in self.hedges])
        return self

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
        return build_fleet([(g.model, g.count, g.points()) for g in self.miners])

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
        )


class DaemonConfig(Strict):
    """Process-wide settings."""

    cycle_s: float = Field(default=15.0, gt=0, le=3600)
    state_dir: Path = Path("/var/lib/hashspark")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_host: str = "127.0.0.1"  # loopback unless the operator opens it up
    metrics_port: int = Field(default=9108, ge=0, le=65535)  # 0: any free port
    ledger_sync: Literal["full", "normal"] = "full"  # normal: survives kill -9, not power loss
    on_shutdown: Literal["keep", "curtail", "run"] = "keep"  # where SIGTERM leaves the miners
    cycle_timeout_s: float = Field(default=120.0, gt=0)  # a cycle running longer is stuck


class Window(Strict):
    """A named part of a scenario to zoom into (``hashspark replay --window NAME``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class GridEventConfig(Strict):
    """A grid program or operator instruction that a replay applies at its time."""

    type: OverrideKind
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    start: AwareDatetime
    end: AwareDatetime
    max_mw: float | None = Field(default=None, ge=0)  # cap, or the base point's target
    deadline: AwareDatetime | None = None  # demand response: when the cap must be met
    tolerance_mw: float = Field(default=0.0, ge=0)  # base point

    @model_validator(mode="after")
    def _consistent(self) -> GridEventConfig:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.type in ("demand_response", "base_point") and self.max_mw is None:
            raise ValueError(f"a {self.type} event needs max_mw")
        return self

    def override(self) -> Override:
        """The event as the core's override."""
        return Override(
            self.id,
            self.type,
            self.start.timestamp(),
            self.end.timestamp(),
            self.max_mw,
            issued_by="scenario",
            deadline=self.deadline.timestamp() if self.deadline else None,
            tolerance_mw=self.tolerance_mw,
        )


class ScenarioConfig(Strict):
    """What a replay covers: its name, time window and named windows inside it."""

    name: str = Field(min_length=1)
    description: str = ""
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    events: tuple[GridEventConfig, ...] = ()  # grid programs to replay (site loop engine)
    windows: tuple[Window, ...] = ()

    @model_validator(mode="after")
    def _ordered(self) -> ScenarioConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        _unique("window names", [w.name for w in self.windows])
        for w in self.windows:
            if (self.start is not None and w.start < self.start) or (
                self.end is not None and w.end > self.end
            ):
                raise ValueError(f"window {w.name!r} is not inside the scenario's start..end")
        return self

    def window(self, name: str) -> Window | None:
        """The window called ``name``, if there is one."""
        return next((w for w in self.windows if w.name == name), None)


class StrategyConfig(Strict):
    """One supply and hedge book to compare, in the same schema as a site's."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    description: str = ""
    supply: SupplyConfig
    hedges: tuple[HedgeConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_hedge_ids(self) -> StrategyConfig:
        _unique("hedge ids", [h.id for h in self.hedges])
        return self


class CompareConfig(Strict):
    """The books ``hashspark compare`` replays side by side (a built-in set when absent)."""

    strategies: Annotated[tuple[StrategyConfig, ...], NonEmpty]

    @model_validator(mode="after")
    def _unique_names(self) -> CompareConfig:
        _unique("strategy names", [s.name for s in self.strategies])
        return self


class HashsparkConfig(Strict):
    """A whole config file: daemon settings, optional scenario, and the sites."""

    daemon: DaemonConfig = DaemonConfig()
    scenario: ScenarioConfig | None = None
    compare: CompareConfig | None = None
    sites: Annotated[tuple[SiteConfig, ...], NonEmpty]

    @model_validator(mode="after")
    def _unique_sites(self) -> HashsparkConfig:
        _unique("site ids", [s.id for s in self.sites])
        return self


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config with where it came from and a version for the ledger."""

    config: HashsparkConfig
    path: Path
    version: str


def format_loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a key path: ``sites[0].miners[1].count``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS:
            continue  # the discriminator value pydantic inserts; the key path is clearer without
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


_UNION_TAGS = {
    "recorded",
    *LIVE_FEED_TYPES,
    "simulated",
    "spot",
    "fixed_ppa",
    "capped_ppa",
    "short_call",
    "hashrate_forward",
}


def load_config(path: Path | str) -> LoadedConfig:
    """Read, parse and validate a config file; every problem is reported at once."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    try:
        config = HashsparkConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(
            [f"{path}: {format_loc(e['loc'])}: {_message(e)}" for e in exc.errors()]
        ) from None
    return LoadedConfig(config=config, path=path, version=hashlib.sha256(raw).hexdigest()[:12])


def _message(error: Any) -> str:
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "union_tag_invalid":
        return msg.replace("Input tag", "type")
    if error["type"] == "literal_error" and error["loc"] and error["loc"][-1] == "type":
        return f"unknown type {error['input']!r} (should be {msg.removeprefix('Input should be ')})"
    return msg


def render(config: HashsparkConfig) -> dict[str, Any]:
    """The resolved config as plain data, secrets masked (for ``check-config``)."""
    return config.model_dump(mode="json")


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with its zone (``Z`` or an offset); naive times are refused."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or an offset")
    return value
