"""Re-adoption: runs outlive the daemon; the next daemon takes them over by pid + create time
(never a reused pid), keeps watching them, judges adopted tasks by their proofs, and closes the
runs whose processes are gone as lost, with an alert. Never a second copy of a service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import psutil
import pytest

from status.history import Batch, History, RunRow
from status.models import JobState
from supervisor.config import load_config
from tests import _procs as P
from tests._procs import script
from tests.supervisor.harness import HEADER, job, reach, running
from tests.supervisor.test_cli import PROOFWATCH, wait_for

pytestmark = pytest.mark.anyio

# A task that beats until its run dir holds "go", then writes its proof and exits 0.
WAITS_THEN_PROVES = """
import os, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
run_dir = Path(os.environ["PROOFWATCH_RUN_DIR"])
run.proof("out.txt", kind="text")
i = 0
while not (run_dir / "go").exists():
    i += 1
    run.beat({"i": i}, force=True)
    time.sleep(0.05)
(run_dir / "out.txt").write_text("the work\\n")
run.beat({"i": i + 1}, force=True)
"""

WAITS_NO_PROOF = WAITS_THEN_PROVES.replace('run.proof("out.txt", kind="text")\n', "")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def left_running(tmp_path: Path, *tables: str, until: JobState = JobState.RUNNING) -> dict[str, int]:
    """Run a daemon until every job is `until`, then exit it leaving the runs alive; their pids."""
    async with running(tmp_path, *tables) as daemon:
        for name in daemon.jobs:
            await reach(daemon, name, until)
        pids = {name: j.run.pid for name, j in daemon.jobs.items() if j.run and j.run.pid}
        daemon.shutdown("test: the daemon goes away", leave_running=True)
        with anyio.fail_after(10):
            await daemon.finished.wait()
    assert all(alive(pid) for pid in pids.values()), "a run died with its daemon"
    return pids


async def test_a_restarted_daemon_re_adopts_a_live_service_and_keeps_watching_it(tmp_path):
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service", stall_after="30s")
    pids = await left_running(tmp_path, table)
    async with running(tmp_path, table) as daemon:
        svc = daemon.jobs["svc"]
        assert svc.run is not None and svc.run.pid == pids["svc"] and svc.run.adopted
        assert svc.state == JobState.RUNNING
        ticks = svc.run.progress.get("ticks", 0)
        await daemon.wait_until(lambda: svc.run is not None and svc.run.progress.get("ticks", 0) > ticks + 5, 10)
        await daemon.status.write_now()
        doc = json.loads(daemon.config.status_file.read_text())
        assert doc["jobs"]["svc"]["adopted"] is True and doc["jobs"]["svc"]["pid"] == pids["svc"]
        assert not [p for p in psutil.process_iter(["cmdline"])
                    if p.pid != pids["svc"] and "svc.py" in " ".join(p.info["cmdline"] or [])]
        events = daemon.history.events(job="svc")
        assert any(e.kind == "adopt" and f"re-adopted pid {pids['svc']}" in e.reason for e in events)

        os.kill(pids["svc"], signal.SIGKILL)  # its death is still seen, without being its parent
        await daemon.wait_until(lambda: svc.last_run is not None and svc.last_run.pid == pids["svc"], 10)
        assert svc.last_run is not None
        assert svc.last_run.state == JobState.FAILED
        assert "status unknown: adopted after a supervisor restart" in (svc.last_run.error or "")
        await reach(daemon, "svc", JobState.RUNNING)  # and it is restarted like any service
        assert svc.run is not None and svc.run.pid != pids["svc"] and not svc.run.adopted


async def test_an_adopted_task_is_judged_by_its_proofs(tmp_path):
    proved = job(tmp_path, "proved", WAITS_THEN_PROVES)
    bare = job(tmp_path, "bare", WAITS_NO_PROOF)
    await left_running(tmp_path, proved, bare)
    async with running(tmp_path, proved, bare) as daemon:
        for name in ("proved", "bare"):
            run = daemon.jobs[name].run
            assert run is not None and run.adopted
            (run.run_dir / "go").touch()
        await reach(daemon, "proved", JobState.SUCCEEDED)
        await reach(daemon, "bare", JobState.FAILED)
        good = daemon.jobs["proved"].last_run
        bad = daemon.jobs["bare"].last_run
        assert good is not None and good.exit_code is None and [p.ok for p in good.proofs] == [True]
        assert bad is not None and "exit status is unknown" in (bad.error or "")
        assert "bare:unproven" in daemon.alerts.active


async def test_on_exit_leave_keeps_jobs_running_through_a_normal_shutdown(tmp_path):
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    async with running(tmp_path, table, supervisor='on_exit = "leave"') as daemon:
        await reach(daemon, "svc", JobState.RUNNING)
        assert daemon.jobs["svc"].run is not None
        pid = daemon.jobs["svc"].run.pid
        daemon.shutdown("SIGTERM, as systemctl restart sends it")
        with anyio.fail_after(10):
            await daemon.finished.wait()
        assert pid is not None and alive(pid)
        events = daemon.history.events()
        assert any("1 run(s) left running" in e.reason for e in events)
    os.killpg(pid, signal.SIGKILL)


def _record(tmp_path: Path, table: str, row: RunRow) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + table)
    config = load_config(cfg)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    history = History(config.history_db)
    history.apply(Batch(runs=[row]))
    history.close()


async def test_a_reused_pid_is_never_mistaken_for_the_run(tmp_path):
    """The history says svc runs as pid P; P now belongs to an unrelated process, created
    later. It must be left alone, the old run closed as lost, and svc started afresh."""
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        created = psutil.Process(stranger.pid).create_time()
        started = datetime.fromtimestamp(created, timezone.utc) - timedelta(minutes=30)
        _record(tmp_path, table, RunRow(run_id="20261125T080000000Z-aaaaaa", job="svc", state="RUNNING",
                                        started_at=started, pid=stranger.pid, pid_created=created - 1800,
                                        command="python svc.py"))
        async with running(tmp_path, table) as daemon:
            await reach(daemon, "svc", JobState.RUNNING)
            svc = daemon.jobs["svc"]
            assert svc.run is not None and not svc.run.adopted and svc.run.pid != stranger.pid
            assert stranger.poll() is None  # not signalled: it was never ours
            alert = daemon.alerts.active["svc:lost"]
            assert "lost while the supervisor was down" in alert.title
            assert "its process ended meanwhile" in (daemon.history.run("20261125T080000000Z-aaaaaa").error or "")
    finally:
        stranger.kill()
        stranger.wait()


async def test_a_run_whose_process_is_gone_is_closed_as_lost_with_an_alert(tmp_path):
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service", start="manual")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _record(tmp_path, table, RunRow(run_id="20261125T080000000Z-bbbbbb", job="svc", state="RUNNING",
                                    started_at=datetime.now(timezone.utc) - timedelta(minutes=5),
                                    pid=gone.pid, pid_created=1.0))
    async with running(tmp_path, table) as daemon:
        row = daemon.history.run("20261125T080000000Z-bbbbbb")
        assert row is not None and row.state == "FAILED" and row.ended_at is not None
        assert "lost while the supervisor was down" in (row.error or "")
        assert "svc:lost" in daemon.alerts.active
        assert daemon.jobs["svc"].run is None  # a manual service is not started on its own


async def test_a_run_interrupted_while_verifying_is_verified_again(tmp_path):
    table = job(tmp_path, "task", P.EXIT_OK, start="manual") + (
        '[[jobs.task.proofs]]\npath = "out.txt"\nkind = "text"\ncontains = ["the work"]\n')
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + table)
    run_dir = load_config(cfg).runs_dir / "task" / "20261125T080000000Z-cccccc"
    run_dir.mkdir(parents=True)
    (run_dir / "out.txt").write_text("the work\n")
    ended = datetime.now(timezone.utc) - timedelta(seconds=30)
    _record(tmp_path, table, RunRow(run_id=run_dir.name, job="task", state="VERIFYING", started_at=ended - timedelta(minutes=2),
                                    ended_at=ended, pid=4_000_000, exit_code=0, run_dir=str(run_dir),
                                    last_heartbeat_at=ended))
    async with running(tmp_path, table) as daemon:
        await reach(daemon, "task", JobState.SUCCEEDED)
        last = daemon.jobs["task"].last_run
        assert last is not None and last.run_id == run_dir.name and last.exit_code == 0
        assert "1 proof verified" in (daemon.history.run(run_dir.name).error or "1 proof verified")
        assert not [a for a in daemon.alerts.active if a.startswith("task:")]


@pytest.mark.slow
def test_a_killed_daemon_with_20_live_jobs_re_adopts_all_20_and_runs_none_twice(tmp_path):
    body = script(tmp_path, "svc", P.BEATS_FOREVER)
    tables = "".join(f'[jobs.s{i:02d}]\nkind = "service"\ncommand = ["{sys.executable}", "{body}"]\n'
                     'stop_grace = "2s"\n' for i in range(20))
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + tables)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    status_file = load_config(cfg).status_file

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([*PROOFWATCH, "run", "--config", str(cfg)], cwd=tmp_path, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def workers() -> set[int]:
        return {p.pid for p in psutil.process_iter(["cmdline", "status"])
                if str(body) in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE}

    def running_jobs(adopted: bool) -> dict[str, int] | None:
        try:
            jobs = json.loads(status_file.read_text())["jobs"]
        except (OSError, ValueError, KeyError):
            return None
        up = {name: js["pid"] for name, js in jobs.items()
              if js["state"] == "RUNNING" and js.get("adopted", False) == adopted}
        return up if len(up) == 20 else None

    first = start()
    try:
        before = wait_for("20 running jobs", lambda: running_jobs(adopted=False), timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert set(before.values()) == workers()  # all 20 outlive their supervisor's crash
    second = start()
    try:
        after = wait_for("20 re-adopted jobs", lambda: running_jobs(adopted=True), timeout=60)
        assert after == before  # the same processes, each under its own job
        assert workers() == set(before.values())  # and not one started twice
        shown = subprocess.run([*PROOFWATCH, "status", "--config", str(cfg)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=30).stdout
        assert f"{before['s00']}*" in shown and "re-adopted after a supervisor restart" in shown
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    assert workers() == set()  # on_exit = "stop" (the default): a normal shutdown stops them


async def test_a_run_spawned_just_before_the_daemon_died_is_found_by_its_environment(tmp_path):
    """The daemon died between spawn and its first note of the run (no pid file, no history
    row): the next daemon finds the run's session leader by its environment and adopts it."""
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + table)
    config = load_config(cfg)
    run_dir = config.runs_dir / "svc" / "20261125T080000000Z-dddddd"
    run_dir.mkdir(parents=True)
    env = {**os.environ, "PROOFWATCH_JOB": "svc", "PROOFWATCH_RUN_ID": run_dir.name,
           "PROOFWATCH_RUN_DIR": str(run_dir), "PROOFWATCH_HEARTBEAT": str(run_dir / "heartbeat.json"),
           "PROOFWATCH_DATA_DIR": str(config.data_dir)}
    stray = subprocess.Popen([sys.executable, str(tmp_path / "svc.py")], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with running(tmp_path, table) as daemon:
            svc = daemon.jobs["svc"]
            assert svc.run is not None and svc.run.adopted and svc.run.pid == stray.pid
            await reach(daemon, "svc", JobState.RUNNING)
            assert svc.run.run_id == run_dir.name
        assert stray.wait(timeout=10) is not None  # stopped with the daemon, like any run
    finally:
        if stray.poll() is None:
            stray.kill()


async def test_a_pid_file_the_daemon_did_not_write_is_never_trusted(tmp_path):
    """A job owns its run dir (user = ...), so it could plant a pid file naming any process;
    one not owned by the daemon is ignored: that process is neither adopted nor signalled."""
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + table)
    run_dir = load_config(cfg).runs_dir / "svc" / "20261125T080000000Z-eeeeee"
    run_dir.mkdir(parents=True)
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        pidfile = run_dir / "pid"
        pidfile.write_text(f"{victim.pid} {psutil.Process(victim.pid).create_time():.3f}\n")
        os.chown(pidfile, 65534, 65534)  # nobody's
        async with running(tmp_path, table) as daemon:
            await reach(daemon, "svc", JobState.RUNNING)
            assert daemon.jobs["svc"].run is not None and daemon.jobs["svc"].run.pid != victim.pid
            row = daemon.history.run(run_dir.name)
            assert row is not None and row.state == "FAILED" and row.pid is None
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


