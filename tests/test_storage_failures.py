"""Storage failures keep control: every write to the state directory fails without stopping
the site, a damaged ledger is refused by name, and a clock stepped back loses no interval.

The full disk is the kernel's own: ``/dev/full`` (every write ENOSPC) or a small tmpfs filled
to the last block (mounting needs root; those cases are skipped otherwise, with the reason).
The daemon-level cases are in ``tests/feeds/test_storage_daemon.py``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import subprocess
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import structlog

from adapters.control.apply import AuditLog, CommandHandler
from adapters.control.command_audit import CommandAuditLog
from adapters.control.commands import CommandIntake
from adapters.control.persist import ActiveCommands
from adapters.feeds.memory import ReadingMemory
from adapters.feeds.recorded import RecordedFeed
from adapters.feeds.recorder import FeedRecorder
from adapters.ledger.memory import MemoryLedger
from adapters.ledger.sqlite import LedgerError, SqliteLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import FixedPpa
from controller.app.assemble import assemble
from controller.decision.overrides import Override
from controller.decision.policy import Plan, PolicyParams
from controller.decision.reconcile import CommandBatch
from controller.domain import EpochS, Reading, Recording, build_fleet
from controller.records import IntervalRecord
from controller.runtime import site_loop
from controller.runtime.durable import append_lines
from controller.runtime.override_book import OverrideBook
from controller.runtime.ports import Ledger
from controller.runtime.site_loop import SiteLoop, SiteModel
from controller.runtime.storage import StorageHealth, StorageKind
from tests.daemon_kit import scenario
from tests.feeds.test_commands import LIMITS, NOW, _at, _raw
from tests.scenario_kit import T0
from tests.test_chaos_state import tmpfs
from tests.test_ledger import rec

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tmpfs for the state directory needs root"
)


def fill(directory: Path) -> Path:
    """Take every free block of ``directory``'s file system; the filler file to free them."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (65536, 512, 1):  # big chunks, then what a partial chunk left
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    with pytest.raises(OSError) as full:
        (directory / "probe").write_bytes(b"x" * 8192)
    assert full.value.errno == errno.ENOSPC
    return filler


@pytest.fixture
def full_dir(tmp_path: Path) -> Path:
    """A directory whose ``audit.jsonl`` and ``commands.jsonl`` are ``/dev/full``."""
    d = tmp_path / "full"
    d.mkdir()
    for name in ("audit.jsonl", "commands.jsonl"):
        (d / name).symlink_to("/dev/full")
    return d


# --- the ledger ----------------------------------------------------------------------


@needs_root
def test_a_full_disk_at_commit_names_its_cause_and_the_write_goes_through_later(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "state", "2m") as state:
        ledger = SqliteLedger.open(
            state / "ledger.sqlite3", run_id="r", config_version="v", started_at=T0
        )
        ledger.append(rec(T0, T0 + 300))
        filler = fill(state)
        record = replace(rec(T0 + 300, T0 + 600), price_source="x" * 100_000)  # pages of it
        with pytest.raises(LedgerError) as refused:
            ledger.append(record)
        message = str(refused.value)
        assert "no transaction is active" not in message
        assert "database or disk is full (SQLITE_FULL)" in message
        assert message.startswith(f"{state / 'ledger.sqlite3'}: interval ")
        filler.unlink()
        ledger.append(record)  # the same record, once space is back
        assert [r.start for r in ledger.records()] == [T0, T0 + 300]
        ledger.close()


def _ledger_with_rows(path: Path, n: int = 300) -> None:
    ledger = SqliteLedger.open(path, run_id="r", config_version="v", started_at=T0)
    for i in range(n):
        ledger.append(rec(T0 + i * 300, T0 + (i + 1) * 300))
    ledger.close()


def _flip(path: Path, page: int, size: int = 4096) -> None:
    """Flip the first 16 bytes of a page (0-based): its b-tree page header."""
    raw = bytearray(path.read_bytes())
    for k in range(16):
        raw[page * size + k] ^= 0xFF
    path.write_bytes(bytes(raw))


def _open(path: Path) -> SqliteLedger:
    return SqliteLedger.open(path, run_id="r2", config_version="v", started_at=T0)


