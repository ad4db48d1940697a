"""Config bounds (issue 16): every number has a range, absurd values and hostile files are one
line and exit 2, never a traceback, a hang or 20 GB of memory.

The table of absurd values is validated in process (every case), and a representative subset
goes through the installed console script as ``check-config`` and as ``run``: both must exit
2 with the same single line naming the key path. The FIFO and ``/dev/zero`` run under a
timeout: a hang fails the test. A port in use is a real bound socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from controller.config import ConfigError, load_config
from controller.config.bounds import bounds_table, number_fields
from controller.runtime.config_bounds import MAX_CONFIG_BYTES, MAX_TOML_DEPTH
from tests.daemon_kit import EXE, ROOT

RECORDINGS = ROOT / "simulators" / "recordings"
PRICE = RECORDINGS / "ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"
HASHPRICE = RECORDINGS / "btc_hashprice_daily_2024-05_2025-04_with_fees.csv"


@dataclass(frozen=True)
class Parts:
    """Lines added to each table of a small valid site (recorded feeds, 50 S21, spot)."""

    daemon: str = ""
    metrics_port: int = 0
    cycle_s: str = "60"
    site_id: str = "s"
    site: str = ""
    price_feed: str = f'type = "recorded"\npath = "{PRICE}"'
    group: str = "count = 50"
    groups: int = 1
    supply: str = 'type = "spot"'
    policy: str = ""
    failsafe: str = ""
    curves: str = ""
    tail: str = ""

    def text(self) -> str:
        group = f'[[sites.miners]]\nmodel = "Antminer S21"\n{self.group}\n\n' * self.groups
        return f"""
[daemon]
metrics_port = {self.metrics_port}
cycle_s = {self.cycle_s}
{self.daemon}

[scenario]
name = "bounds"
start = "2024-08-20T00:00:00Z"
end = "2024-08-20T06:00:00Z"

[[sites]]
id = "{self.site_id}"
{self.site}

[sites.price_feed]
{self.price_feed}

[sites.hashprice_feed]
type = "recorded"
path = "{HASHPRICE}"

{group}
[sites.supply]
{self.supply}

[sites.policy]
{self.policy}

[sites.failsafe]
{self.failsafe}

[sites.curves]
{self.curves}