async def test_a_clock_step_does_not_make_a_live_run_look_gone(tmp_path):
    """Create times are dated from the boot time, which a clock step moves (even a 0.2 s step
    can shift it by 1 s). The run's environment still names it: adopted, never run twice."""
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    pids = await left_running(tmp_path, table)
    cfg = tmp_path / "config.toml"
    history = History(load_config(cfg).history_db, create=False)
    with history.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE runs SET pid_created = pid_created + 1.0 WHERE pid = ?", (pids["svc"],))
    history.close()
    try:
        async with running(tmp_path, table) as daemon:
            svc = daemon.jobs["svc"].run
            assert svc is not None and svc.adopted and svc.pid == pids["svc"]
    finally:
        if alive(pids["svc"]):
            os.killpg(pids["svc"], signal.SIGKILL)


async def test_a_task_that_ended_while_no_daemon_watched_is_judged_by_its_proofs(tmp_path):
    table = job(tmp_path, "proved", WAITS_THEN_PROVES)
    pids = await left_running(tmp_path, table)
    run_dir = next((tmp_path / "var" / "runs" / "proved").iterdir())
    (run_dir / "go").touch()
    with anyio.fail_after(10):
        while alive(pids["proved"]):  # it finishes with no supervisor at all
            await anyio.sleep(0.05)
    async with running(tmp_path, table) as daemon:
        await reach(daemon, "proved", JobState.SUCCEEDED)
        assert await daemon.recorder.flush()  # the events of that transition are in the history
        events = daemon.history.events(job="proved")
        assert any("ended while the supervisor was down (exit status unknown)" in e.reason for e in events)
        assert "proved:lost" not in daemon.alerts.active


async def test_of_two_session_leaders_in_one_run_dir_the_first_started_is_the_run(tmp_path):
    """A job's child that calls setsid shares the run's environment; the run is its leader."""
    table = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + table)
    config = load_config(cfg)
    run_dir = config.runs_dir / "svc" / "20261125T080000000Z-ffffff"
    run_dir.mkdir(parents=True)
    env = {**os.environ, "PROOFWATCH_RUN_ID": run_dir.name, "PROOFWATCH_RUN_DIR": str(run_dir)}
    leader = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    child = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    try:
        from supervisor.adopt import run_leaders
        assert run_leaders(config.runs_dir, "PROOFWATCH_RUN_DIR")[run_dir] == leader.pid
    finally:
        for p in (leader, child):
            p.kill()
            p.wait()
