"""controller/config/: TOML scenarios through ``load_config``, and the ``Secret`` type."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.feeds.recorded import RecordedFeedConfig
from controller.catalog import NAMEPLATES
from controller.config import (
    ConfigError,
    HashsparkConfig,
    LoadedConfig,
    Secret,
    Strict,
    load_config,
    render,
)

SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "deploy" / "scenarios").glob("*.toml"))

S19_CURVE = "curve = [{ hashrate_th = 104, power_w = 3068 }]"


def errors_of(path: Path) -> list[str]:
    """The messages ``load_config`` raises for ``path``; fails if it loads."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.messages)
    return info.value.messages


def assert_one_error(path: Path, key_path: str, *reasons: str) -> str:
    """Exactly one message, ``<file>: <key path>: <reason>``, with every reason fragment."""
    messages = errors_of(path)
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.startswith(f"{path}: {key_path}: "), message
    for reason in reasons:
        assert reason in message, message
    return message


# --- the shipped scenarios ---------------------------------------------------------------


def test_the_issue_two_scenarios_are_shipped() -> None:
    names = {p.name for p in SCENARIOS}
    assert {
        "ercot-hb-south-capped.toml",
        "ercot-hb-south-hedged.toml",
        "ercot-hb-south-spot.toml",
    } <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_loads(path: Path, recordings_dir: Path) -> None:
    loaded = load_config(path)
    assert loaded.path == path
    assert re.fullmatch(r"[0-9a-f]{12}", loaded.version)
    assert loaded.config.scenario is not None
    assert loaded.config.scenario.name == path.stem
    (site,) = loaded.config.sites
    # Relative recording paths resolve against the scenario file's directory (a derived
    # hashprice has none: its Bitcoin feeds are the recordings).
    bitcoin = site.bitcoin
    parts = () if bitcoin is None else (bitcoin.btc_usd_feed, bitcoin.difficulty_feed)
    feeds = (site.price_feed, site.hashprice_feed, *parts)
    assert (site.hashprice_feed is None) == (bitcoin is not None and bitcoin.hashprice == "derived")
    for feed in (f for f in feeds if f is not None):
        assert isinstance(feed, RecordedFeedConfig)
        assert feed.path.is_file()
        assert feed.path.resolve().parent == recordings_dir.resolve()
    assert site.fleet().model_names


def test_baseline_with_absolute_paths_loads(make_scenario: Callable[..., Path]) -> None:
    loaded = load_config(make_scenario())
    site = loaded.config.sites[0]
    assert [h.id for h in site.hedges] == ["call-200", "fwd-70ph"]
    assert [(g.model, g.count) for g in site.miners] == [
        ("Antminer S19j Pro", 600),
        ("Antminer S21", 400),
    ]


def test_version_follows_the_file_bytes(make_scenario: Callable[..., Path]) -> None:
    a = load_config(make_scenario(name="a.toml"))
    b = load_config(make_scenario(name="b.toml", append="\n# a comment\n"))
    assert a.config == b.config
    assert a.version != b.version


def test_known_model_without_curve_uses_its_nameplate(
    make_scenario: Callable[..., Path],
) -> None:
    loaded = load_config(make_scenario((S19_CURVE, "")))
    group = loaded.config.sites[0].miners[0]
    assert group.curve is None
    assert group.points() == [NAMEPLATES["Antminer S19j Pro"]]


def test_render_is_json_and_validates_back(make_scenario: Callable[..., Path]) -> None:
    path = make_scenario()
    config = load_config(path).config
    data = render(config)
    text = json.dumps(data)
    assert isinstance(data["sites"][0]["price_feed"]["path"], str)
    again = HashsparkConfig.model_validate(json.loads(text), context={"base_dir": path.parent})
    assert again == config


# --- unknown keys ------------------------------------------------------------------------


