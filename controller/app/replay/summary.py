"""The replay and comparison reports as text for the terminal."""

from __future__ import annotations

from pathlib import Path

from controller.accounting.grid_revenue import GRID_COMPONENTS
from controller.accounting.report_types import InstrumentRow
from controller.app.replay.compare import Comparison
from controller.app.replay.report import LivePath
from controller.app.replay.runner import ReplayInputs, ReplayResult


def _usd(x: float) -> str:
    return f"{x + 0.0:>16,.2f}"  # + 0.0 turns -0.0 into 0.0


def format_comparison(comparison: Comparison, inputs: ReplayInputs, wall_s: float) -> str:
    """The strategy table for the terminal: one row per book."""
    rows = [r.row() for r in comparison.results]
    source = "built-in books" if comparison.builtin else "compare.strategies"
    first = comparison.results[0].typed_report
    lines = [
        f"hashspark compare: {_scenario_name(inputs)}  (site {inputs.site.id}, {source}, "
        f"fast engine, {wall_s:.2f} s)",
        f"  window      {first.window.start} .. {first.window.end}  "
        f"({first.totals.hours:,.2f} h; daily figures over "
        f"{rows[0]['days_counted']} whole UTC days)",
        "",
        f"  {'strategy':<18} {'net USD':>14} {'USD/MWh':>8} {'daily std':>10} "
        f"{'worst day':>10} {'(UTC)':<10} {'monthly std':>11} {'monthly CV':>10} "
        f"{'curtailed h':>11}",
    ]
    for r in rows:
        margin = r["net_margin_usd_per_mwh"]
        cv = r["monthly_net_cv"]
        lines.append(
            f"  {r['name']:<18} {r['totals']['net_usd']:>14,.2f} "
            f"{_opt(margin):>8} "
            f"{_opt(r['daily_net_std_usd']):>10} {r['worst_day']['net_usd']:>10,.2f} "
            f"{r['worst_day']['date']:<10} {_opt(r['monthly_net_std_usd']):>11} "
            f"{'n/a' if cv is None else f'{cv:.3f}':>10} {r['curtailed_hours']:>11,.2f}"
        )
    lines.append(
        f"  monthly figures over {rows[0]['months_counted']} whole UTC months "
        "(CV: std / mean; daily std mostly measures resale spikes, monthly CV revenue risk)"
    )
    lines.append("")
    lines.extend(f"  {r['name']:<18} {r['description']}" for r in rows)
    hedged = [r for r in rows if r["hashspark_spread_usd_per_mwh"] is not None]
    if hedged:
        lines.append("")
        lines.extend(
            f"  {r['name']:<18} spread {r['hashspark_spread_usd_per_mwh']:,.2f} USD/MWh on "
            f"{r['hedged_share']:.0%} of the hashrate (forwards in term), margin floor "
            f"{_opt(r['margin_floor_usd_per_mwh'])} USD/MWh"
            for r in hedged
        )
    return in_currency("\n".join(lines), inputs.currency)


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _scenario_name(inputs: ReplayInputs) -> str:
    scenario = inputs.loaded.config.scenario
    return scenario.name if scenario else inputs.loaded.path.stem


def _grid_line(rows: tuple[InstrumentRow, ...]) -> list[str]:
    """The grid programs' net (capacity, deployments, penalties, 4CP estimate), if any."""
    grid = [i for i in rows if i.component in GRID_COMPONENTS]
    if not grid:
        return []
    net = sum(-i.usd if i.component == "nonperformance_penalty_usd" else i.usd for i in grid)
    return [f"    grid revenue              {_usd(net)}"]