def test_a_ledger_emptied_to_zero_bytes_is_refused_by_name_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    _ledger_with_rows(path, 3)
    path.write_bytes(b"")
    for opener in (_open, SqliteLedger.open_readonly):
        with pytest.raises(LedgerError) as refused:
            opener(path)
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: the ledger is damaged (the file is empty, 0 bytes")
        assert "restore it from a backup" in message
        assert path.stat().st_size == 0  # never silently replaced by a fresh one


@pytest.mark.parametrize("page", [1, 2, 4])
def test_a_corrupted_page_is_refused_with_sqlites_integrity_message(
    tmp_path: Path, page: int
) -> None:
    path = tmp_path / "ledger.sqlite3"
    _ledger_with_rows(path)
    _flip(path, page)
    before = path.read_bytes()
    for opener in (_open, SqliteLedger.open_readonly):
        with pytest.raises(LedgerError) as refused:
            opener(path)
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: the ledger is damaged (")
        assert "SQLite integrity check: Page" in message or "SQLITE_CORRUPT" in message
    assert path.read_bytes() == before  # nothing written to it


def test_a_missing_ledger_is_still_created(tmp_path: Path) -> None:
    ledger = _open(tmp_path / "new" / "ledger.sqlite3")
    assert list(ledger.records()) == []
    ledger.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("damage", ["emptied", "corrupted"])
def test_run_and_ledger_summary_refuse_a_damaged_ledger_with_one_line(
    tmp_path: Path, damage: str
) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-19T02:00:00Z")
    state = tmp_path / "state"
    state.mkdir()
    path = state / "ledger.sqlite3"
    _ledger_with_rows(path)
    if damage == "emptied":
        path.write_bytes(b"")
    else:
        _flip(path, 2)
    before = path.read_bytes()
    runs = [
        ["run", str(config), "--simulated", "--state-dir", str(state), "--metrics-port", "0"],
        ["ledger", "summary", "--state-dir", str(state)],
        ["ledger", "export", "--csv", "--state-dir", str(state)],
    ]
    for args in runs:
        done = _cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"hashspark: error: {path}: the ledger is damaged ("), lines
        assert "Traceback" not in done.stdout + done.stderr
    assert path.read_bytes() == before


# --- the audits, the restart memories, the recordings ---------------------------------------


def test_the_command_audit_on_a_full_disk_is_counted_not_raised(full_dir: Path) -> None:
    storage = StorageHealth()
    fleet = build_fleet([("Antminer S21", 2, [(200.0, 3500.0)])])
    audit = CommandAuditLog(full_dir / "commands.jsonl", storage=storage)
    plan = Plan(T0, np.zeros(2, dtype=np.int64), 80.0, 50.0, None, 0)
    batch = CommandBatch(miner=np.array([0, 1]), point=np.array([0, 0]))
    with structlog.testing.capture_logs() as logs:
        audit.record("s", fleet, plan, batch, None, dry_run=False)
        audit.record("s", fleet, plan, batch, None, dry_run=False)
    assert storage.failures["command_audit"] == 2
    assert storage.ok["command_audit"] is False
    failed = [e for e in logs if e["event"] == "storage_write_failed"]
    assert len(failed) == 1  # one line per streak, not per write
    assert "No space left on device" in failed[0]["reason"]


def test_an_operator_command_on_a_full_disk_is_applied_and_acknowledged(
    full_dir: Path,
) -> None:
    storage = StorageHealth()
    book = OverrideBook()
    handler = CommandHandler(
        "hb-west",
        CommandIntake("hb-west", LIMITS),
        book,
        AuditLog(full_dir / "audit.jsonl", storage),
    )
    ack = json.loads(
        handler.receive(_raw(command="force_curtail", id="op-1", until=_at(600)), NOW).to_bytes()
    )
    assert ack["status"] == "accepted"
    assert [o.id for o in book.current(NOW)] == ["op-1"]  # applied
    assert storage.failures["operator_audit"] == 1


@needs_root
def test_restart_memories_and_recordings_on_a_full_disk_fail_quietly_and_resume(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "state", "1m") as state:
        storage = StorageHealth()
        memory = ReadingMemory(state / "readings" / "price.json", "s:price", storage)
        recorder = FeedRecorder(state / "recordings", "price_usd_per_mwh", storage=storage)
        active = ActiveCommands(state / "commands" / "s.json", "s", storage)
        override = Override("op-1", "force_curtail", T0, T0 + 600, issued_by="op")
        memory(Reading(30.0, T0, "mqtt"))
        recorder(Reading(30.0, T0, "mqtt"))
        active.save((override,))
        filler = fill(state)
        memory(Reading(40.0, T0 + 1, "mqtt"))
        for i in range(200):  # enough lines to need a new block
            recorder(Reading(40.0 + i, T0 + 1 + i, "mqtt"))
        active.save(())
        assert storage.ok == storage.ok | {
            "readings": False,
            "recordings": False,
            "commands": False,
        }
        assert storage.failures["readings"] == 1
        assert storage.failures["commands"] == 1
        assert storage.failures["recordings"] >= 1
        filler.unlink()
        memory(Reading(50.0, T0 + 500, "mqtt"))
        recorder(Reading(50.0, T0 + 500, "mqtt"))
        active.save(())
        assert all(storage.ok.values())
        assert memory.recall() == Reading(50.0, T0 + 500, "mqtt")
        assert active.load() == []
        rows = (state / "recordings").glob("*.csv")
        text = "".join(p.read_text() for p in rows)
        assert all(line.count(",") == 1 for line in text.splitlines())  # no torn line
        assert text.splitlines()[-1].endswith(",50.0")


# --- the site loop: the backlog bound, a clock stepped back ------------------------------


class FullLedger(MemoryLedger):
    """A ledger that refuses every write while ``full``, as a full disk does."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def append(self, record: IntervalRecord) -> None:
        if self.full:
            raise LedgerError("ledger.sqlite3: database or disk is full (SQLITE_FULL)")
        super().append(record)


class WallClock:
    """A wall clock the test sets, backwards too (an NTP step, a reset RTC)."""

    def __init__(self, t: EpochS) -> None:
        self.t = t

    def now(self) -> EpochS:
        return self.t

    async def sleep_until(self, t: EpochS) -> None:
        self.t = max(self.t, t)


PPA = FixedPpa(0.007, 45.0)


def _loop(clock: WallClock, ledger: Ledger, **extra: object) -> SiteLoop:
    """Two S21 under a fixed PPA; a new price every 300 s from T0 - 3600 on."""
    fleet = build_fleet([("Antminer S21", 2, [(200.0, 3500.0)])])
    params = PolicyParams(supply=PPA, price_max_age_s=86400.0, hashprice_max_age_s=86400.0)
    times = T0 - 3600.0 + 300.0 * np.arange(40, dtype=np.float64)
    prices = RecordedFeed(
        Recording(
            "p", Path("p.csv"), "price_usd_per_mwh", times, 20.0 + np.arange(40, dtype=np.float64)
        )
    )
    hashprice = RecordedFeed(
        Recording(
            "h", Path("h.csv"), "hashprice_usd_per_ph_day", np.array([T0 - 3600]), np.array([50.0])
        )
    )
    return assemble(
        SiteModel("s", fleet, params, PPA, ()),
        clock=clock,
        price_feed=prices,
        hashprice_feed=hashprice,
        driver=InProcessFleet(fleet, clock),
        ledger=ledger,
        cycle_s=300.0,
        **extra,  # type: ignore[arg-type]
    )


async def test_held_intervals_are_bounded_and_written_in_order_when_space_returns() -> None:
    clock, ledger = WallClock(T0), FullLedger()
    storage = StorageHealth()
    loop = _loop(clock, ledger, storage=storage, max_unwritten=3)
    await loop.cycle()
    ledger.full = True
    for k in range(1, 7):  # a new price every 300 s: six intervals settle
        clock.t = T0 + 300.0 * k
        await loop.cycle()
    assert loop.unwritten == 3
    assert loop.dropped == 3
    assert ledger.records == []
    assert storage.ok["ledger"] is False
    assert storage.failures["ledger"] >= 6
    ledger.full = False
    clock.t = T0 + 300.0 * 7
    await loop.cycle()
    assert loop.unwritten == 0
    assert storage.ok["ledger"] is True
    # The three held, in order, then the one settled now; the three dropped are a gap.
    assert [(r.start, r.end) for r in ledger.records] == [
        (T0 + 300.0 * k, T0 + 300.0 * (k + 1)) for k in (0, 1, 2)
    ] + [(T0 + 1800.0, T0 + 2100.0)]


async def test_a_clock_stepped_back_books_every_interval_once_and_loses_none() -> None:
    clock, ledger = WallClock(T0), MemoryLedger()
    loop = _loop(clock, ledger)
    elapsed = 0.0
    wall = [T0 + 100.0 * k for k in range(13)]  # to T0 + 1200: four prices
    wall += [T0 + 100.0 * k for k in range(3, 10)]  # stepped back 900 s, then on to T0 + 900
    with structlog.testing.capture_logs() as logs:
        previous = wall[0]
        for t in wall:
            elapsed += max(0.0, t - previous) if t >= previous else 0.0
            previous = t
            clock.t = t
            await loop.cycle()
        loop.finish(wall[-1])
    assert loop.unwritten == 0  # nothing stuck behind a refused interval
    spans = [(r.start, r.end) for r in ledger.records]
    assert spans[0][0] == T0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), spans
    assert spans[-1][1] - spans[0][0] == pytest.approx(elapsed)  # every second, once
    assert elapsed == 1200.0 + 600.0
    steps = [e for e in logs if e["event"] == "clock_behind_ledger"]
    assert len(steps) == 1
    assert steps[0]["step_s"] == 900.0
    # The energy of the stepped-back span is booked: the fleet ran all along.
    mined = sum(r.component("mined_mwh") for r in ledger.records)
    assert mined == pytest.approx(0.007 * elapsed / 3600.0)


async def test_a_restart_with_the_clock_behind_the_ledger_books_from_the_ledgers_end(
    tmp_path: Path,
) -> None:
    ledger = SqliteLedger.open(
        tmp_path / "ledger.sqlite3", run_id="r1", config_version="v", started_at=T0
    )
    clock = WallClock(T0)
    loop = _loop(clock, ledger)
    for k in range(7):
        clock.t = T0 + 100.0 * k
        await loop.cycle()
    loop.finish(T0 + 600.0)
    assert ledger.last_end("s") == T0 + 600.0
    # A restart with the wall clock 500 s behind the ledger's end.
    clock = WallClock(T0 + 100.0)
    loop = _loop(clock, ledger)
    loop.resume_from(ledger.last_end("s"))
    for k in range(1, 5):
        clock.t = T0 + 100.0 * k
        await loop.cycle()
    loop.finish(T0 + 400.0)
    assert loop.unwritten == 0
    spans = [(r.start, r.end, r.kind) for r in ledger.records("s")]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), spans
    assert spans[-1][1] == T0 + 600.0 + 300.0  # 300 s of the second run, after the first's
    assert all(kind == "settled" for _, _, kind in spans)
    ledger.close()


async def test_a_backlog_is_caught_up_over_cycles_not_in_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each write is an fsync: a month of held intervals written in one cycle would hold up
    the decisions for tens of seconds (bench/bench_ledger_backlog.py). A cycle writes for
    ``LEDGER_CATCH_UP_S`` at most; ``finish`` writes everything."""
    fake = types.SimpleNamespace(t=0.0)
    monkeypatch.setattr(
        site_loop,
        "time",
        types.SimpleNamespace(monotonic=lambda: fake.t, perf_counter=time.perf_counter),
    )

    class SlowLedger(FullLedger):
        def append(self, record: IntervalRecord) -> None:
            super().append(record)
            fake.t += 0.1  # each write takes 0.1 s of the cycle's budget

    clock, ledger = WallClock(T0), SlowLedger()
    loop = _loop(clock, ledger)
    await loop.cycle()
    ledger.full = True
    for k in range(1, 11):
        clock.t = T0 + 300.0 * k
        await loop.cycle()
    assert loop.unwritten == 10
    ledger.full = False
    written = []
    for k in range(11, 14):
        clock.t = T0 + 300.0 * k
        await loop.cycle()
        written.append(len(ledger.records))
    per_cycle = site_loop.LEDGER_CATCH_UP_S // 0.1 + 1
    assert written == [per_cycle, 2 * per_cycle, 3 * per_cycle]  # in order, a few a cycle
    loop.finish(T0 + 300.0 * 14)
    assert loop.unwritten == 0
    spans = [(r.start, r.end) for r in ledger.records]
    assert spans == [(T0 + 300.0 * k, T0 + 300.0 * (k + 1)) for k in range(14)]


@needs_root
def test_writers_whose_directory_turns_read_only_mid_run_fail_quietly_and_resume(
    tmp_path: Path,
) -> None:
    """A file system cannot be remounted read-only under a process that holds files open for
    writing (EBUSY), so the mid-run case mounts a read-only tmpfs over each writer's directory
    and takes it away again: each writer opens its file per write and meets EROFS."""
    state = tmp_path / "state"
    storage = StorageHealth()
    fleet = build_fleet([("Antminer S21", 2, [(200.0, 3500.0)])])
    plan = Plan(T0, np.zeros(2, dtype=np.int64), 80.0, 50.0, None, 0)
    batch = CommandBatch(miner=np.array([0, 1]), point=np.array([0, 0]))
    audit = CommandAuditLog(state / "audit" / "s-commands.jsonl", storage=storage)
    handler = CommandHandler(
        "hb-west",
        CommandIntake("hb-west", LIMITS),
        OverrideBook(),
        AuditLog(state / "audit" / "s.jsonl", storage),
    )
    memory = ReadingMemory(state / "readings" / "price.json", "s:price", storage)
    active = ActiveCommands(state / "commands" / "s.json", "s", storage)
    (state / "readings").mkdir()
    (state / "commands").mkdir()

    def write_all(i: int) -> dict[str, object]:
        audit.record("s", fleet, plan, batch, None, dry_run=False)
        memory(Reading(30.0 + i, T0 + i, "mqtt"))
        active.save(())
        ack: dict[str, object] = json.loads(
            handler.receive(
                _raw(command="force_curtail", id=f"op-{i}", until=_at(600)), NOW
            ).to_bytes()
        )
        return ack

    write_all(0)
    assert all(storage.ok.values())
    kinds: tuple[StorageKind, ...] = ("command_audit", "operator_audit", "readings", "commands")
    with contextlib.ExitStack() as stack:
        for d in ("audit", "readings", "commands"):
            stack.enter_context(tmpfs(state / d, "1m", read_only=True))
        with structlog.testing.capture_logs() as logs:
            ack = write_all(1)
        assert ack["status"] == "accepted"  # still applied and acknowledged
        assert [storage.ok[k] for k in kinds] == [False] * 4
        reasons = {str(e.get("reason")) for e in logs if "reason" in e}
        assert any("Read-only file system" in r for r in reasons), logs
    write_all(2)  # the read-only mounts gone: the same directories, writable again
    assert [storage.ok[k] for k in kinds] == [True] * 4
    assert [storage.failures[k] for k in kinds] == [1, 1, 1, 1]
    assert memory.recall() == Reading(32.0, T0 + 2, "mqtt")
    lines = (state / "audit" / "s.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["op-0", "op-2"]


@needs_root
def test_an_append_cut_short_by_a_full_disk_leaves_no_torn_line(tmp_path: Path) -> None:
    """tmpfs fills the page a file already has, then refuses: a short write, then ENOSPC."""
    with tmpfs(tmp_path / "state", "1m") as state:
        path = state / "audit.jsonl"
        append_lines(path, ['{"n": 0}'])
        filler = fill(state)
        with pytest.raises(OSError) as full:
            append_lines(path, ['{"n": 1, "pad": "' + "x" * 20_000 + '"}'])
        assert full.value.errno == errno.ENOSPC
        assert path.read_text() == '{"n": 0}\n'  # the part that fitted was cut back off
        filler.unlink()
        append_lines(path, ['{"n": 2}'])
        assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 2]


async def test_intervals_still_held_at_the_finish_are_named_in_the_log() -> None:
    clock, ledger = WallClock(T0), FullLedger()
    loop = _loop(clock, ledger)
    await loop.cycle()
    ledger.full = True
    for k in range(1, 4):
        clock.t = T0 + 300.0 * k
        await loop.cycle()
    with structlog.testing.capture_logs() as logs:
        loop.finish(T0 + 1000.0)
    [lost] = [e for e in logs if e["event"] == "ledger_intervals_lost"]
    assert lost["intervals"] == 4  # three settled by the cycles, one by the finish
    assert (lost["first"], lost["last"]) == ("2024-06-01T05:00:00Z", "2024-06-01T05:16:40Z")
