"""The daemon on EUR prices: ``hashspark run --simulated`` over the DE-LU day-ahead recording
(EUR/MWh) at the ECB's EUR/USD reference rate, checked against a conversion made here from
the two CSV files with the csv module, and a rate that goes stale mid-run."""

from __future__ import annotations

import bisect
import csv
import gzip
import json
import signal
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.daemon_kit import ROOT, free_port, get, healthz, start_daemon, wait_for

RECORDINGS = ROOT / "simulators" / "recordings"
PRICES = RECORDINGS / "de_lu_dam_hourly_2024-01_2025-09.csv.gz"
RATES = RECORDINGS / "ecb_usd_per_eur_daily_2023-11_2025-05.csv"
HASHPRICES = RECORDINGS / "btc_hashprice_daily_2024-05_2025-04_with_fees.csv"
START, END = "2024-06-03T00:00:00Z", "2024-06-04T00:00:00Z"
POOL_FEE = 0.02
# (model, J/TH, count, W) as in the shipped scenario
FLEET = (("Antminer S19j Pro", 3068 / 104, 600, 3068), ("Antminer S21", 3500 / 200, 400, 3500))


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _series(path: Path) -> tuple[list[float], list[float]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [_epoch(t) for t, _ in rows], [float(v) for _, v in rows]


def _at(series: tuple[list[float], list[float]], t: float) -> tuple[float, float]:
    """(value, published at) of the observation in force at ``t``."""
    times, values = series
    i = bisect.bisect_right(times, t) - 1
    assert i >= 0
    return values[i], times[i]


def _scenario(tmp: Path, *, start: str, end: str, rates: Path, max_age_s: float) -> Path:
    text = (ROOT / "deploy/scenarios/de-lu-day-ahead-spot.toml").read_text()
    text = text.replace('"../../simulators/recordings/', f'"{RECORDINGS.as_posix()}/')
    text = text.replace('start = "2024-06-01T00:00:00Z"', f'start = "{start}"')
    text = text.replace('end = "2025-04-08T00:00:00Z"', f'end = "{end}"')
    text = text.replace(
        f'path = "{RATES.as_posix()}"', f'path = "{rates}"\nmax_age_s = {max_age_s}'
    )
    for wanted in (f'path = "{rates}"', start, end):
        assert wanted in text
    path = tmp / "de-lu.toml"
    path.write_text(text)
    return path


def _metric(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return float(lines[0].rsplit(" ", 1)[1])


def _rows(state: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(
            "SELECT start_s, price_usd_per_mwh, price_source, hashprice_usd_per_ph_day, "
            "running_mw, failsafe FROM intervals WHERE kind = 'settled' ORDER BY start_s"
        ).fetchall()
    finally:
        conn.close()


def _ledger_currency(state: Path) -> tuple[str, str]:
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        meta = dict(conn.execute("SELECT key, value FROM ledger_meta").fetchall())
    finally:
        conn.close()
    return meta["currency"], meta["money_unit"]


def _wait_finished(daemon: subprocess.Popen[bytes], port: int) -> None:
    """Until the simulated run reaches its end (``--stay`` keeps it serving); a daemon that
    exits first fails the test with its stderr."""

    def finished() -> bool:
        if daemon.poll() is not None:
            raise RuntimeError(_stop(daemon)[-2000:])
        return bool(healthz(port)["finished"])

    try:
        wait_for(finished, timeout=60, what="the run to finish")
    except AssertionError:
        if daemon.poll() is not None:
            raise AssertionError(_stop(daemon)[-2000:]) from None
        raise


def _stop(daemon: subprocess.Popen[bytes]) -> str:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    return err.decode()


def _run(config: Path, state: Path) -> tuple[str, dict[str, Any], str]:
    """Run ``config`` to its end: the daemon's metrics text, the site's /healthz entry as it
    stood then, and its log."""
    port = free_port()
    daemon = start_daemon(config, state, port, "--stay")
    try:
        _wait_finished(daemon, port)
        metrics = get(f"http://127.0.0.1:{port}/metrics").decode()
        health = healthz(port)["sites"]["de-lu"]
    finally:
        log = _stop(daemon)
    return metrics, health, log


def test_the_daemon_decides_on_eur_prices_converted_at_the_ecb_rate_of_their_time(
    tmp_path: Path,
) -> None:
    config = _scenario(tmp_path, start=START, end=END, rates=RATES, max_age_s=604800)
    state = tmp_path / "state"
    metrics, health, log = _run(config, state)
    prices, rates, hashprices = _series(PRICES), _series(RATES), _series(HASHPRICES)

    # Every settled hour decided on its EUR price times the rate published at or before it.
    rows = _rows(state)
    assert len(rows) == 24
    curtails_only_when_converted = 0
    for row in rows:
        eur, _ = _at(prices, row["start_s"])
        rate, _ = _at(rates, row["start_s"])
        usd = eur * rate
        assert abs(row["price_usd_per_mwh"] - usd) < 1e-9, row["start_s"]
        assert row["price_source"] == f"{PRICES.name} (EUR->USD)"
        assert row["failsafe"] is None
        hp, _ = _at(hashprices, row["start_s"])
        assert row["hashprice_usd_per_ph_day"] == hp
        # The pure rule: a model runs iff its energy hashprice covers the converted price.
        expected_mw = 0.0
        for _, j_per_th, count, watts in FLEET:
            ehp = hp * (1 - POOL_FEE) * 1000 / (24 * j_per_th)
            expected_mw += count * watts / 1e6 if ehp >= usd else 0.0
            if eur <= ehp < usd:
                curtails_only_when_converted += 1  # read as USD, this model would have run
        assert abs(row["running_mw"] - expected_mw) < 1e-9, row["start_s"]
    assert curtails_only_when_converted > 0  # the conversion changed decisions in this window

    # The last hour's converted price and its rate in the metrics, with the currencies.
    last_t = _epoch("2024-06-03T23:00:00Z")
    eur, _ = _at(prices, last_t)
    rate, published = _at(rates, last_t)
    assert published == _epoch("2024-06-03T14:00:00Z")
    spot = _metric(metrics, 'hashspark_spot_price_usd_per_mwh{site="de-lu"}')
    assert abs(spot - eur * rate) < 1e-9
    assert _metric(metrics, 'hashspark_exchange_rate{pair="EUR/USD",site="de-lu"}') == rate
    info = (
        'hashspark_site_currency_info{currency="USD",exchange_rate="'
        f'{RATES.name}",price_currency="EUR",site="de-lu"}}'
    )
    assert _metric(metrics, info) == 1.0

    # /healthz states the conversion; the start log says it once; the ledger books USD.
    assert health["currency"] == {
        "site": "USD",
        "prices": "EUR",
        "hashprice": "USD",
        "exchange_rate": {
            "pair": "EUR/USD",
            "source": RATES.name,
            "constant": False,
            "applied": rate,
            "refused_readings": 0,
            "refusing": None,
        },
    }
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    (conversion,) = [e for e in events if e["event"] == "currency_conversion"]
    assert (conversion["price_currency"], conversion["currency"]) == ("EUR", "USD")
    assert conversion["rate_source"] == RATES.name
    assert _ledger_currency(state) == ("USD", "micro_usd")


def test_a_stale_rate_fails_safe_like_a_stale_price_and_is_counted(tmp_path: Path) -> None:
    # The rates stop on Friday 2024-05-31 (published 14:00Z); 2.5 days later they are stale.
    rates = tmp_path / "rates.csv"
    lines = RATES.read_text().splitlines()
    rates.write_text("\n".join([lines[0], *(li for li in lines[1:] if li < "2024-06-01")]) + "\n")
    config = _scenario(
        tmp_path, start=START, end="2024-06-03T06:00:00Z", rates=rates, max_age_s=216000
    )
    state = tmp_path / "state"
    metrics, health, log = _run(config, state)
    rows = _rows(state)
    # 00:00..02:00 convert (the rate is at most 60 h old); from 03:00 no usable rate: the
    # price is missing, the fail-safe (hold) acts, and no hour is settled on a price the
    # daemon could not convert.
    assert [r["start_s"] for r in rows] == [_epoch(f"{START[:11]}0{h}:00:00Z") for h in range(3)]
    assert all(r["failsafe"] is None for r in rows)
    assert _metric(metrics, 'hashspark_failsafe_active{action="hold",site="de-lu"}') == 1.0
    assert health["decision"] == "failsafe_hold"
    refused = _metric(
        metrics,
        f'hashspark_feed_readings_rejected_total{{feed="{PRICES.name}",reason="no_rate"}}',
    )
    assert refused == 3  # the 03:00, 04:00 and 05:00 prices, each counted once
    assert health["currency"]["exchange_rate"]["refused_readings"] == 3
    assert "days old" in health["currency"]["exchange_rate"]["refusing"]
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len([e for e in events if e["event"] == "exchange_rate_unusable"]) == 1