{self.tail}
"""


def _mqtt(broker: str = "") -> str:
    return f'type = "mqtt"\nbroker = {{ host = "127.0.0.1", port = 1{broker} }}'


LE = "less than or equal to"
GE = "greater than or equal to"

#: name -> (the config, the key path its one error names, what the message says)
ABSURD: dict[str, tuple[Parts, str, str]] = {
    "watchdog disabled": (
        Parts(daemon="cycle_timeout_s = 1e300"),
        "daemon.cycle_timeout_s",
        f"{LE} 3600",
    ),
    "cycle that spins": (Parts(cycle_s="1e-300"), "daemon.cycle_s", f"{GE} 0.1"),
    "cycle of inf": (Parts(cycle_s="inf"), "daemon.cycle_s", "finite number"),
    "metrics on every interface": (
        Parts(daemon='metrics_host = ""'),
        "daemon.metrics_host",
        "empty: it would listen on every interface",
    ),
    "metrics host with a space": (
        Parts(daemon='metrics_host = "127.0.0.1 evil"'),
        "daemon.metrics_host",
        "neither an IP address nor a host name",
    ),
    "metrics port past 65535": (
        Parts(metrics_port=70000),
        "daemon.metrics_port",
        f"{LE} 65535",
    ),
    "a site id too long for a file name": (
        Parts(site_id="a" * 300),
        "sites[0].id",
        "at most 64 characters",
    ),
    "a billion miners": (
        Parts(group="count = 1000000000"),
        "sites[0].miners[0].count",
        f"{LE} 65536",
    ),
    "10**30 miners": (
        Parts(group="count = 1000000000000000000000000000000"),
        "sites[0].miners[0].count",
        f"{LE} 65536",
    ),
    "a site of over a million miners": (
        Parts(group="count = 65536", groups=16),
        "sites[0]",
        "the miners' counts add up to 1048576, more than 1000000",
    ),
    "a curve point of a gigawatt": (
        Parts(group="count = 5\ncurve = [{ hashrate_th = 200, power_w = 1e9 }]"),
        "sites[0].miners[0].curve[0].power_w",
        f"{LE} 100000",
    ),
    "adders of -1e308": (
        Parts(policy="adders_usd_per_mwh = -1e308"),
        "sites[0].policy.adders_usd_per_mwh",
        f"{GE} -1000",
    ),
    "adders of nan": (
        Parts(policy="adders_usd_per_mwh = nan"),
        "sites[0].policy.adders_usd_per_mwh",
        "finite number",
    ),
    "hysteresis of 1e9": (
        Parts(policy="hysteresis_usd_per_mwh = 1e9"),
        "sites[0].policy.hysteresis_usd_per_mwh",
        f"{LE} 1000",
    ),
    "a dwell time of 1e20 s": (
        Parts(policy="min_run_s = 1e20"),
        "sites[0].policy.min_run_s",
        f"{LE} 86400",
    ),
    "a site cap of a terawatt": (
        Parts(policy="site_cap_mw = 1e6"),
        "sites[0].policy.site_cap_mw",
        f"{LE} 10000",
    ),
    "a price max age in milliseconds": (
        Parts(failsafe="price_max_age_s = 900000"),
        "sites[0].failsafe.price_max_age_s",
        f"{LE} 86400",
    ),
    "a hashprice max age of 1e12 s": (
        Parts(failsafe="hashprice_max_age_s = 1e12"),
        "sites[0].failsafe.hashprice_max_age_s",
        f"{LE} 604800",
    ),
    "a refit every 1e300 s": (
        Parts(curves="refit_interval_s = 1e300"),
        "sites[0].curves.refit_interval_s",
        f"{LE} 2592000",
    ),
    "a PPA of 1e12 MW": (
        Parts(supply='type = "fixed_ppa"\nquantity_mw = 1e12\nprice_usd_per_mwh = 45'),
        "sites[0].supply.quantity_mw",
        f"{LE} 10000",
    ),
    "a PPA price of 1e300": (
        Parts(supply='type = "fixed_ppa"\nquantity_mw = 1\nprice_usd_per_mwh = 1e300'),
        "sites[0].supply.price_usd_per_mwh",
        f"{LE} 10000",
    ),
    "a call premium of 1e300": (
        Parts(
            tail='[[sites.hedges]]\ntype = "short_call"\nid = "c"\nquantity_mw = 0.1\n'
            "strike_usd_per_mwh = 200\npremium_usd_per_mwh = 1e300"
        ),
        "sites[0].hedges[0].premium_usd_per_mwh",
        f"{LE} 10000",
    ),
    "a forward of 1e300 PH/s": (
        Parts(
            tail='[[sites.hedges]]\ntype = "hashrate_forward"\nid = "f"\nhashrate_ph = 1e300\n'
            "price_usd_per_ph_day = 50"
        ),
        "sites[0].hedges[0].hashrate_ph",
        f"{LE} 1000000",
    ),
    "a feed bound of 1e300": (
        Parts(price_feed=_mqtt() + "\nmax_value = 1e300"),
        "sites[0].price_feed.max_value",
        f"{LE} 1000000",
    ),
    "a broker backoff of 1e300 s": (
        Parts(price_feed=_mqtt(", backoff = { base_s = 1, cap_s = 1e300 }")),
        "sites[0].price_feed.broker.backoff.cap_s",
        f"{LE} 3600",
    ),
    "2,000 windows (a quadratic uniqueness check before)": (
        Parts(
            tail="".join(
                f'[[scenario.windows]]\nname = "w{i}"\nstart = "2024-08-20T01:00:00Z"\n'
                'end = "2024-08-20T02:00:00Z"\n'
                for i in range(2000)
            )
        ),
        "scenario.windows",
        "at most 1024 items",
    ),
    "a grid event of 1e300 MW": (
        Parts(
            tail='[[scenario.events]]\ntype = "demand_response"\nid = "dr"\n'
            'start = "2024-08-20T01:00:00Z"\nend = "2024-08-20T02:00:00Z"\nmax_mw = 1e300'
        ),
        "scenario.events[0].max_mw",
        f"{LE} 10000",
    ),
}


def _write(tmp_path: Path, parts: Parts) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(parts.text(), encoding="utf-8")
    return path


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, Parts())).config.sites[0].fleet().size == 50


@pytest.mark.parametrize("case", list(ABSURD))
def test_an_absurd_value_is_one_error_naming_its_key(tmp_path: Path, case: str) -> None:
    parts, key, says = ABSURD[case]
    path = _write(tmp_path, parts)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (message,) = info.value.messages
    assert message.startswith(f"{path}: {key}: "), message
    assert says in message, message


def test_every_number_has_a_lower_and_an_upper_bound() -> None:
    fields = number_fields()
    assert len(fields) > 60  # the walk reaches the adapters' models, not only the top
    unbounded = [f.path for f in fields if f.lower is None or f.upper is None]
    assert unbounded == []


def test_the_docs_carry_the_generated_table() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert bounds_table() in text, "regenerate it: python -m controller.config.bounds"


# --- hostile files ------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "a = " + "[" * depth + "]" * depth + "\n"


def test_a_file_nested_past_the_limit_is_refused(tmp_path: Path) -> None:
    for depth in (MAX_TOML_DEPTH, 5000):  # the limit's own, and past the parser's recursion
        path = tmp_path / "deep.toml"
        path.write_text(_nested(depth), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.messages == [
            f"{path}: tables or arrays nested deeper than {MAX_TOML_DEPTH}"
        ]
    path.write_text(_nested(MAX_TOML_DEPTH - 2), encoding="utf-8")  # within: parsed, then
    with pytest.raises(ConfigError) as info:  # refused by the schema as an unknown key
        load_config(path)
    assert f"{path}: a: unknown key" in info.value.messages


def test_a_file_larger_than_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    with path.open("wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES * 1000)  # sparse: 4 GB that take no disk
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.messages == [f"{path}: larger than {MAX_CONFIG_BYTES} bytes"]


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Is a directory"):
        load_config(tmp_path)


# --- through the console script: check-config and run alike -------------------------------


def _hashspark(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _refused_alike(tmp_path: Path, path: Path | str) -> str:
    """``check-config`` and ``run`` on ``path``: exit 2, the same one line; returns it."""
    check = _hashspark("check-config", path, cwd=tmp_path)
    run = _hashspark("run", path, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert (check.returncode, run.returncode) == (2, 2), (check.stderr, run.stderr)
    assert check.stderr == run.stderr
    assert "Traceback" not in check.stderr
    (line,) = check.stderr.splitlines()
    assert line.startswith("hashspark: error: "), line
    assert not (tmp_path / "state").exists()  # refused before it touched anything
    return line


#: Each case runs two console scripts (about 3 s): three run in the slow suite; every case is
#: refused in process in the default suite (test_an_absurd_value_is_one_error_naming_its_key).
CLI_CASES = [
    "watchdog disabled",
    pytest.param("metrics on every interface", marks=pytest.mark.slow),
    pytest.param("10**30 miners", marks=pytest.mark.slow),
    pytest.param("adders of -1e308", marks=pytest.mark.slow),
    "a price max age in milliseconds",
]


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_console_script_refuses_an_absurd_value(tmp_path: Path, case: str) -> None:
    parts, key, says = ABSURD[case]
    _write(tmp_path, parts)
    line = _refused_alike(tmp_path, "site.toml")
    assert line.startswith(f"hashspark: error: site.toml: {key}: "), line
    assert says in line


def test_the_console_script_refuses_deep_nesting(tmp_path: Path) -> None:
    (tmp_path / "deep.toml").write_text(_nested(100_000), encoding="utf-8")
    line = _refused_alike(tmp_path, "deep.toml")
    assert (
        line == f"hashspark: error: deep.toml: tables or arrays nested deeper than {MAX_TOML_DEPTH}"
    )


def test_a_key_of_too_many_dotted_parts_is_refused_before_the_parser(tmp_path: Path) -> None:
    # tomllib is quadratic in a dotted key's parts: 10,000 took 8 s, these would take days.
    long_key = ".".join(["a"] * 1_000_000) + " = 1\n"
    (tmp_path / "site.toml").write_text(long_key, encoding="utf-8")
    line = _refused_alike(tmp_path, "site.toml")  # a hang would time the subprocess out
    assert line == (
        f"hashspark: error: site.toml:1: a key or table header of more than {MAX_TOML_DEPTH} "
        "dotted parts"
    )


def test_a_long_table_header_is_refused_and_a_real_config_is_not(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("[" + ".".join(["t"] * 40) + "]\nx = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"site.toml:1: a key or table header of more than"):
        load_config(path)
    # Dots in values (addresses, floats, URLs) are not key parts.
    ips = ", ".join(f'"10.0.{i // 256}.{i % 256}"' for i in range(50))
    text = (
        Parts()
        .text()
        .replace("[sites.policy]", f"[sites.policy]\nadders_usd_per_mwh = 1.5 # {ips}")
    )
    path.write_text(text, encoding="utf-8")
    assert load_config(path).config.sites[0].policy.adders_usd_per_mwh == 1.5


def test_a_fifo_as_the_config_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "site.toml")
    line = _refused_alike(tmp_path, "site.toml")  # a hang would time the subprocess out
    assert line == "hashspark: error: site.toml: not a regular file (a config is a TOML file)"


def test_dev_zero_as_the_config_is_refused_without_reading_it(tmp_path: Path) -> None:
    line = _refused_alike(tmp_path, "/dev/zero")
    assert line == "hashspark: error: /dev/zero: not a regular file (a config is a TOML file)"


# --- what only run finds out: the metrics endpoint cannot listen ----------------------------


def _run_simulated(tmp_path: Path, parts: Parts) -> subprocess.CompletedProcess[str]:
    """``run --simulated`` on ``parts``, logging warnings only (the error is then the only line)."""
    _write(tmp_path, replace(parts, daemon=f'{parts.daemon}\nlog_level = "warning"'))
    return _hashspark("run", "site.toml", "--simulated", "--state-dir", "state", cwd=tmp_path)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    (line,) = proc.stderr.splitlines()
    return line


def test_a_metrics_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run_simulated(tmp_path, Parts(metrics_port=port))
    assert _one_line(proc) == (
        f"hashspark: error: site.toml: daemon.metrics_port: 127.0.0.1:{port} is already in use "
        "(Address already in use)"
    )


def test_an_unresolvable_metrics_host_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761).
    proc = _run_simulated(tmp_path, Parts(daemon='metrics_host = "metrics.invalid"'))
    line = _one_line(proc)
    assert line.startswith(
        "hashspark: error: site.toml: daemon.metrics_host: cannot resolve 'metrics.invalid' ("
    ), line


def test_a_metrics_host_not_on_this_machine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: documentation only, no interface has it.
    proc = _run_simulated(tmp_path, Parts(daemon='metrics_host = "192.0.2.1"'))
    assert _one_line(proc) == (
        "hashspark: error: site.toml: daemon.metrics_host, metrics_port: cannot listen on "
        "192.0.2.1:0 (Cannot assign requested address)"
    )


def test_a_metrics_port_override_past_65535_is_a_usage_error(tmp_path: Path) -> None:
    _write(tmp_path, Parts())
    proc = _hashspark("run", "site.toml", "--metrics-port", "70000", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr  # was OverflowError from bind(), exit 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "hashspark run: error: argument --metrics-port: '70000' is not a port (0 to 65535)"
    )
    assert not (tmp_path / "state").exists()


def test_the_simulators_fleet_file_is_read_the_same_way(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fleet.toml")
    (tmp_path / "deep.toml").write_text(_nested(100_000), encoding="utf-8")
    for name, reason in (
        ("fleet.toml", "not a regular file (a config is a TOML file)"),
        ("deep.toml", f"tables or arrays nested deeper than {MAX_TOML_DEPTH}"),
    ):
        proc = _hashspark("simulate", "--fleet", name, cwd=tmp_path)  # a hang times out
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [f"hashspark simulate: error: {name}: {reason}"]
