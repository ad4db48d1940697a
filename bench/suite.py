"""The performance suite: runs every benchmark and writes docs/performance.md from its output.

    .venv/bin/python bench/suite.py [--quick] [--out docs/performance.md] [--only SCRIPT...]

Each benchmark runs as its own process (so that one's memory or event loop cannot colour
another's figures); its output is copied verbatim under the command that reproduces it,
with the machine it ran on. Nothing in docs/performance.md is written by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import capacity  # noqa: E402 (a sibling script, importable once bench/ is on the path)


@dataclass(frozen=True)
class Bench:
    """One benchmark: what it measures and the arguments for a full and a quick run."""

    script: str
    what: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    needs_root: bool = False
    figures: bool = False  # writes --json figures for the capacity plan


BENCHES = (
    Bench(
        "bench_decide.py",
        "decide() for 100,000 miners with 3-point curves, against a per-miner Python loop",
        quick=("--miners", "20000", "--ticks", "30"),
    ),
    Bench(
        "bench_optimiser.py",
        "the fleet optimiser (5-point curves, with and without a binding cap) against on/off",
        quick=("--miners", "20000", "--ticks", "20"),
    ),
    Bench(
        "bench_replay.py",
        "fast replay of the whole recording (28,796 intervals, 1,000 miners), and the site loop",
        quick=("--runs", "2", "--no-loop"),
    ),
    Bench(
        "bench_live_replay.py",
        "the live-path replay (simulated LuxOS miners through pyasic) of the 36-hour "
        "scarcity window: simulated seconds per wall second",
        full=("--miners", "1000"),
        quick=("--miners", "100"),
    ),
    Bench(
        "bench_mqtt_latency.py",
        "a price published on MQTT to the feed's wake-up and to the first miner command",
        quick=("--n", "200"),
    ),
    Bench(
        "bench_spike.py",
        "a price spike to curtail commands and to all asleep, 1,000 miners in real time, "
        "with a resume in flight and without",
        full=("--miners", "1000", "--trials", "3"),
        quick=("--miners", "150", "--trials", "1"),
        needs_root=True,  # stock Antminer web UIs listen on port 80
    ),
    Bench(
        "bench_command_flood.py",
        "a price spike's reaction with and without a flood of 20,000 invalid commands, over a "
        "real Mosquitto to the running daemon",
        full=("--commands", "20000", "--trials", "3"),
        quick=("--commands", "20000", "--trials", "1"),
    ),
    Bench(
        "bench_simulated_fleet.py",
        "simulated ASICs: start time, a full pyasic get_data sweep, the simulator's RSS",
        quick=("--count", "100"),
        needs_root=True,  # stock Antminer web UIs listen on port 80
    ),
    Bench(
        "bench_pyasic_dispatch.py",
        "curtail-and-confirm throughput through pyasic against a naive loop and a raw-socket floor",
        full=("--miners", "1000"),
        quick=("--miners", "100"),
        needs_root=True,
    ),
    Bench(
        "bench_driver_compare.py",
        "pyasic against asic-rs on one simulated fleet: curtail-and-confirm per firmware, "
        "CPU per miner, discovery, RSS, against the plain-streams floor",
        full=("--miners", "600"),
        quick=("--miners", "60", "--repeat", "1"),
        needs_root=True,  # stock Antminer web UIs listen on port 80
    ),
    Bench(
        "bench_sharded_dispatch.py",
        "a sharded site: curtail-and-confirm with 1 and 2 worker processes over MQTT, worker RSS",
        full=("--miners", "2000", "--workers", "1", "2"),
        quick=("--miners", "200", "--workers", "1", "2"),
        figures=True,
    ),
    Bench(
        "bench_pacing.py",
        "a flapping price: 10,000 alternating prices through the site loop, miner commands "
        "with the default pacing against its bound and against no pacing (in process and "
        "over MQTT)",
        full=("--mqtt",),
        quick=("--prices", "2000", "--mqtt"),
    ),
)

FIGURES = ROOT / "out" / "sharded-figures.json"


def machine() -> str:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def _args(bench: Bench, quick: bool) -> tuple[str, ...]:
    args = bench.quick if quick else bench.full
    return (*args, "--json", str(FIGURES.relative_to(ROOT))) if bench.figures else args


def run(bench: Bench, quick: bool) -> tuple[str, float, int]:
    """Run one benchmark; its output, wall time and exit code."""
    args = _args(bench, quick)
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / bench.script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
        check=False,
    )
    out = proc.stdout.strip()
    if proc.returncode != 0:
        out += "\n" + proc.stderr.strip()[-2000:]
    return out, time.perf_counter() - began, proc.returncode


def heading(bench: Bench) -> str:
    """A benchmark's section heading on the page."""
    return f"## {bench.what[0].upper()}{bench.what[1:]}"