#: (key path, baseline text, replacement that adds the unknown key)
UNKNOWN_KEYS = [
    ("colour", "[scenario]\n", 'colour = "blue"\n\n[scenario]\n'),
    ("scenario.author", "[scenario]\n", '[scenario]\nauthor = "me"\n'),
    ("daemon.threads", "[daemon]\n", "[daemon]\nthreads = 4\n"),
    ("sites[0].location", "pool_fee = 0.02\n", 'pool_fee = 0.02\nlocation = "TX"\n'),
    (
        "sites[0].price_feed.format",
        '[sites.price_feed]\ntype = "recorded"\n',
        '[sites.price_feed]\ntype = "recorded"\nformat = "csv"\n',
    ),
    ("sites[0].policy.hysteresis_band", "hysteresis_usd_per_mwh = 0", "hysteresis_band = 0"),
    ("sites[0].miners[1].serial", "count = 400\n", "count = 400\nserial = 'x'\n"),
    (
        "sites[0].miners[0].curve[0].fan_pct",
        S19_CURVE,
        "curve = [{ hashrate_th = 104, power_w = 3068, fan_pct = 80 }]",
    ),
    ("sites[0].supply.currency", "quantity_mw = 3.3\n", 'quantity_mw = 3.3\ncurrency = "USD"\n'),
    (
        "sites[0].hedges[0].counterparty",
        'id = "call-200"\n',
        'id = "call-200"\ncounterparty = "acme"\n',
    ),
    ("sites[0].hedges[1].note", 'id = "fwd-70ph"\n', 'id = "fwd-70ph"\nnote = "x"\n'),
    ("sites[0].failsafe.retries", 'action = "hold"\n', 'action = "hold"\nretries = 3\n'),
]


@pytest.mark.parametrize(
    ("key_path", "old", "new"), UNKNOWN_KEYS, ids=[row[0] for row in UNKNOWN_KEYS]
)
def test_unknown_key_fails_with_its_key_path(
    make_scenario: Callable[..., Path], key_path: str, old: str, new: str
) -> None:
    message = assert_one_error(make_scenario((old, new)), key_path, "unknown key")
    assert message.endswith(f"{key_path}: unknown key")


# --- bad values --------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-1", "-600"])
@pytest.mark.parametrize(
    ("line", "key_path"),
    [("count = 600", "sites[0].miners[0].count"), ("count = 400", "sites[0].miners[1].count")],
)
def test_miner_count_must_be_positive(
    make_scenario: Callable[..., Path], line: str, key_path: str, count: str
) -> None:
    path = make_scenario((line, f"count = {count}"))
    assert_one_error(path, key_path, "greater than or equal to 1")


def test_empty_miner_list_is_refused(make_scenario: Callable[..., Path]) -> None:
    text = make_scenario().read_text(encoding="utf-8")
    groups = text[text.index("[[sites.miners]]") : text.index("[sites.supply]")]
    path = make_scenario((groups, ""), ("pool_fee = 0.02\n", "pool_fee = 0.02\nminers = []\n"))
    assert_one_error(path, "sites[0].miners", "at least one")


@pytest.mark.parametrize(
    ("old", "new", "key_path", "reasons"),
    [
        (
            'type = "fixed_ppa"',
            'type = "bogus"',
            "sites[0].supply",
            ["'bogus'", "'spot', 'fixed_ppa', 'capped_ppa'"],
        ),
        (
            'type = "short_call"',
            'type = "put"',
            "sites[0].hedges[0]",
            ["'put'", "'short_call', 'hashrate_forward'"],
        ),
        (
            'type = "hashrate_forward"',
            'type = "swap"',
            "sites[0].hedges[1]",
            ["'swap'", "'short_call', 'hashrate_forward'"],
        ),
        (
            '[sites.price_feed]\ntype = "recorded"',
            '[sites.price_feed]\ntype = "kafka"',
            "sites[0].price_feed",
            ["'kafka'", "'recorded', 'mqtt', 'ercot', 'chain', 'hashprice_index'"],
        ),
        (
            '[sites.hashprice_feed]\ntype = "recorded"',
            '[sites.hashprice_feed]\ntype = "http"',
            "sites[0].hashprice_feed",
            ["'http'", "'recorded', 'mqtt'"],
        ),
        (
            'type = "simulated"',
            'type = "whatsminer"',
            "sites[0].driver",
            ["'simulated'", "'pyasic'"],
        ),
    ],
    ids=["supply", "hedge-0", "hedge-1", "price-feed", "hashprice-feed", "driver"],
)
def test_unknown_type_fails_and_names_the_known_ones(
    make_scenario: Callable[..., Path], old: str, new: str, key_path: str, reasons: list[str]
) -> None:
    assert_one_error(make_scenario((old, new)), key_path, *reasons)


