"""Restarts and reloads of ``hashspark run``, as a process, on live MQTT over a real Mosquitto.

- The last price and hashprice survive a restart (a publisher that does not retain): the
  restarted daemon decides on them at once while they are fresh, and its fail-safe engages
  when they age out, or at once if they were already too old.

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
