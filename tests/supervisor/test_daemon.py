"""The daemon with real child processes, real files and a real SQLite history."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime

import anyio
import psutil

from status.history import History
from status.models import JobState
from status.store import read_status
from tests import _procs as P
from tests.supervisor.harness import FakeClock, job, reach, running, utc

S = JobState


async def test_worker_that_beats_and_exits_0_succeeds(tmp_path):
    async with running(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as d:
        await reach(d, "ok", S.SUCCEEDED)
        run = d.jobs["ok"].last_run
        assert run is not None and run.exit_code == 0
        assert run.progress == {"items": 3.0}
        assert not d.alerts.active


async def test_exit_3_before_first_heartbeat_is_crashed_with_code_and_stderr_tail(tmp_path):
    async with running(tmp_path, job(tmp_path, "boom", P.CRASH_AT_START)) as d:
        await reach(d, "boom", S.CRASHED)
        alert = d.alerts.active["boom:crashed"]
        assert "exited with code 3 before its first heartbeat" in alert.title
        assert "fatal: FEED_TOKEN is not set" in alert.detail
        tail = [ln for ln in alert.detail.splitlines() if ln.startswith("  stderr line")]
        assert len(tail) == 19  # 20 lines of stderr tail, the last being the fatal line
        assert d.jobs["boom"].last_run.exit_code == 3


async def test_job_that_never_beats_goes_silent_after_startup_grace(tmp_path):
    async with running(tmp_path, job(tmp_path, "mute", P.NEVER_BEATS, startup_grace="500ms")) as d:
        await reach(d, "mute", S.SILENT, timeout=5)
        run = d.jobs["mute"].run
        late = (datetime.now(run.started_at.tzinfo) - run.started_at).total_seconds()
        assert 0.5 <= late < 1.5
        assert "no heartbeat 500ms after start" in d.alerts.active["mute:silent"].title


async def test_unchanged_progress_stalls_at_stall_after_with_one_alert(tmp_path):
    async with running(tmp_path, job(tmp_path, "stuck", P.BEATS_NO_PROGRESS, stall_after="1s")) as d:
        await reach(d, "stuck", S.RUNNING)
        await reach(d, "stuck", S.STALLED, timeout=5)
        run = d.jobs["stuck"].run
        assert run.last_progress_at is not None
        late = (datetime.now(run.started_at.tzinfo) - run.last_progress_at).total_seconds()
        assert 1.0 <= late < 1.5, "flagged within half a second of the deadline"
        # heartbeats keep coming without progress: still one alert, never re-raised
        seq = run.hb_seq
        await d.wait_until(lambda: run.hb_seq >= seq + 20, timeout=5)
        alert = d.alerts.active["stuck:stalled"]
        assert alert.count == 1
        assert "made no progress for 1s" in alert.detail
        assert "last message: waiting for lock" in alert.detail
        assert "CPU over the stall window" in alert.detail
        await d.recorder.flush()
        lines = [json.loads(x) for x in d.config.alerts_log.read_text().splitlines()]
        assert [x["event"] for x in lines if x["key"] == "stuck:stalled"] == ["raised"]


async def test_progress_resuming_returns_to_running_and_resolves_the_stall(tmp_path):
    async with running(tmp_path, job(tmp_path, "slow", P.STALL_THEN_RESUME, stall_after="500ms")) as d:
        await reach(d, "slow", S.STALLED, timeout=5)
        (d.jobs["slow"].run.run_dir / "go").touch()
        await reach(d, "slow", S.RUNNING)
        assert "slow:stalled" not in d.alerts.active
        await reach(d, "slow", S.SUCCEEDED)
        await d.recorder.flush()
        events = [e.to_state for e in d.history.events(job="slow") if e.kind == "transition"]
        assert events == ["STARTING", "RUNNING", "STALLED", "RUNNING", "VERIFYING", "SUCCEEDED"]


async def test_crashing_service_backs_off_with_growing_delays_then_goes_fatal(tmp_path):
    table = job(tmp_path, "svc", P.CRASH_AT_START, kind="service", backoff_initial="100ms",
                max_restarts=5, restart_window="1m", fatal_retry_every="1h")
    async with running(tmp_path, table) as d:
        await reach(d, "svc", S.FATAL, timeout=15)
        await d.recorder.flush()
        events = d.history.events(job="svc", limit=1000)
        starts = [e.ts for e in events if e.to_state == "STARTING"]
        crashes = [e.ts for e in events if e.to_state == "CRASHED"]
        assert len(starts) == 6  # the first run and max_restarts = 5 restarts
        gaps = [(s - c).total_seconds() for c, s in zip(crashes, starts[1:])]
        assert gaps[0] < 0.1, "first restart is immediate"
        assert gaps[1] < gaps[2] < gaps[3] < gaps[4], f"backoff grows: {gaps}"
        assert 0.08 <= gaps[1] <= 0.2
        job_ = d.jobs["svc"]
        assert "retrying every 1h" in (job_.error or "")
        assert d.alerts.active["svc:crashed"].count == 6
        assert d.alerts.active["svc:fatal"].severity == "critical"


async def test_no_restart_exit_code_goes_straight_to_fatal(tmp_path):
    table = job(tmp_path, "cfg", P.CRASH_AT_START, kind="service", no_restart_exit_codes=[3])
    async with running(tmp_path, table) as d:
        await reach(d, "cfg", S.FATAL)
        assert "exit code 3 is in no_restart_exit_codes" in d.alerts.active["cfg:fatal"].title


async def test_service_restarts_within_100ms_of_its_death(tmp_path):
    async with running(tmp_path, job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")) as d:
        await reach(d, "svc", S.RUNNING)
        first = d.jobs["svc"].run
        os.kill(first.pid, 9)
        await d.wait_until(lambda: d.jobs["svc"].run is not None and d.jobs["svc"].run is not first, 5)
        await d.recorder.flush()
        evs = d.history.events(job="svc")
        died = next(e.ts for e in evs if e.run_id == first.run_id and e.to_state == "FAILED")
        restarted = next(e.ts for e in evs if e.run_id != first.run_id and e.to_state == "STARTING")
        assert (restarted - died).total_seconds() < 0.1
        assert "killed by SIGKILL" in d.alerts.active["svc:exited"].title


async def test_after_chain_starts_when_upstream_succeeded(tmp_path):
    tables = [
        job(tmp_path, "a", P.EXIT_OK),
        job(tmp_path, "b", P.EXIT_OK, after=["a"]),
        job(tmp_path, "c", P.EXIT_OK, after=["b"]),
    ]
    async with running(tmp_path, *tables) as d:
        await reach(d, "c", S.SUCCEEDED)
        a, b, c = (d.jobs[n].last_run for n in "abc")
        assert a.ended_at <= b.started_at and b.ended_at <= c.started_at
        # each ran exactly once: the chain waits for a *new* upstream success
        await d.recorder.flush()
        assert len(d.history.runs(job="c")) == 1


async def test_after_does_not_start_when_upstream_failed(tmp_path):
    tables = [job(tmp_path, "a", P.CRASH_AT_START), job(tmp_path, "b", P.EXIT_OK, after=["a"])]
    async with running(tmp_path, *tables) as d:
        await reach(d, "a", S.CRASHED)
        d.wake()
        await anyio.wait_all_tasks_blocked()
        assert d.jobs["b"].state == S.PENDING
        assert "waiting for a to succeed" in d.jobs["b"].waiting


async def test_schedule_fires_on_the_injected_clock(tmp_path):
    clock = FakeClock(utc(2026, 1, 1, 0, 0, 30))
    async with running(tmp_path, job(tmp_path, "cron", P.EXIT_OK, schedule="* * * * *"), clock=clock) as d:
        assert d.jobs["cron"].next_fire_at == utc(2026, 1, 1, 0, 1, 0)
        assert d.jobs["cron"].state == S.PENDING
        clock.advance(30)
        d.wake()
        await reach(d, "cron", S.SUCCEEDED)
        clock.advance(30)  # 00:01:30: not due
        d.wake()
        await anyio.wait_all_tasks_blocked()
        assert d.jobs["cron"].state == S.SUCCEEDED
        assert d.jobs["cron"].next_fire_at == utc(2026, 1, 1, 0, 2, 0)
        clock.advance(30)
        d.wake()
        await d.wait_until(lambda: d.jobs["cron"].last_started_at == utc(2026, 1, 1, 0, 2, 0), 5)


async def test_stop_kills_the_whole_group_when_children_ignore_sigterm(tmp_path):
    table = job(tmp_path, "stubborn", P.IGNORES_SIGTERM, stop_grace="300ms")
    async with running(tmp_path, table) as d:
        await reach(d, "stubborn", S.RUNNING)
        run = d.jobs["stubborn"].run
        pids = [int(p) for p in (run.run_dir / "pids.txt").read_text().split()]
        reply = d.control("stop", "stubborn")
        assert reply["ok"]
        await reach(d, "stubborn", S.STOPPED, timeout=5)
        assert run.signal == "SIGKILL"
        procs = []
        for pid in pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        _gone, alive = await anyio.to_thread.run_sync(lambda: psutil.wait_procs(procs, timeout=3))
        assert not alive, f"survived SIGKILL of the group: {alive}"


async def test_malformed_heartbeat_is_recorded_and_ignored(tmp_path):
    async with running(tmp_path, job(tmp_path, "bad", P.MALFORMED_THEN_GOOD)) as d:
        await reach(d, "bad", S.SUCCEEDED)
        await d.recorder.flush()
        errs = [e.reason for e in d.history.events(job="bad") if e.kind == "heartbeat_error"]
        assert errs and "malformed heartbeat ignored" in errs[0]


async def test_blocker_is_alerted_in_the_workers_own_words(tmp_path):
    async with running(tmp_path, job(tmp_path, "emu", P.BLOCKS)) as d:
        await reach(d, "emu", S.BLOCKED)
        assert "adb: no devices/emulators found" in d.alerts.active["emu:blocked"].title


async def test_on_stall_kill_fails_the_run(tmp_path):
    table = job(tmp_path, "k", P.BEATS_NO_PROGRESS, stall_after="500ms", on_stall="kill")
    async with running(tmp_path, table) as d:
        await reach(d, "k", S.FAILED, timeout=5)
        assert "killed: no progress for 500ms" in d.jobs["k"].last_run.error
        assert "killed: no progress for 500ms" in d.alerts.active["k:failed"].title
        assert "k:stalled" not in d.alerts.active  # the run is over; the failure alert remains


async def test_on_stall_restart_starts_a_new_run(tmp_path):
    table = job(tmp_path, "r", P.BEATS_NO_PROGRESS, stall_after="500ms", on_stall="restart")
    async with running(tmp_path, table) as d:
        await reach(d, "r", S.STALLED, timeout=5)
        first = d.jobs["r"].run
        await d.wait_until(lambda: d.jobs["r"].run is not None and d.jobs["r"].run is not first, 5)
        assert d.jobs["r"].restarts == 1


async def test_max_runtime_kills_and_fails_a_task(tmp_path):
    table = job(tmp_path, "long", P.BEATS_FOREVER, max_runtime="700ms")
    async with running(tmp_path, table) as d:
        await reach(d, "long", S.FAILED, timeout=5)
        assert "exceeded max_runtime 700ms" in d.jobs["long"].last_run.error
        assert d.alerts.active["long:failed"].count == 1


async def test_output_counts_as_progress_for_uninstrumented_commands(tmp_path):
    table = job(tmp_path, "cli", P.WRITES_OUTPUT, progress_from="output", startup_grace="5s")
    async with running(tmp_path, table) as d:
        await reach(d, "cli", S.SUCCEEDED)
        assert d.jobs["cli"].last_run.progress["output_bytes"] > 0


async def test_exit_0_without_the_promised_proof_is_failed_unproven(tmp_path):
    table = job(tmp_path, "lazy", P.WRITES_PROOF, ', "--no-proof"') + (
        '[[jobs.lazy.proofs]]\npath = "out.json"\nkind = "json"\n'
    )
    good = job(tmp_path, "honest", P.WRITES_PROOF) + '[[jobs.honest.proofs]]\npath = "out.json"\n'
    async with running(tmp_path, table, good) as d:
        await reach(d, "lazy", S.FAILED)
        await reach(d, "honest", S.SUCCEEDED)
        assert d.jobs["lazy"].last_run.error.startswith("unproven: out.json: missing")
        proof = d.jobs["honest"].last_run.proofs[0]
        assert proof.ok and proof.size == 12 and len(proof.sha256) == 64


async def test_status_json_is_valid_and_the_socket_owner_only(tmp_path):
    async with running(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as d:
        await reach(d, "ok", S.SUCCEEDED)
        await d.status.write_now()
        doc = read_status(d.config.status_file)
        assert doc.jobs["ok"].state == S.SUCCEEDED
        assert doc.recent[0].job == "ok"
        assert stat.S_IMODE(d.config.socket_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(d.config.state_dir.stat().st_mode) == 0o700


async def test_shutdown_stops_jobs_and_records_why(tmp_path):
    async with running(tmp_path, job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")) as d:
        await reach(d, "svc", S.RUNNING)
        run = d.jobs["svc"].run
    assert run.state == S.STOPPED
    assert not psutil.pid_exists(run.pid) or psutil.Process(run.pid).status() == psutil.STATUS_ZOMBIE
    h = History(d.config.history_db, create=False)
    assert "test finished" in h.runs(job="svc")[0].error
    h.close()


async def test_not_before_holds_a_boot_job_until_its_date(tmp_path):
    clock = FakeClock(utc(2026, 1, 1, 0, 0, 0))
    table = job(tmp_path, "later", P.EXIT_OK, not_before="2026-01-01T00:10:00Z")
    async with running(tmp_path, table, clock=clock) as d:
        d.wake()
        await anyio.wait_all_tasks_blocked()
        assert d.jobs["later"].state == S.PENDING
        clock.advance(600)
        d.wake()
        await reach(d, "later", S.SUCCEEDED)


async def test_a_second_daemon_on_the_same_state_dir_is_refused(tmp_path):
    from supervisor.config import load_config
    from supervisor.control import ControlError
    from supervisor.daemon import Daemon

    async with running(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as d:
        second = Daemon(load_config(d.config.path))
        try:
            await second.run(handle_signals=False)
        except ControlError as exc:
            assert "another proofwatch daemon is already serving" in str(exc)
        else:
            raise AssertionError("a second daemon started on the same state_dir")



async def test_old_run_directories_are_pruned_to_keep_runs(tmp_path):
    table = job(tmp_path, "svc", P.EXIT_OK, kind="service", backoff_initial="10ms",
                backoff_max="10ms", max_restarts=100)
    async with running(tmp_path, table, supervisor="keep_runs = 3") as d:
        await d.wait_until(lambda: d.jobs["svc"].restarts >= 6, timeout=20)
        d.control("stop", "svc")
        await reach(d, "svc", S.STOPPED)
        newest = d.jobs["svc"].last_run.run_id
    await anyio.wait_all_tasks_blocked()
    left = sorted(p.name for p in (d.config.runs_dir / "svc").iterdir())
    assert len(left) <= 4 and newest in left


async def test_a_task_finishing_before_min_runtime_is_unproven(tmp_path):
    table = job(tmp_path, "quick", P.WRITES_PROOF, min_runtime="5m") + '[[jobs.quick.proofs]]\npath = "out.json"\n'
    async with running(tmp_path, table) as d:
        await reach(d, "quick", S.FAILED)
        error = d.jobs["quick"].last_run.error
        assert error.startswith("unproven: finished in ") and "expected at least 5m (min_runtime)" in error
        assert "quick:unproven" in d.alerts.active


async def test_dependents_of_an_unproven_task_do_not_start(tmp_path):
    lazy = job(tmp_path, "lazy", P.WRITES_PROOF, ', "--no-proof"') + '[[jobs.lazy.proofs]]\npath = "out.json"\n'
    async with running(tmp_path, lazy, job(tmp_path, "next", P.EXIT_OK, after=["lazy"])) as d:
        await reach(d, "lazy", S.FAILED)
        d.wake()
        await anyio.wait_all_tasks_blocked()
        assert d.jobs["next"].state == S.PENDING and d.jobs["next"].last_run is None


async def test_proofs_declared_through_the_sdk_are_verified_with_their_kind(tmp_path):
    body = P.EXIT_OK + '\nimport pathlib, os\np = pathlib.Path(os.environ["PROOFWATCH_RUN_DIR"]) / "shot.png"\n' \
        'p.write_text("not a png")\nrun.proof(p, kind="png")\n'
    async with running(tmp_path, job(tmp_path, "shots", body)) as d:
        await reach(d, "shots", S.FAILED)
        assert "shot.png" in d.jobs["shots"].last_run.error


async def test_acknowledging_a_stall_keeps_it_listed_until_progress_resumes(tmp_path):
    async with running(tmp_path, job(tmp_path, "slow", P.STALL_THEN_RESUME, stall_after="500ms")) as d:
        await reach(d, "slow", S.STALLED, timeout=5)
        reply = d.control("ack", "slow:stalled")
        assert reply == {"ok": True, "message": "alert slow:stalled acknowledged"}
        [status] = [a for a in d.alerts.statuses() if a.key == "slow:stalled"]
        assert status.state == "acknowledged" and status.acknowledged_at is not None
        (d.jobs["slow"].run.run_dir / "go").touch()
        await reach(d, "slow", S.RUNNING)
        assert "slow:stalled" not in d.alerts.active


async def test_shutdown_during_a_slow_verifier_kills_it_and_records_why(tmp_path):
    table = job(tmp_path, "slowproof", P.EXIT_OK) + (
        '[[jobs.slowproof.proofs]]\nkind = "command"\ncommand = ["sleep", "60"]\ntimeout = "90s"\n')
    t0 = None
    async with running(tmp_path, table) as d:
        await reach(d, "slowproof", S.VERIFYING)
        run = d.jobs["slowproof"].run
        t0 = datetime.now(run.started_at.tzinfo)
    took = (datetime.now(run.started_at.tzinfo) - t0).total_seconds()
    assert took < 10, f"shutdown waited {took:.1f}s for the verifier"
    assert run.state == S.STOPPED and "stopped while verifying proofs" in run.error


CHATTY = """
import sys
from workers.sdk import Run
run = Run.from_env()
run.beat({"i": 1}, force=True)
import time
time.sleep(0.6)  # past the first rescans, which check every run's logs once
sys.stdout.write("x" * 5000 + "\\n")
sys.stdout.flush()
run.beat({"i": 2}, force=True)
time.sleep(60)
"""


async def test_a_running_job_whose_output_grows_past_log_max_bytes_is_rotated(tmp_path):
    async with running(tmp_path, job(tmp_path, "chatty", CHATTY, kind="service"),
                       supervisor='log_max_bytes = "1KB"\n') as d:
        await reach(d, "chatty", S.RUNNING)
        run = d.jobs["chatty"].run
        await d.wait_until(lambda: run.progress.get("i") == 2.0, 5)
        # the watcher saw stdout grow; the next rescan (200 ms here) rotates it, well before
        # the every-12th-rescan check of all logs
        await d.wait_until(lambda: run.rotated_bytes > 0, 1.5)
        assert run.stdout_path.stat().st_size <= 1024
        assert (run.run_dir / "stdout.log.1").exists()


PROVES_WHEN_TOLD = """
import os, sys, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
go = Path(sys.argv[1])
i = 0
while True:
    i += 1
    run.beat({"i": i})
    if go.exists():
        (Path(os.environ["PROOFWATCH_DATA_DIR"]) / "manifest.json").write_text('{"count": 3}')
    time.sleep(0.05)