@pytest.mark.parametrize(
    ("feed", "name"),
    [
        ("price_feed", "ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"),
        ("hashprice_feed", "btc_hashprice_daily_2024-05_2025-04_with_fees.csv"),
    ],
)
def test_missing_recording_names_path_and_key(
    make_scenario: Callable[..., Path], recordings_dir: Path, feed: str, name: str
) -> None:
    path = make_scenario((name, "no-such-recording.csv"))
    missing = recordings_dir / "no-such-recording.csv"
    assert_one_error(path, f"sites[0].{feed}.path", "no such file", str(missing))


def test_relative_recording_path_resolves_against_the_config_file(
    make_scenario: Callable[..., Path], recordings_dir: Path, tmp_path: Path
) -> None:
    price = f'"{recordings_dir.as_posix()}/ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"'
    path = make_scenario((price, '"data/price.csv"'))
    assert_one_error(
        path, "sites[0].price_feed.path", "no such file", str(tmp_path / "data" / "price.csv")
    )


def test_duplicate_site_ids_are_refused(
    make_scenario: Callable[..., Path], baseline_toml: str
) -> None:
    second_site = baseline_toml[baseline_toml.index("[[sites]]") :]
    path = make_scenario(append="\n" + second_site)
    assert_one_error(path, "(top level)", "site ids must be unique: hb-south")


def test_distinct_site_ids_are_accepted(
    make_scenario: Callable[..., Path], baseline_toml: str
) -> None:
    second_site = baseline_toml[baseline_toml.index("[[sites]]") :]
    second_site = second_site.replace('id = "hb-south"', 'id = "hb-south-2"')
    loaded = load_config(make_scenario(append="\n" + second_site))
    assert [s.id for s in loaded.config.sites] == ["hb-south", "hb-south-2"]


def test_duplicate_hedge_ids_are_refused(make_scenario: Callable[..., Path]) -> None:
    path = make_scenario(('id = "fwd-70ph"', 'id = "call-200"'))
    assert_one_error(path, "sites[0]", "hedge ids must be unique: call-200")


def test_model_without_curve_must_be_in_the_catalog(make_scenario: Callable[..., Path]) -> None:
    path = make_scenario(('model = "Antminer S19j Pro"', 'model = "Antminer S99"'), (S19_CURVE, ""))
    message = assert_one_error(path, "sites[0].miners[0]", "'Antminer S99'", "not a known model")
    assert "Antminer S21 XP" in message  # the known models are listed


def test_model_outside_the_catalog_is_fine_with_a_curve(
    make_scenario: Callable[..., Path],
) -> None:
    path = make_scenario(('model = "Antminer S19j Pro"', 'model = "Antminer S99"'))
    assert load_config(path).config.sites[0].miners[0].model == "Antminer S99"


#: (key path, the baseline line whose value is replaced)
FLOAT_FIELDS = [
    ("sites[0].supply.price_usd_per_mwh", "price_usd_per_mwh = 45"),
    ("sites[0].hedges[0].strike_usd_per_mwh", "strike_usd_per_mwh = 200"),
    ("sites[0].hedges[1].price_usd_per_ph_day", "price_usd_per_ph_day = 52"),
    ("sites[0].policy.adders_usd_per_mwh", "adders_usd_per_mwh = 0"),
    ("sites[0].failsafe.price_max_age_s", "price_max_age_s = 7200"),
]


