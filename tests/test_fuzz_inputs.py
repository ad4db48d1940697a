"""Property tests over the file inputs: config files and recorded CSV files.

A config either loads or raises ``ConfigError`` with one message per problem; a recording
either loads as a valid ``Recording`` or raises ``RecordingError``; nothing else escapes.
The feed and command payloads are fuzzed in tests/feeds/test_fuzz_parsers.py.

The default run samples a few hundred cases per property; the 10,000-case variants and
the ``check-config`` subprocess sample are marked slow (``make test-slow``).
"""

from __future__ import annotations

import atexit
import json
import math
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.feeds.recorded import (
    HASHPRICE_COLUMN,
    PRICE_COLUMN,
    RecordingError,
    load_recording,
)
from controller.app.cli import main
from controller.config import ConfigError, LoadedConfig, load_config, render
from controller.domain import Recording
from tests.daemon_kit import EXE, ROOT

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
CLI_SLOW = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

SCENARIOS = sorted((ROOT / "deploy" / "scenarios").glob("*.toml"))
RECORDINGS = ROOT / "simulators" / "recordings"
_WORK = Path(tempfile.mkdtemp(prefix="hashspark-fuzz-"))  # one file per example, overwritten
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)

# --- a small TOML writer (inline tables only: enough for any nested document) ---------


def toml_value(value: Any) -> str:
    """``value`` as a TOML expression (JSON string escapes are TOML basic-string escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    """A top-level table: one ``key = value`` line per key."""
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items())


# --- strategies -------------------------------------------------------------------------

# The config's own vocabulary, so random documents reach deep into the models.
_CONFIG_KEYS = [
    "daemon", "scenario", "sites", "id", "pool_fee", "price_feed", "hashprice_feed", "driver",
    "miners", "model", "count", "curve", "hashrate_th", "power_w", "supply", "hedges", "type",
    "quantity_mw", "price_usd_per_mwh", "strike_usd_per_mwh", "premium_usd_per_mwh", "start",
    "end", "hashrate_ph", "price_usd_per_ph_day", "policy", "failsafe", "price_max_age_s",
    "hashprice_max_age_s", "action", "commands", "max_hold_s", "max_lead_s", "mqtt", "broker",
    "host", "port", "password", "env", "file", "path", "cycle_s", "state_dir", "metrics_port",
    "metrics_host", "ledger_sync", "on_shutdown", "log_level", "ramp_up_mw_per_min", "tls",
    "settlement_point", "product", "subscription_key", "username", "url", "interval_s",
]  # fmt: skip
_TYPES = ["recorded", "mqtt", "ercot", "chain", "hashprice_index", "simulated", "spot",
          "fixed_ppa", "capped_ppa", "short_call", "hashrate_forward"]  # fmt: skip
_keys = st.sampled_from(_CONFIG_KEYS) | st.text(max_size=10)
_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(_TYPES)
    | st.sampled_from(["2024-06-01T05:00:00Z", "2024-06-01", "HASHSPARK_X", "/nonexistent"])
    | st.text(max_size=20)
)
toml_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)
random_documents = st.dictionaries(_keys, toml_values, max_size=6).map(toml_document)


def _scenario_doc(path: Path) -> dict[str, Any]:
    text = path.read_text().replace('"../../simulators/recordings/', f'"{RECORDINGS.as_posix()}/')
    return tomllib.loads(text)


_SCENARIO_DOCS = [_scenario_doc(p) for p in SCENARIOS]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in a parsed document (dict keys and list indices)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _container(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def scenario_mutants(draw: st.DrawFn) -> str:
    """A shipped scenario with one to four keys deleted, replaced or added: near misses."""
    doc = json.loads(json.dumps(draw(st.sampled_from(_SCENARIO_DOCS)), default=str))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _container(doc, path)
        op = draw(st.sampled_from(["delete", "replace", "add"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(toml_values)
        elif isinstance(parent, dict):
            parent[draw(_keys)] = draw(toml_values)
        else:
            parent.append(draw(toml_values))
    return toml_document(doc)


@st.composite
def byte_mutants(draw: st.DrawFn) -> bytes:
    """A shipped scenario's raw text with bytes flipped, inserted or cut."""
    raw = bytearray(draw(st.sampled_from(SCENARIOS)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "insert", "cut"]))
        if op == "flip":
            raw[i] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[i:i] = draw(st.binary(min_size=1, max_size=6))
        else:
            del raw[i : i + draw(st.integers(1, 40))]
    return bytes(raw)


config_files = (
    random_documents.map(str.encode)
    | scenario_mutants().map(str.encode)
    | byte_mutants()
    | st.binary(max_size=200)
)