def format_summary(
    result: ReplayResult, report_path: Path | None, html_path: Path | None = None
) -> str:
    """A readable summary of a replay for the terminal."""
    r = result.typed_report
    t = r.totals
    s = r.summary
    lines = [
        f"hashspark replay: {r.scenario}  (site {r.site}, {result.engine} engine, "
        f"{result.wall_s:.2f} s)",
        f"  window      {r.window.start} .. {r.window.end}  "
        f"({t.intervals:,} intervals, {t.hours:,.2f} h)",
        f"  fleet       {s.miners:,} miners, {s.nominal_mw:.4f} MW nominal, "
        f"{s.fleet_efficiency_j_per_th:.2f} J/TH",
        *currency_lines(r.currency, r.exchange_rate),
        "",
        "  P&L by component                     USD",
        f"    mining revenue            {_usd(t.mining_revenue_usd)}",
        f"    power cost                {_usd(-t.power_cost_usd)}",
        f"    resale revenue            {_usd(t.resale_revenue_usd)}",
        f"    call premium              {_usd(t.call_premium_usd)}",
        f"    call payout (capped up.)  {_usd(-t.call_payout_usd)}",
        f"    forward settlement        {_usd(t.forward_settlement_usd)}",
        *_grid_line(r.per_instrument or ()),
        f"    net                       {_usd(t.net_usd)}",
        "",
        f"  energy      mined {t.mined_mwh:,.2f} MWh, curtailed {t.curtailed_mwh:,.2f} MWh",
        f"  curtailed   {s.curtailed_hours:,.2f} h with some miners off, "
        f"{s.fully_curtailed_hours:,.2f} h fully off",
    ]
    margin = s.net_margin_usd_per_mwh
    if margin is not None:
        lines.append(f"  net margin  {margin:,.2f} USD per mined MWh")
    spread = s.hashspark_spread_usd_per_mwh
    share, floor = s.hedged_share or 0.0, s.margin_floor_usd_per_mwh
    lines.append(
        f"  hashspark spread  {spread:,.2f} USD/MWh on the {share:.0%} of the fleet's hashrate "
        f"sold forward (forwards in term vs PPA price); margin floor {_opt(floor)} USD/MWh "
        "if the rest earned nothing"
        if spread is not None
        else "  hashspark spread  n/a (needs a fixed PPA and a hashrate forward in term)"
    )
    if r.optimiser is not None:
        lines.append(
            f"  optimiser   {r.optimiser.optimiser_gain_usd:,.2f} USD more than on/off dispatch "
            f"({r.optimiser.onoff_net_usd:,.2f} USD) from power targets"
        )
    for g in r.grid_events or ():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[g.compliant]
        lines.append(
            f"  grid        {g.program} {g.id} ({g.start}..{g.end}): {verdict}, "
            f"load {g.min_mw or 0:.3f}..{g.max_mw or 0:.3f} MW vs {g.target_mw} MW"
        )
    if s.failsafe_hours:
        lines.append(f"  fail-safe   engaged for {s.failsafe_hours:,.2f} h")
    if r.per_instrument:
        lines.append("")
        lines.append("  per instrument and supply tranche              USD")
        lines.extend(f"    {i.id + '.' + i.component:<36} {_usd(i.usd)}" for i in r.per_instrument)
    if r.live_path is not None:
        lines.extend(_live_lines(r.live_path))
    lines.append("")
    lines.append("  per model")
    lines.extend(
        f"    {m.model:<20} {m.miners:>6,} miners  {m.efficiency_j_per_th:6.2f} J/TH  "
        f"curtailed {m.curtailed_hours:>9,.2f} h  "
        f"revenue {m.mining_revenue_usd:>14,.2f} USD"
        for m in r.per_model
    )
    lines.append("")
    if report_path is not None:
        lines.append(f"  report      {report_path}")
    if html_path is not None:
        lines.append(f"  html report {html_path}")
    else:
        lines.append(
            "  html report not written: add --report DIR (charts and tables, e.g. out/report)"
        )
    return in_currency("\n".join(lines), r.currency)


def currency_lines(currency: str, exchange_rate: str | None) -> list[str]:
    """Which currency the figures are in, and the rate the feeds were converted at."""
    if exchange_rate is None:
        return []
    return [f"  currency    every figure in {currency}; feeds converted at {exchange_rate}"]


def in_currency(text: str, currency: str) -> str:
    """``text`` with its money labels in ``currency`` (the figures already are)."""
    return text if currency == "USD" else text.replace("USD", currency)


def _live_lines(live: LivePath) -> list[str]:
    c, loss = live.commands, live.ramp_losses
    failed = ", ".join(f"{n} {k}" for k, n in c.items() if k not in ("sent", "applied"))
    lines = [
        f"  live path   {live.miners:,} simulated {live.family} miners on "
        f"{live.addresses} through pyasic; feeds {live.feeds}",
        f"              {live.sim_s_per_wall_s or 0:,.0f} simulated s per wall s "
        f"({live.wall_s:,.1f} s wall, clock {live.speed:g}x while running); "
        f"{live.cycles:,} cycles; {c['sent']:,} commands, {c['applied']:,} applied"
        + (f", {failed}" if failed else ""),
        f"  ramp losses {loss.ramp_ups:,} ramp-ups over {live.resume_ramp_s:g} s: "
        f"{loss.ph_hours_not_hashed:,.4f} PH/s-h not hashed, "
        f"{loss.mwh_not_drawn:,.4f} MWh not drawn; "
        f"{loss.mining_revenue_usd:,.2f} USD revenue not earned, "
        f"{loss.power_value_usd:,.2f} USD of power kept: net {loss.net_usd + 0.0:,.2f} USD "
        f"({live.net_usd_after_ramp_losses:,.2f} USD net after them)",
    ]
    if live.late_readings or live.late_start_s:
        lines.append(
            f"  warning     the controller fell behind the clock: {live.late_readings} readings "
            f"published up to {live.max_reading_lateness_s:,.0f} s late; lower --speed"
        )
    return lines