def section(bench: Bench, quick: bool) -> tuple[list[str], bool]:
    """Run one benchmark; its section of the page, and whether it failed."""
    if bench.needs_root and os.geteuid() != 0:
        return [f"## {bench.script}", "", f"Skipped: needs root ({bench.what}).", ""], False
    print(f"running {bench.script} ...", file=sys.stderr, flush=True)
    out, wall, code = run(bench, quick)
    cmd = " ".join([".venv/bin/python", f"bench/{bench.script}", *_args(bench, quick)])
    lines = [
        heading(bench),
        "",
        f"`{cmd}` ({wall:.0f} s{'' if code == 0 else f', FAILED with exit code {code}'})",
        "",
        "```",
        out,
        "```",
        "",
    ]
    return lines, code != 0


def existing_sections(page: str) -> tuple[list[str], dict[str, list[str]]]:
    """The page's header lines, and each section's lines by its heading."""
    header: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] = header
    for line in page.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line, [])
        current.append(line)
    return header, sections


CAPACITY = "## Capacity plan"


def capacity_section(planned: bool, kept: dict[str, list[str]]) -> list[str]:
    """The capacity plan from this run's sharded figures (or the page's, if not rerun)."""
    if not planned:
        return kept.get(CAPACITY, [CAPACITY, "", "Not computed yet.", ""])
    lines = [CAPACITY, ""]
    if FIGURES.exists():
        return [
            *lines,
            "Computed by `bench/capacity.py` from the figures the sharded benchmark above wrote"
            f" (`{FIGURES.relative_to(ROOT)}`), in this run.",
            "",
            *capacity.plan(json.loads(FIGURES.read_text())),
            "",
        ]
    return [*lines, "Not computed: the sharded benchmark did not run or did not finish.", ""]


def main() -> int:
    """Run the suite and write the page."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="SCRIPT",
        help="run only these benchmarks (e.g. bench_live_replay.py) and replace their "
        "sections of the existing page, keeping the others",
    )
    args = ap.parse_args()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    known = {b.script for b in BENCHES}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        ap.error(f"unknown benchmarks {unknown}; known: {sorted(known)}")
    flag = " --quick" if args.quick else ""
    if args.only:
        header, kept = existing_sections(args.out.read_text() if args.out.exists() else "")
        # One note of the latest partial run: the page says when each figure was measured.
        lines = [line for line in header if not line.startswith("Sections updated by")]
        lines = lines or ["# Performance", ""]
        while lines and not lines[-1]:
            lines.pop()
        lines += [
            f"Sections updated by `bench/suite.py{flag} --only {' '.join(args.only)}` on {stamp}, "
            f"on {machine()}: {', '.join(args.only)}.",
            "",
        ]
    else:
        kept = {}
        lines = [
            "# Performance",
            "",
            f"Written by `bench/suite.py{flag}` on {stamp},",
            f"on {machine()}.",
            "Every figure below is the benchmark's own output, copied verbatim; rerun the command",
            "beside it to reproduce it. Figures move with the load on the machine: compare runs "
            "made",
            "on a quiet one.",
            "",
        ]
    failed = 0
    ran = [b for b in BENCHES if not args.only or b.script in args.only]
    planned = any(b.figures for b in ran)
    if planned:
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.unlink(missing_ok=True)  # the capacity plan only from this run's figures
    for bench in BENCHES:
        if bench not in ran:
            lines += kept.get(heading(bench), [heading(bench), "", "Not run yet.", ""])
            continue
        part, bad = section(bench, args.quick)
        lines += part
        failed += bad
    lines += capacity_section(planned, kept)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
