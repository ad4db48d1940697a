"""Restarts and reloads of ``hashspark run``, as a process, on live MQTT over a real Mosquitto.

- The last price and hashprice survive a restart (a publisher that does not retain): the
  restarted daemon decides on them at once while they are fresh, and its fail-safe engages
  when they age out, or at once if they were already too old.
- SIGHUP applies what can change live (the commands' bounds, the log level) and names what
  needs a restart (the metrics port), which keeps its old value.

The daemon runs the in-process fleet; a demand response through pyasic over a SIGKILL is in
``test_restart_pyasic.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.daemon_kit import EXE, free_port, healthz, wait_for
from tests.feeds.conftest import Broker
from tests.feeds.test_chaos_daemon import metric, summed

SITE = "memo"
FULL_MW = 0.7  # 200 Antminer S21 at 3,500 W
FAILSAFE = f'hashspark_failsafe_active{{action="curtail",site="{SITE}"}}'
LOAD = f'hashspark_load_mw{{site="{SITE}"}}'
PRICE = f'hashspark_spot_price_usd_per_mwh{{site="{SITE}"}}'
PRICE_FEED = f"{SITE}:price:mqtt:hashspark/{SITE}/price"
HASHPRICE_FEED = f"{SITE}:hashprice:mqtt:hashspark/{SITE}/hashprice"


def _config(
    tmp: Path,
    broker_port: int,
    *,
    price_max_age_s: float,
    metrics_port: int | None = None,
    max_hold_s: float = 86_400.0,
    log_level: str = "info",
) -> Path:
    broker = (
        f'{{ host = "127.0.0.1", port = {broker_port}, client_id = "hashspark-{SITE}", '
        "keepalive_s = 5, connect_timeout_s = 2, backoff = { base_s = 0.2, cap_s = 1 } }"
    )
    port_line = "" if metrics_port is None else f"metrics_port = {metrics_port}\n"
    path = tmp / f"{SITE}.toml"
    path.write_text(f"""
[daemon]
cycle_s = 0.25
log_level = "{log_level}"
{port_line}
[[sites]]
id = "{SITE}"
pool_fee = 0.02
price_feed = {{ type = "mqtt", broker = {broker} }}
hashprice_feed = {{ type = "mqtt", broker = {broker} }}

[[sites.miners]]
model = "Antminer S21"
count = 200

[sites.supply]
type = "spot"

[sites.failsafe]
price_max_age_s = {price_max_age_s}
action = "curtail"

# Curtails and resumes within seconds on the wall clock: no raise interval here
# (pacing itself: tests/test_pacing.py, tests/test_pacing_loop.py).
[sites.pacing]
min_raise_interval_s = 0

[sites.commands]
max_hold_s = {max_hold_s}
""")
    return path


def _ts(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="milliseconds")


def _publish_once(broker: Broker, price: float, *, price_age_s: float = 0.0) -> None:
    """A hashprice and a price, not retained: whoever subscribes later never sees them."""
    broker.publish(f"hashspark/{SITE}/hashprice", json.dumps({"usd_per_ph_day": 50.0, "ts": _ts()}))
    broker.publish(
        f"hashspark/{SITE}/price",
        json.dumps({"usd_per_mwh": price, "ts": _ts(-price_age_s)}),
    )


def _log_events(log: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") == event:
            out.append(doc)
    return out


@contextmanager
def _daemon(
    config: Path, state: Path, log: Path, port: int | None
) -> Iterator[subprocess.Popen[bytes]]:
    """``hashspark run`` on the system clock (``--metrics-port`` unless the config says it);
    SIGTERM at the end must exit 0."""
    args = [EXE, "run", str(config), "--state-dir", str(state)]
    if port is not None:
        args += ["--metrics-port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("ab"))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"SIGTERM did not stop the daemon: {log.read_text()}"
                ) from None
            assert code == 0, log.read_text()[-3000:]


def _first_cycle(port: int) -> dict[str, Any]:
    """The site's entry in /healthz once its first cycle has ended."""
    return dict(
        wait_for(
            lambda: (s := healthz(port)["sites"][SITE])["cycles"] >= 1 and s,
            timeout=30,
            what="the first cycle",
        )
    )


def test_a_restart_decides_at_once_on_the_remembered_readings_until_they_age_out(
    tmp_path: Path, broker: Broker
) -> None:
    max_age = 8.0
    config = _config(tmp_path, broker.port, price_max_age_s=max_age)
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    port = free_port()
    with _daemon(config, state, log, port):
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, what="the link up")
        _publish_once(broker, 20.0)
        published = time.monotonic()
        wait_for(lambda: metric(port, LOAD) == FULL_MW, timeout=10, what="the fleet mining")
        assert healthz(port)["sites"][SITE]["decision"] == "economics"
    # The daemon stopped (SIGTERM); nobody publishes again, and nothing was retained.

    port = free_port()
    with _daemon(config, state, log, port):
        first = _first_cycle(port)
        restarted = time.monotonic()
        assert restarted - published < max_age - 1.0, "the restart took too long to test it"
        assert first["decision"] == "economics", first  # not a fail-safe: decided on the memory
        assert metric(port, PRICE) == 20.0
        assert metric(port, FAILSAFE) == 0.0
        wait_for(lambda: metric(port, LOAD) == FULL_MW, timeout=10, what="the fleet mining")
        restored = {e["feed"]: e for e in _log_events(log, "reading_restored")}
        assert set(restored) == {PRICE_FEED, HASHPRICE_FEED}
        assert restored[PRICE_FEED]["value"] == 20.0
        assert 0 <= restored[PRICE_FEED]["age_s"] < max_age

        # The remembered price ages like any other: the fail-safe engages on time.
        wait_for(lambda: metric(port, FAILSAFE) == 1.0, timeout=max_age + 5, what="fail-safe")
        assert time.monotonic() - published >= max_age - 1.0
        wait_for(lambda: metric(port, LOAD) == 0.0, timeout=5, what="the site curtailed")
        engaged = _log_events(log, "failsafe_engaged")
        assert engaged
        assert engaged[-1]["reason"].startswith("price stale"), engaged

        # A live reading replaces the remembered one at once.
        _publish_once(broker, 21.0)
        wait_for(lambda: metric(port, FAILSAFE) == 0.0, timeout=5, what="fail-safe lifted")
        wait_for(lambda: metric(port, PRICE) == 21.0, timeout=5, what="the new price")
    assert json.loads((state / "readings" / SITE / "price.json").read_text())["value"] == 21.0


