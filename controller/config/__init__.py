"""Configuration: TOML parsed once into frozen pydantic models; unknown keys are errors.

Adapter configs are discriminated unions on ``type``, derived from the adapter registries
(``controller/config/adapters.py``). Relative paths resolve against the directory of the
file that names them. Secrets are never written inline: a secret field takes
``{ env = "HASHSPARK_..." }`` or ``{ file = "/path" }`` and is held as a ``SecretStr``
that prints masked.
"""

from controller.config.adapters import DriverConfig, FeedConfig
from controller.config.contracts import (
    CappedPpaConfig,
    FixedPpaConfig,
    HashrateForwardConfig,
    HedgeConfig,
    PoolPayoutConfig,
    ShortCallConfig,
    SpotSupplyConfig,
    SupplyConfig,
    hedge_book,
    supply_contract,
)
from controller.config.load import (
    DaemonConfig,
    HashsparkConfig,
    LoadedConfig,
    format_loc,
    load_config,
    load_daemon_settings,
    parse_time,
    render,
)
from controller.config.plausibility import contract_warnings
from controller.config.scenario import (
    CompareConfig,
    GridEventConfig,
    ScenarioConfig,
    StrategyConfig,
    Window,
)
from controller.config.site import (
    CommandsConfig,
    CurvePoint,
    CurvesConfig,
    FailSafeConfig,
    MinerGroup,
    PolicyConfig,
    SiteConfig,
)
from controller.config.terms import Term
from controller.runtime.config_base import SECRET_ENV_PREFIX, ConfigError, Secret, Strict

__all__ = [
    "SECRET_ENV_PREFIX",
    "CappedPpaConfig",
    "CommandsConfig",
    "CompareConfig",
    "ConfigError",
    "CurvePoint",
    "CurvesConfig",
    "DaemonConfig",
    "DriverConfig",
    "FailSafeConfig",
    "FeedConfig",
    "FixedPpaConfig",
    "GridEventConfig",
    "HashrateForwardConfig",
    "HashsparkConfig",
    "HedgeConfig",
    "LoadedConfig",
    "MinerGroup",
    "PolicyConfig",
    "PoolPayoutConfig",
    "ScenarioConfig",
    "Secret",
    "ShortCallConfig",
    "SiteConfig",
    "SpotSupplyConfig",
    "StrategyConfig",
    "Strict",
    "SupplyConfig",
    "Term",
    "Window",
    "contract_warnings",
    "format_loc",
    "hedge_book",
    "load_config",
    "load_daemon_settings",
    "parse_time",
    "render",
    "supply_contract",
]
