"""supervisor/exitwatch.py: a spawned child's exit reaches the daemon through an event-loop
reader on its pidfd (no task per run), with real children and real signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from status.models import JobState
from supervisor.adopt import AdoptedProcess
from supervisor.exitwatch import ExitWatch
from supervisor.spawn import Child, spawn
from tests.supervisor.harness import job, reach, running

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfds (Linux 5.3+)")


def _child(tmp_path: Path, code: str) -> Child:
    return spawn([sys.executable, "-c", code], cwd=tmp_path, env=dict(os.environ),
                 stdout=tmp_path / "out", stderr=tmp_path / "err")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _exits(watch: ExitWatch, children: list[Child]) -> list[tuple[int, int]]:
    """Watch `children`; return (pid, code) as their exits arrive, once all have."""
    got: list[tuple[int, int]] = []
    done = anyio.Event()

    def on_exit(pid: int, code: int) -> None:
        got.append((pid, code))
        if len(got) == len(children):
            done.set()

    for child in children:
        assert watch.watch(child, lambda code, pid=child.pid: on_exit(pid, code))
    with anyio.fail_after(10):
        await done.wait()
    return got


async def test_an_exit_code_and_a_kill_are_reported_once_reaped_and_the_pidfds_closed(tmp_path: Path) -> None:
    before = _open_fds()
    watch = ExitWatch()
    quits = _child(tmp_path, "raise SystemExit(3)")
    killed = _child(tmp_path, "import time; time.sleep(60)")
    os.kill(killed.pid, signal.SIGKILL)
    got = dict(await _exits(watch, [quits, killed]))
    assert got == {quits.pid: 3, killed.pid: -signal.SIGKILL}
    assert quits.popen.returncode == 3 and killed.popen.returncode == -signal.SIGKILL  # reaped
    assert len(watch) == 0 and _open_fds() == before


async def test_an_adopted_process_is_watched_too_and_reported_without_a_status(tmp_path: Path) -> None:
    """A run taken over from an earlier daemon: its status went to its parent, so None."""
    before = _open_fds()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # "the earlier daemon's"
    try:
        adopted = AdoptedProcess.open(proc.pid)
        got: list[int | None] = []
        gone = anyio.Event()

        def on_exit(code: int | None) -> None:
            got.append(code)
            gone.set()

        assert ExitWatch().watch(adopted, on_exit)
        proc.kill()
        with anyio.fail_after(10):
            await gone.wait()
        assert got == [None] and _open_fds() == before
    finally:
        proc.kill()
        proc.wait()  # the parent reaps it, not the watch


async def test_a_failing_callback_is_logged_with_the_pid_and_the_other_exits_still_arrive(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    watch = ExitWatch()
    bad, good = _child(tmp_path, "pass"), _child(tmp_path, "raise SystemExit(5)")
    failed, arrived = anyio.Event(), anyio.Event()
    codes: list[int] = []

    def boom(code: int) -> None:
        failed.set()
        raise RuntimeError("bug in the exit path")

    def fine(code: int) -> None:
        codes.append(code)
        arrived.set()

    with caplog.at_level(logging.ERROR, logger="supervisor.exitwatch"):
        assert watch.watch(bad, boom) and watch.watch(good, fine)
        with anyio.fail_after(10):
            await failed.wait()
            await arrived.wait()
    assert codes == [5] and len(watch) == 0
    assert f"handling the exit of pid {bad.pid} (code 0) failed" in caplog.text
    assert "bug in the exit path" in caplog.text


async def test_close_leaves_the_children_running_and_closes_their_pidfds(tmp_path: Path) -> None:
    before = _open_fds()
    watch = ExitWatch()
    child = _child(tmp_path, "import time; time.sleep(60)")
    called: list[int] = []
    assert watch.watch(child, called.append)
    watch.close()
    assert len(watch) == 0 and _open_fds() == before
    assert child.popen.poll() is None  # still running: the next daemon would adopt it
    child.popen.kill()
    child.popen.wait()
    await anyio.sleep(0.05)  # a turn of the loop: a reader left behind would fire now
    assert called == []


async def test_a_child_without_a_pidfd_is_left_to_a_task(tmp_path: Path) -> None:
    child = _child(tmp_path, "pass")
    os.close(child.pidfd)
    child.pidfd = None
    assert ExitWatch().watch(child, lambda code: None) is False
    assert await child.wait() == 0


async def test_the_daemon_keeps_no_task_per_running_job(tmp_path: Path) -> None:
    """What the exit watch is for: 1 or 20 running services, the same number of tasks."""
    sleeper = "import time\ntime.sleep(600)\n"

    async def tasks_with(n: int) -> int:
        d_path = tmp_path / str(n)
        d_path.mkdir()
        tables = [job(d_path, f"s{i}", sleeper, kind="service") for i in range(n)]
        async with running(d_path, *tables) as d:
            for i in range(n):
                await reach(d, f"s{i}", JobState.STARTING, JobState.RUNNING)
            await anyio.wait_all_tasks_blocked()
            return len(asyncio.all_tasks())

    assert await tasks_with(20) == await tasks_with(1)