"""


async def test_prove_every_verifies_a_live_service_and_alerts_until_its_proof_holds(tmp_path):
    go = tmp_path / "go"
    table = job(tmp_path, "feed", PROVES_WHEN_TOLD, f', "{go}"', kind="service", prove_every="300ms")
    table += '[[jobs.feed.proofs]]\npath = "data:manifest.json"\nkind = "json"\nrequired_keys = ["count"]\n'
    async with running(tmp_path, table) as d:
        await reach(d, "feed", S.RUNNING)
        await d.wait_until(lambda: "feed:unproven" in d.alerts.active, 5)
        alert = d.alerts.active["feed:unproven"]
        assert alert.title.startswith("feed: running but unproven — data:manifest.json")
        assert d.jobs["feed"].state == S.RUNNING  # a live check never ends the run
        go.touch()
        await d.wait_until(lambda: "feed:unproven" not in d.alerts.active, 5)
        run = d.jobs["feed"].run
        assert run is not None and run.proofs and all(p.ok for p in run.proofs)
        assert d.jobs["feed"].state == S.RUNNING
    rows = History(tmp_path / "var" / "history.db").events(job="feed")
    assert any(e.kind == "proof" and "live proofs failed" in e.reason for e in rows)


async def test_healthy_busy_runs_do_not_wake_the_reconciler_once_each_per_stall_after(tmp_path):
    """A busy run's file is read at its stall deadline, not at every change; a timer wake reads
    every run whose deadline is near (LOOKAHEAD), so ten healthy runs cost about one pass a
    second, not ten (each at its own stale deadline), and a real stall is still flagged."""
    tables = [job(tmp_path, f"busy{i}", P.BEATS_FOREVER, kind="service", stall_after="1s") for i in range(10)]
    tables.append(job(tmp_path, "stuck", P.BEATS_NO_PROGRESS, kind="service", stall_after="1s"))
    async with running(tmp_path, *tables) as d:
        for i in range(10):
            await reach(d, f"busy{i}", JobState.RUNNING)
        await anyio.sleep(1.5)  # every run's first deadline is behind us: the steady pattern
        before = d.turns
        await anyio.sleep(3)  # a window of time, not a synchronisation
        turns = d.turns - before
        await reach(d, "stuck", JobState.STALLED)
        assert all(d.jobs[f"busy{i}"].state == JobState.RUNNING for i in range(10))
    assert turns <= 15, f"{turns} reconciler passes in 3 s for 10 healthy runs with stall_after 1s"
