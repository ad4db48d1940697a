"""Build small scenarios (recordings + TOML) in a temporary directory for tests."""

from __future__ import annotations

from pathlib import Path

from controller.domain import iso

T0 = 1_717_218_000.0  # 2024-06-01T05:00:00Z


def write_csv(path: Path, column: str, rows: list[tuple[float, float]]) -> Path:
    """A canonical recording from (epoch seconds, value) rows."""
    lines = [f"timestamp,{column}"] + [f"{iso(t)},{v!r}" for t, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_scenario(
    tmp: Path,
    prices: list[tuple[float, float]],
    hashprices: list[tuple[float, float]],
    *,
    supply: str = 'type = "spot"',
    policy: str = "",
    failsafe: str = "",
    hedges: str = "",
    miners: str = "",
    daemon: str = "cycle_s = 60",
    end: float | None = None,
) -> Path:
    """A one-site scenario over the given recordings; returns the TOML path."""
    write_csv(tmp / "price.csv", "usd_per_mwh", prices)
    write_csv(tmp / "hashprice.csv", "usd_per_ph_day", hashprices)
    miners = miners or (
        '[[sites.miners]]\nmodel = "Antminer S19j Pro"\ncount = 6\n'
        "curve = [{ hashrate_th = 104, power_w = 3068 }]\n\n"
        '[[sites.miners]]\nmodel = "Antminer S21"\ncount = 4\n'
        "curve = [{ hashrate_th = 200, power_w = 3500 }]\n"
    )
    scenario_end = f'end = "{iso(end)}"' if end is not None else ""
    text = f"""
[scenario]
name = "test"
{scenario_end}

[daemon]
{daemon}

[[sites]]
id = "test-site"
pool_fee = 0.02
price_feed = {{ type = "recorded", path = "price.csv" }}
hashprice_feed = {{ type = "recorded", path = "hashprice.csv" }}

{miners}

[sites.supply]
{supply}

{hedges}

[sites.policy]
{policy}

[sites.failsafe]
{failsafe}
"""
    path = tmp / "scenario.toml"
    path.write_text(text)
    return path
