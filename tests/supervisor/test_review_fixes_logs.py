"""supervisor/logs.py against a job that plants FIFOs, symlinks and hard links in its own run
dir: rotation never opens a name the job controls except as a checked regular file, never
blocks, and so never stops the daemon's rescan loop (heartbeat safety net, status.json,
rotation of every other job's logs) nor its shutdown."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from status.models import JobState
from supervisor.logs import open_for_child, rotate_if_needed, size_of, tail
from tests.supervisor.harness import job, reach, running

WAIT = 5.0  # a call that has not returned by then is blocked (in open() of a FIFO)


def returns_promptly(call: Callable[[], object], fifos: list[Path]) -> object:
    """Run `call` in a thread; if it blocks, free it (open the FIFOs' read ends) and fail."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    thread.join(WAIT)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(WAIT)
        pytest.fail(f"blocked for over {WAIT}s")
    return out[0]


def is_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


# --- rotation: backups -------------------------------------------------------------------------

def test_a_fifo_at_the_backup_name_is_replaced_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"x" * 5000)
    os.mkfifo(tmp_path / "stdout.log.1")
    assert returns_promptly(lambda: rotate_if_needed(path, 2000, 1), [tmp_path / "stdout.log.1"]) == 5000
    backup = tmp_path / "stdout.log.1"
    assert stat.S_ISREG(os.lstat(backup).st_mode) and stat.S_IMODE(os.lstat(backup).st_mode) == 0o600
    head, _, kept = backup.read_bytes().partition(b"\n")
    assert head == b"[proofwatch: 3000 earlier bytes dropped: over log_max_bytes]" and kept == b"x" * 2000
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stdout.log", "stdout.log.1"]  # no temp left