def test_a_remembered_reading_older_than_its_max_age_is_not_used(
    tmp_path: Path, broker: Broker
) -> None:
    max_age = 3.0
    config = _config(tmp_path, broker.port, price_max_age_s=max_age)
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    port = free_port()
    with _daemon(config, state, log, port):
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, what="the link up")
        _publish_once(broker, 20.0, price_age_s=1.0)
        wait_for(lambda: metric(port, PRICE) == 20.0, timeout=10, what="the price")
    price = json.loads((state / "readings" / SITE / "price.json").read_text())
    time.sleep(max(0.0, price["observed_at"] + max_age + 0.2 - time.time()))  # it ages out

    port = free_port()
    with _daemon(config, state, log, port):
        first = _first_cycle(port)
        assert first["decision"] == "failsafe_curtail", first
        assert metric(port, FAILSAFE) == 1.0
        wait_for(lambda: metric(port, LOAD) == 0.0, timeout=5, what="the site curtailed")
        # The hashprice (2 days' max age) was restored; the price was not.
        assert [e["feed"] for e in _log_events(log, "reading_restored")] == [HASHPRICE_FEED]
        (skipped,) = _log_events(log, "reading_not_restored")
        assert skipped["feed"] == PRICE_FEED
        assert skipped["reason"] == "older than its max age"
        assert _log_events(log, "failsafe_engaged")[-1]["reason"] == "price missing"


def _command(config: Path, doc: dict[str, object]) -> tuple[int, dict[str, Any]]:
    """``hashspark command``: its exit code and the daemon's ack."""
    done = subprocess.run(
        [EXE, "command", str(config), json.dumps(doc)], check=False, capture_output=True, timeout=30
    )
    return done.returncode, dict(json.loads(done.stdout))


def test_sighup_applies_max_hold_and_log_level_and_names_the_metrics_port(
    tmp_path: Path, broker: Broker
) -> None:
    port, other_port = free_port(), free_port()
    config = _config(tmp_path, broker.port, price_max_age_s=900, metrics_port=port)
    text = config.read_text()
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    hold = {"command": "force_curtail", "until": _ts(1800)}  # 30 min: within 24 h, beyond 10
    with _daemon(config, state, log, None) as proc:
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, what="the link up")
        assert _command(config, {**hold, "id": "before"})[0] == 0  # accepted
        assert _command(config, {"command": "clear", "id": "clear-1", "target": "before"})[0] == 0
        redelivered = json.dumps({"usd_per_mwh": 20.0, "ts": _ts()})
        for _ in range(2):  # the second is a plain duplicate: a debug line, if at debug
            broker.publish(f"hashspark/{SITE}/price", redelivered)
        wait_for(
            lambda: summed(port, "hashspark_feed_readings_rejected_total{") >= 1,
            what="the duplicate counted",
        )
        assert not [line for line in log.read_text().splitlines() if '"level": "debug"' in line]

        config.write_text(
            text.replace("max_hold_s = 86400.0", "max_hold_s = 600")
            .replace('log_level = "info"', 'log_level = "debug"')
            .replace(f"metrics_port = {port}", f"metrics_port = {other_port}")
        )
        proc.send_signal(signal.SIGHUP)
        (partial,) = wait_for(lambda: _log_events(log, "reload_partial"), what="the reload")
        assert partial["restart_needed"] == ["daemon.metrics_port"]
        assert not _log_events(log, "reloaded")

        code, ack = _command(config, {**hold, "id": "after"})
        assert code == 3, ack
        assert ack["status"] == "rejected"
        assert ack["reason"] == "until is more than 600 s ahead"
        code, ack = _command(config, {**hold, "until": _ts(300), "id": "within"})
        assert code == 0, ack
        redelivered = json.dumps({"usd_per_mwh": 21.0, "ts": _ts()})
        for _ in range(2):
            broker.publish(f"hashspark/{SITE}/price", redelivered)
        debug = wait_for(
            lambda: [e for e in _log_events(log, "reading_rejected") if e["level"] == "debug"],
            what="a debug line",
        )
        assert debug[0]["reason"] == "duplicate"
        # The metrics stay where they were until a restart.
        assert healthz(port)["sites"][SITE]["cycles"] >= 1
        assert summed(port, "hashspark_feed_up{") == 1