_HEADERS = ["timestamp,usd_per_mwh", "timestamp,usd_per_ph_day", " timestamp , usd_per_mwh",
            "time,usd_per_mwh", "", "timestamp"]  # fmt: skip


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """Recordings: mostly well-formed lines with a few broken, and sometimes raw garbage."""
    header = draw(st.sampled_from(_HEADERS) | st.text(max_size=20))
    t0 = draw(st.integers(1_500_000_000, 1_900_000_000))
    lines = [header]
    for i in range(draw(st.integers(0, 12))):
        t = t0 + draw(st.integers(-900, 900 * 4)) * (i + 1)
        stamp = np.datetime_as_string(np.datetime64(t, "s")) + draw(
            st.sampled_from(["Z", "+00:00", "-05:00", "", "Zz"])
        )
        value = draw(
            st.floats(allow_nan=True, allow_infinity=True).map(repr)
            | st.integers(-(10**8), 10**8).map(str)
            | st.sampled_from(["", "nan", "1e400", "0x10", "1_000", " 4 "])
        )
        line = draw(
            st.sampled_from([f"{stamp},{value}", f"{stamp},{value},x", stamp, f'"{stamp}",{value}'])
            | st.text(max_size=30)
        )
        lines.append(line)
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    raw = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        return raw
    if draw(st.booleans()):
        return draw(st.binary(max_size=40)) + raw  # garbage in front
    return raw[: draw(st.integers(0, len(raw)))]  # cut anywhere


# --- the properties ---------------------------------------------------------------------


def _write(raw: bytes, name: str) -> Path:
    path = _WORK / name
    path.write_bytes(raw)
    return path


def _config_loads_or_says_why(raw: bytes) -> None:
    path = _write(raw, "fuzz.toml")
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        messages = exc.messages
    else:
        assert isinstance(loaded, LoadedConfig)
        json.dumps(render(loaded.config))  # check-config prints it: it must render
        return
    assert messages, "a ConfigError must say what is wrong"
    for message in messages:
        assert isinstance(message, str)
        assert message.startswith(f"{path}"), message
        assert message.isprintable(), message  # one line each, whatever the file holds


def _recording_loads_or_says_why(raw: bytes) -> None:
    path = _write(raw, "fuzz.csv")
    for column in (PRICE_COLUMN, HASHPRICE_COLUMN):
        error: str | None
        try:
            rec = load_recording(path, column)
        except RecordingError as exc:
            error = str(exc)
        else:
            error = None
        if error is not None:
            assert error.startswith(f"{path}:"), error
            continue
        assert isinstance(rec, Recording)
        assert len(rec) >= 1
        assert rec.times.shape == rec.values.shape
        assert np.all(np.diff(rec.times) > 0)
        assert np.all(np.isfinite(rec.values))
        assert np.all(np.abs(rec.values) <= 1e6)


def _check_config_in_process(raw: bytes) -> None:
    path = _write(raw, "cli.toml")
    assert main(["check-config", str(path)]) in (0, 2)


def _both(check: Callable[[bytes], None], strategy: st.SearchStrategy[bytes]) -> tuple[Any, Any]:
    fast = FAST(given(strategy)(check))
    slow = pytest.mark.slow(SLOW(given(strategy)(check)))
    return fast, slow


test_config_loads_or_says_why, test_config_loads_or_says_why_10k = _both(
    _config_loads_or_says_why, config_files
)
test_recording_loads_or_says_why, test_recording_loads_or_says_why_10k = _both(
    _recording_loads_or_says_why, csv_files()
)
test_check_config_exits_0_or_2 = settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck)
)(given(config_files)(_check_config_in_process))


@pytest.mark.slow
@CLI_SLOW
@given(config_files)
def test_check_config_cli_never_prints_a_traceback(raw: bytes) -> None:
    path = _write(raw, "subprocess.toml")
    done = subprocess.run(
        [EXE, "check-config", str(path)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode in (0, 2), done.stderr
    assert b"Traceback" not in done.stderr + done.stdout
    if done.returncode == 2:
        lines = done.stderr.decode(errors="replace").splitlines()
        assert lines
        assert all(line.startswith("hashspark: error: ") for line in lines), lines


def test_the_shipped_scenarios_survive_the_round_trip_through_the_toml_writer() -> None:
    # The mutants start from the scenarios as re-written here: the writer must be faithful.
    for doc in _SCENARIO_DOCS:
        assert tomllib.loads(toml_document(json.loads(json.dumps(doc, default=str)))) is not None
        path = _write(toml_document(json.loads(json.dumps(doc, default=str))).encode(), "rt.toml")
        assert isinstance(load_config(path), LoadedConfig)


def test_a_key_with_a_line_break_is_reported_on_one_line() -> None:
    # Found by the CLI fuzzing: a key holding U+0085 split a message over two lines.
    for key in ("a\nb", "\u0085", "x\u2028y"):
        path = _write(toml_document({key: 1}).encode(), "nl.toml")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert all(m.isprintable() for m in caught.value.messages), caught.value.messages
        assert any(m.endswith(": unknown key") for m in caught.value.messages)