def test_planted_backups_are_shifted_by_rename_and_never_opened(tmp_path: Path) -> None:
    """FIFOs and links at every backup name (default log_backups = 3): each is only renamed
    up the chain (or pushed out), the new .1 is the daemon's own regular file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    run = tmp_path / "run"
    run.mkdir()
    path = run / "stdout.log"
    os.mkfifo(run / "stdout.log.1")
    (run / "stdout.log.2").symlink_to(victim)
    os.mkfifo(run / "stdout.log.3")
    fifos = [run / f"stdout.log.{i}" for i in (1, 2, 3)]
    path.write_bytes(b"first\n" * 1000)
    assert returns_promptly(lambda: rotate_if_needed(path, 100, 3), fifos) == 6000
    assert stat.S_ISREG(os.lstat(run / "stdout.log.1").st_mode)
    assert is_fifo(run / "stdout.log.2") and (run / "stdout.log.3").is_symlink()  # moved along
    path.write_bytes(b"second\n" * 1000)
    assert returns_promptly(lambda: rotate_if_needed(path, 100, 3), fifos) == 7000
    assert (run / "stdout.log.1").read_bytes().endswith(b"second\n")
    assert (run / "stdout.log.2").read_bytes().endswith(b"first\n")
    assert is_fifo(run / "stdout.log.3")  # the link was pushed out; nothing went through it
    assert victim.read_text() == "untouched\n"
    assert tail(run / "stdout.log.3") == []


def test_a_link_at_the_backup_name_is_replaced_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    path = tmp_path / "stderr.log"
    path.write_bytes(b"y" * 4096)
    (tmp_path / "stderr.log.1").symlink_to(victim)
    assert rotate_if_needed(path, 1024, 1) == 4096
    assert not (tmp_path / "stderr.log.1").is_symlink()
    assert tail(tmp_path / "stderr.log.1")[-1] == "y" * 1024
    assert victim.read_text() == "untouched\n"


def test_a_directory_planted_up_the_chain_costs_a_generation_not_the_rotation(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    (tmp_path / "stdout.log.1").write_bytes(b"old\n")
    (tmp_path / "stdout.log.2").mkdir()
    (tmp_path / "stdout.log.2" / "f").touch()
    path.write_bytes(b"z" * 500)
    assert rotate_if_needed(path, 100, 2) == 500
    assert (tmp_path / "stdout.log.1").read_bytes().endswith(b"z" * 100) and path.read_bytes() == b""


# --- rotation: the log itself --------------------------------------------------------------------

def test_a_log_hard_linked_to_another_file_is_never_truncated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"precious\n" * 1000)
    run = tmp_path / "run"
    run.mkdir()
    os.link(victim, run / "stdout.log")
    with caplog.at_level(logging.WARNING, logger="supervisor.logs"):
        assert rotate_if_needed(run / "stdout.log", 100, 3) == 0
        assert rotate_if_needed(run / "stdout.log", 100, 3) == 0
    assert victim.read_bytes() == b"precious\n" * 1000
    assert sorted(p.name for p in run.iterdir()) == ["stdout.log"]  # no backup of it either
    assert [r.getMessage() for r in caplog.records if "hard link" in r.getMessage()] == [
        f"rotating {run / 'stdout.log'}: it has another hard link; not rotated"]  # once


def test_a_log_that_is_a_link_or_a_fifo_is_left_alone_without_blocking(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n" * 100)
    run = tmp_path / "run"
    run.mkdir()
    (run / "stderr.log").symlink_to(victim)
    os.mkfifo(run / "stdout.log")
    assert rotate_if_needed(run / "stderr.log", 0, 3) == 0  # the link itself is "over" 0 bytes
    assert returns_promptly(lambda: rotate_if_needed(run / "stdout.log", -1, 3), [run / "stdout.log"]) == 0
    assert victim.read_text() == "untouched\n" * 100
    assert sorted(p.name for p in run.iterdir()) == ["stderr.log", "stdout.log"]


def test_size_of_counts_only_a_regular_file_never_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"b" * 10_000)
    (tmp_path / "link").symlink_to(tmp_path / "big")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")
    assert size_of(tmp_path / "big") == 10_000
    assert [size_of(tmp_path / n) for n in ("link", "loop", "fifo", "missing")] == [0, 0, 0, 0]


# --- the child's output files -----------------------------------------------------------------

@pytest.mark.parametrize("planted", ["fifo", "symlink", "hardlink"])
def test_open_for_child_replaces_whatever_was_planted(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    run = tmp_path / "run"
    run.mkdir()
    path = run / "stdout.log"
    {"fifo": lambda: os.mkfifo(path), "symlink": lambda: path.symlink_to(victim),
     "hardlink": lambda: os.link(victim, path)}[planted]()
    fd = returns_promptly(lambda: open_for_child(path), [path])
    assert isinstance(fd, int)
    try:
        assert os.get_blocking(fd)  # the child gets an ordinary descriptor
        os.write(fd, b"child output\n")
    finally:
        os.close(fd)
    assert stat.S_ISREG(os.lstat(path).st_mode) and os.lstat(path).st_nlink == 1
    assert path.read_bytes() == b"child output\n" and victim.read_text() == "untouched\n"


# --- a real daemon -------------------------------------------------------------------------------

PLANTER = r'''
import os, sys, threading, time
from workers.sdk import Run
run = Run.from_env()
d = os.environ["PROOFWATCH_RUN_DIR"]
def plant():
    """A FIFO at every backup name as soon as it is free, so one is there between the daemon's
    shifting of the older backups and its writing of the new one."""
    while True:
        for n in (1, 2, 3):
            try:
                os.mkfifo(os.path.join(d, f"stdout.log.{n}"))
            except OSError:
                pass
        time.sleep(0.0005)
threading.Thread(target=plant, daemon=True).start()
i = 0
while True:
    i += 1
    run.beat({"i": i}, force=True)
    sys.stdout.write("x" * 3000 + "\n"); sys.stdout.flush()
    time.sleep(0.05)
'''

FLOOD = r'''
import sys, time
from workers.sdk import Run
run = Run.from_env()
i = 0
while True:
    i += 1
    sys.stdout.write("y" * 1000 + "\n"); sys.stdout.flush()
    run.beat({"i": i}, force=True)
    time.sleep(0.01)
'''

CAP = 2000


async def _free_stuck_daemon(runs_dir: Path, give_up: anyio.Event, rescued: list[bool]) -> None:
    """Only if the daemon has not shut down in time: open the read ends of the planted FIFOs,
    so a rotation blocked in open() returns and the test fails instead of hanging."""
    await give_up.wait()
    rescued.append(True)
    while True:
        for fifo in runs_dir.glob("planter/*/stdout.log.*"):
            try:
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            await anyio.sleep(0.05)
            try:
                os.read(fd, 1 << 20)
            except OSError:
                pass
            os.close(fd)
        await anyio.sleep(0.05)


@pytest.mark.anyio
@pytest.mark.parametrize("backups", [1, 3], ids=["log_backups=1", "default-log_backups=3"])
async def test_a_job_planting_fifos_at_its_backups_stops_neither_rotation_nor_shutdown(
    tmp_path: Path, backups: int
) -> None:
    tables = (job(tmp_path, "planter", PLANTER, kind="service")
              + job(tmp_path, "flood", FLOOD, kind="service"))
    extra = f"log_max_bytes = {CAP}\n" + ("" if backups == 3 else f"log_backups = {backups}\n")
    give_up, rescued = anyio.Event(), []
    sizes: list[int] = []
    backup_sizes: list[int] = []
    async with anyio.create_task_group() as guard:
        guard.start_soon(_free_stuck_daemon, tmp_path / "var" / "runs", give_up, rescued)
        async with running(tmp_path, tables, supervisor=extra) as d:
            assert d.config.supervisor.log_backups == backups
            await reach(d, "planter", JobState.RUNNING)
            await reach(d, "flood", JobState.RUNNING)
            planter, flood = d.jobs["planter"].run, d.jobs["flood"].run
            assert planter is not None and flood is not None
            rotated_before = flood.rotated_bytes
            end = time.monotonic() + 4
            while time.monotonic() < end:
                sizes.append(size_of(flood.stdout_path))
                for f in flood.run_dir.glob("stdout.log.*"):
                    backup_sizes.append(size_of(f))
                await anyio.sleep(0.1)
            flood_rotated = flood.rotated_bytes - rotated_before
            planter_rotated = planter.rotated_bytes
            planter_log = size_of(planter.stdout_path)
            d.shutdown("test done")
            shutdown_at = time.monotonic()
            with anyio.move_on_after(8):
                await d.finished.wait()
            shutdown_took = time.monotonic() - shutdown_at
            if not d.finished.is_set():
                give_up.set()
        guard.cancel_scope.cancel()
    assert not rescued, "the daemon was stuck (in open() of a planted FIFO) and could not shut down"
    assert shutdown_took < 8
    # the other job's log went on being rotated all along, and kept within its cap
    assert flood_rotated > 50_000, flood_rotated
    assert max(sizes) < 40_000, max(sizes)
    assert max(backup_sizes, default=0) <= CAP + 100
    # and the planter's own log too: its FIFOs were replaced, not written to
    assert planter_rotated > 0 and planter_log < 40_000, (planter_rotated, planter_log)