@pytest.mark.parametrize("value", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
@pytest.mark.parametrize(("key_path", "old"), FLOAT_FIELDS, ids=[row[0] for row in FLOAT_FIELDS])
def test_nan_and_inf_are_refused(
    make_scenario: Callable[..., Path], key_path: str, old: str, value: str
) -> None:
    name, _, _ = old.partition(" = ")
    path = make_scenario((old, f"{name} = {value}"))
    assert_one_error(path, key_path, "finite number")


# --- unreadable files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("cycle_s = 900", "cycle_s = = 900"),
        ('id = "hb-south"', 'id = "hb-south'),
        ("[sites.supply]", "[sites.supply"),
    ],
    ids=["double-equals", "unterminated-string", "unclosed-table"],
)
def test_invalid_toml_names_the_line(
    make_scenario: Callable[..., Path], baseline_toml: str, old: str, new: str
) -> None:
    line = baseline_toml[: baseline_toml.index(old)].count("\n") + 1
    path = make_scenario((old, new))
    (message,) = errors_of(path)
    assert message.startswith(f"{path}: invalid TOML: "), message
    assert f"line {line}," in message, message


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "Is a directory"),
        (lambda p: p.write_bytes(b'[daemon]\nlog_level = "\xff"\n'), "not UTF-8"),
    ],
    ids=["missing", "directory", "not-utf8"],
)
def test_unreadable_file_is_one_error(
    tmp_path: Path, setup: Callable[[Path], Any], reason: str
) -> None:
    path = tmp_path / "config.toml"
    setup(path)
    (message,) = errors_of(path)
    assert message.startswith(f"{path}: "), message
    assert reason in message, message


# --- every error at once -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("edits", "key_paths"),
    [
        (
            [("count = 600", "count = -1"), ('type = "fixed_ppa"', 'type = "bogus"')],
            ["sites[0].miners[0].count", "sites[0].supply"],
        ),
        (
            [("hysteresis_usd_per_mwh = 0", "hysteresis_band = 0"), ("count = 400", "count = 0")],
            ["sites[0].miners[1].count", "sites[0].policy.hysteresis_band"],
        ),
        (
            [
                ("[scenario]\n", "colour = 1\n\n[scenario]\n"),
                ("cycle_s = 900", "cycle_s = -5"),
                ("price_usd_per_mwh = 45", "price_usd_per_mwh = nan"),
            ],
            ["colour", "daemon.cycle_s", "sites[0].supply.price_usd_per_mwh"],
        ),
    ],
    ids=["two", "two-in-lists", "three"],
)
def test_every_error_is_reported_at_once(
    make_scenario: Callable[..., Path], edits: list[tuple[str, str]], key_paths: list[str]
) -> None:
    path = make_scenario(*edits)
    messages = errors_of(path)
    prefix = f"{path}: "
    assert all(m.startswith(prefix) for m in messages), messages
    found = sorted(m.removeprefix(prefix).split(": ", 1)[0] for m in messages)
    assert found == sorted(key_paths), messages


# --- frozen ------------------------------------------------------------------------------


def _set_cycle(loaded: LoadedConfig) -> None:
    loaded.config.daemon.cycle_s = 1.0  # type: ignore[misc]


def _set_count(loaded: LoadedConfig) -> None:
    loaded.config.sites[0].miners[0].count = 1  # type: ignore[misc]


def _set_strike(loaded: LoadedConfig) -> None:
    loaded.config.sites[0].hedges[0].strike_usd_per_mwh = 1.0  # type: ignore[misc,union-attr]


def _set_sites(loaded: LoadedConfig) -> None:
    loaded.config.sites = ()  # type: ignore[misc]


def _append_site(loaded: LoadedConfig) -> None:
    loaded.config.sites.append(loaded.config.sites[0])  # type: ignore[attr-defined]


def _set_version(loaded: LoadedConfig) -> None:
    loaded.version = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (_set_cycle, ValidationError),
        (_set_count, ValidationError),
        (_set_strike, ValidationError),
        (_set_sites, ValidationError),
        (_append_site, AttributeError),
        (_set_version, dataclasses.FrozenInstanceError),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_config_is_frozen(
    make_scenario: Callable[..., Path],
    mutate: Callable[[LoadedConfig], None],
    error: type[Exception],
) -> None:
    loaded = load_config(make_scenario())
    before = render(loaded.config)
    with pytest.raises(error):
        mutate(loaded)
    assert render(loaded.config) == before


# --- secrets -----------------------------------------------------------------------------

SECRET_VALUE = "hunter2-s3cr3t"


class M(Strict):
    """A model with one secret field, standing in for a schema that has none yet."""

    password: Secret


def _secret_error(value: Any) -> str:
    with pytest.raises(ValidationError) as info:
        M.model_validate({"password": value})
    (error,) = info.value.errors()
    assert error["loc"] == ("password",)
    return str(error["msg"])


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHSPARK_X", SECRET_VALUE)
    m = M.model_validate({"password": {"env": "HASHSPARK_X"}})
    assert m.password.get_secret_value() == SECRET_VALUE


def test_secret_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHSPARK_X", raising=False)
    assert "HASHSPARK_X is not set" in _secret_error({"env": "HASHSPARK_X"})


def test_secret_env_needs_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_PASSWORD", SECRET_VALUE)  # set, so only the prefix can refuse it
    message = _secret_error({"env": "POOL_PASSWORD"})
    assert "HASHSPARK_" in message
    assert "POOL_PASSWORD" in message
    assert SECRET_VALUE not in message


def _secret_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET_VALUE + "\n", encoding="utf-8")
    path.chmod(mode)  # explicit, whatever the umask
    return path


def test_secret_from_private_file(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, 0o600)
    m = M.model_validate({"password": {"file": str(path)}})
    assert m.password.get_secret_value() == SECRET_VALUE  # trailing newline dropped


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_secret_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _secret_file(tmp_path, mode)
    message = _secret_error({"file": str(path)})
    assert str(path) in message
    assert "chmod 600" in message
    assert SECRET_VALUE not in message


def test_missing_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.txt"
    assert str(path) in _secret_error({"file": str(path)})


@pytest.mark.parametrize(
    "value",
    [
        SECRET_VALUE,
        "",
        {},
        {"path": "/etc/x"},
        {"env": "HASHSPARK_X", "file": "/etc/x"},
        42,
        ["HASHSPARK_X"],
    ],
    ids=["inline", "empty-inline", "empty-table", "wrong-key", "both-keys", "number", "list"],
)
def test_secret_must_be_env_or_file(monkeypatch: pytest.MonkeyPatch, value: Any) -> None:
    monkeypatch.setenv("HASHSPARK_X", SECRET_VALUE)
    message = _secret_error(value)
    assert "env" in message
    assert "file" in message


def test_secret_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHSPARK_X", SECRET_VALUE)
    m = M.model_validate({"password": {"env": "HASHSPARK_X"}})
    outputs = [
        repr(m),
        str(m),
        repr(m.password),
        str(m.password),
        json.dumps(m.model_dump(mode="json")),
        m.model_dump_json(),
        str(m.model_dump()),
    ]
    for out in outputs:
        assert SECRET_VALUE not in out, out
    assert m.model_dump(mode="json") == {"password": "**********"}


def test_a_bad_pyasic_driver_key_reads_as_its_key_path(
    make_scenario: Callable[..., Path],
) -> None:
    """The driver union's tags come from the registry: no tag in the key path, for any type."""
    path = make_scenario(('type = "simulated"', 'type = "pyasic"\nconcurrency = 0\nbogus = 1'))
    messages = errors_of(path)
    assert any(m.startswith(f"{path}: sites[0].driver.concurrency: ") for m in messages), messages
    assert f"{path}: sites[0].driver.bogus: unknown key" in messages
    assert not any(".pyasic." in m for m in messages), messages
