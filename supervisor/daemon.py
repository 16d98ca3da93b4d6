"""The daemon: one event loop that spawns runs, ingests heartbeats, applies the policies at
their exact deadlines, and records every transition.

Structure: one root task group. A reconciler task owns all job state; it sleeps until the
earliest deadline or until something happens (an exit, a heartbeat, a control command), then
re-evaluates every job. Exits are awaited (pidfd), never polled; heartbeats arrive through
watchfiles, with a periodic rescan as the safety net.
"""

from __future__ import annotations

import logging
import os
import random
import shlex
import signal
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import TaskGroup

from policies.lifecycle import is_allowed
from policies.restart import RestartSettings, decide_restart
from policies.runtime import too_fast
from policies.stall import is_stalled, stall_deadline
from policies.startup import classify_adopted_exit, classify_exit, describe_exit, is_silent, silent_deadline
from policies.triggers import DepRun, after_ready, next_fire, not_before_ok
from status.backend import store_parts, store_target
from status.rows import RowData
from status.models import JobState, RunSummary, Severity, StatusDocument, StoreStatus, SupervisorStatus
from supervisor import adopt, details, heap, intake, procinfo
from supervisor.alerts import STICKY, AlertBook
from supervisor.config import Config, ConfigError, EnvError, load_config, resolve_command, split_dep
from supervisor.control import check_not_running, serve_control
from supervisor.diskfull import DiskWatch
from supervisor.durations import format_duration, parse_duration
from supervisor.exitwatch import ExitWatch
from supervisor.jobenv import job_environment
from supervisor.logs import rotate_if_needed
from supervisor._proof_live import allow_verifiers, interrupt_verifiers
from supervisor.proofs import failure_summary, verify_all
from supervisor.recorder import Recorder
from supervisor.storewatch import StoreWatch, open_history
from supervisor.reload import plan_reload
from supervisor.restore import restore
from supervisor.retention import prune_runs
from supervisor.runs import JobRuntime, RunState, new_run_id
from supervisor.snapshot import build_document, run_summary
from supervisor.spawn import Child, SpawnError, expose_state_dir, give_run_dir, identity_for, spawn
from supervisor.statusrebuild import check_at_start
from supervisor.statuswriter import StatusWriter
from supervisor.watch import watch_runs
from workers.protocol import (
    ENV_DATA_DIR,
    ENV_HEARTBEAT,
    ENV_JOB,
    ENV_RUN_DIR,
    ENV_RUN_ID,
    ENV_SCRATCH,
    HEARTBEAT_FILE,
)

if TYPE_CHECKING:
    from supervisor.api._listen import Listener
    from supervisor.hostwatch import HostWatch
    from supervisor.notifyloop import NotifyLoop

log = logging.getLogger(__name__)
_ROTATE_ALL_EVERY = 12  # rescans between log-size checks of every run, grown or not
LIVE_PROOF_STATES = (JobState.RUNNING, JobState.STALLED, JobState.BLOCKED)

VERSION = "0.1.0"
MAX_SLEEP = 30.0
LOOKAHEAD = timedelta(seconds=1)  # a timer wake also reads the runs whose stall deadline is this close
PIDFILE = adopt.PIDFILE
SCRATCH_DIR = "tmp"  # temp files of heartbeats, outside the watched runs/ tree


class Clock(Protocol):
    """Where the daemon reads the time (tests inject a fake)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class Daemon:
    """The supervisor for one config."""

    def __init__(self, config: Config, *, clock: Clock | None = None, settle_heap: bool = False) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._settle_heap = settle_heap  # the daemon's own process only: gc.freeze() is process-wide
        self.jobs = {name: JobRuntime(name, js) for name, js in config.jobs.items()}
        self.started_at = self.clock.now()
        self.hostname = config.host  # [supervisor] host, default the hostname: its rows' identity
        self.recent: deque[RunSummary] = deque(maxlen=config.supervisor.recent_runs)
        self.shutdown_reason: str | None = None
        self.ready = anyio.Event()
        self.finished = anyio.Event()
        self.spawned = anyio.Event()  # the first reconciler pass (the spawns) is done
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._stop_watch = anyio.Event()
        self._tg: TaskGroup | None = None
        self._orphans: dict[int, datetime] = {}
        self._adopted: list[tuple[JobRuntime, RunState]] = []  # runs taken over at start
        self.reconciled_at: float | None = None  # time.monotonic() of the reconciler's last pass
        self.turns = 0  # the reconciler's passes so far
        self._in_pass = False  # the reconciler is in a pass: pid files are written at its end
        self._pids_due: list[RunState] = []  # runs spawned in this pass, their pid files not yet written
        self._leave_running = False  # set by shutdown(): leave the runs for the next daemon
        self._due: dict[str, datetime] = {}  # job -> when it next needs the reconciler
        self._full_pass = True
        self._runs_prefix = str(config.runs_dir) + os.sep
        self._rng = random.Random()
        self.history: Any  # status.sqlite.SqliteHistory, or status.history.History on a server
        self.offline: str | None = None  # why the shared store could not be reached at start
        self.recorder: Recorder
        self._exits: ExitWatch
        self.alerts: AlertBook
        self.status: StatusWriter
        self.hostwatch: HostWatch | None = None  # made once the first jobs are spawned
        self.notifier: NotifyLoop | None = None
        self.api: Listener | None = None  # the API's sockets (and its TCP url)
        self.fleet: Any = None  # supervisor.fleet.FleetWatch  # with a shared store: reports, stale hosts, remote `after`
        self.changes = 0  # notify_change() calls so far (the API's event streams compare it)

    # ---- lifecycle -----------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run until shut down (SIGTERM/SIGINT or `shutdown()`); stops every job on the way out."""
        cfg = self.config
        check_not_running(cfg.socket_path)
        allow_verifiers()
        for d in (cfg.state_dir, cfg.runs_dir, cfg.state_dir / SCRATCH_DIR):
            d.mkdir(parents=True, exist_ok=True)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)  # before the umask: jobs (users) share it
        os.umask(0o077)  # the daemon's own files are owner-only; jobs get umask 022 (spawn.py)
        os.chmod(cfg.state_dir, 0o700)
        if os.geteuid() == 0 and any(js.user for js in cfg.jobs.values()):
            expose_state_dir(cfg.state_dir, cfg.state_dir / SCRATCH_DIR)  # adopted user jobs reach their runs
        # a shared store unreachable at start: `offline` says why, restore reads status.json instead
        self.history, self.offline = await anyio.to_thread.run_sync(open_history, cfg)
        self.recorder = Recorder(self.history, cfg.alerts_log, on_write=self._write_outcome)
        self.alerts = AlertBook(self.recorder, on_change=self._alerts_changed)
        self.status = StatusWriter(cfg.status_file, self.document, cfg.supervisor.status_min_interval,
                                   on_write=self._write_outcome)
        self.disks = DiskWatch(self.alerts, self.clock, {"state_dir": cfg.state_dir, "data_dir": cfg.data_dir},
                               retry=(self.recorder.retry_now, self.status.retry_now), on_change=self._disk_changed)
        for found in await anyio.to_thread.run_sync(check_at_start, cfg.status_file, self.clock.now()):
            log.warning("%s", found)
            self._event(None, None, "supervisor", found)
        await restore(self, self.offline)
        if cfg.shared_store:
            from supervisor.fleet import FleetWatch  # SQLAlchemy: only with a shared store

            self.fleet = FleetWatch(self)

        self._exits = ExitWatch()  # children's exits, through their pidfds (supervisor/exitwatch.py)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self.recorder.serve)
                tg.start_soon(self.status.serve)
                tg.start_soon(self.disks.serve, cfg.supervisor.rescan_every)
                if cfg.shared_store:  # the `store:unreachable` alert (supervisor/storewatch.py)
                    tg.start_soon(StoreWatch(self).serve)
                if handle_signals:
                    tg.start_soon(self._signals)
                self.api = await tg.start(serve_control, self)  # binding can fail: before any spawn
                tg.start_soon(watch_runs, cfg.runs_dir, self._on_file_change, self._stop_watch)
                tg.start_soon(self._rescan_loop)
                self._event(None, None, "supervisor", f"proofwatch {VERSION} started (pid {os.getpid()})")
                tg.start_soon(self._supervise, tg)  # its first pass (spawns) runs at the next await
                await anyio.lowlevel.checkpoint()  # there: the jobs start before what follows is loaded
                self.spawned.set()  # the API server may load from now on, at its first client (control.py)
                from supervisor import selfwatch  # after the spawns: ~50 ms of imports
                from supervisor.hostwatch import HostWatch
                from supervisor.notifyloop import NotifyLoop

                self.hostwatch = HostWatch(self)
                self.notifier = NotifyLoop(self)
                tg.start_soon(self.hostwatch.serve)
                if self.fleet is not None:
                    tg.start_soon(self.fleet.serve)
                await tg.start(self.notifier.serve)
                await self.status.try_write()  # a full disk is alerted and retried, not fatal
                self.ready.set()
                self.settle_heap("started")
                tg.start_soon(selfwatch.serve, self)
        finally:
            self._exits.close()  # runs left running (on_exit = "leave"): the next daemon adopts them
        self.history.close()
        self.finished.set()

    async def _supervise(self, tg: TaskGroup) -> None:
        """The reconciler until shutdown; then the last writes, and the end of the daemon."""
        await self._reconcile_loop()
        await self.recorder.flush()  # returns at once while writes fail; serve() tries once more
        if self.fleet is not None:
            await self.fleet.stopped(leaving=self._leave_running)  # the last report: not stale
        await self.status.try_write()
        self._stop_watch.set()
        tg.cancel_scope.cancel()

    def shutdown(self, reason: str, *, leave_running: bool | None = None) -> None:
        """Stop every job and exit the run loop; with `leave_running` (default: the config's
        on_exit = "leave") exit at once and leave the jobs to the next daemon to re-adopt."""
        if self.shutdown_reason is None:
            self._leave_running = (self.config.supervisor.on_exit == "leave" if leave_running is None
                                   else leave_running)
            self.shutdown_reason = reason
            log.info("shutting down: %s", reason)
            self.wake()

    def settle_heap(self, why: str, *, again: bool = False) -> None:
        """Freeze the long-lived heap out of the garbage collector's way (supervisor/heap.py);
        only in the daemon's own process (`settle_heap=True`, as `proofwatch run` makes it)."""
        if not self._settle_heap:
            return
        frozen, ms = heap.resettle() if again else heap.settle()
        log.info("heap settled (%s): %d objects frozen out of the garbage collector's way in %.0f ms",
                 why, frozen, ms)

    def _alerts_changed(self) -> None:
        if self.notifier is not None:
            self.notifier.poke()

    def wake(self) -> None:
        """Re-evaluate every job now."""
        self._full_pass = True
        self._wake.set()

    def notify_change(self) -> None:
        """Wake whoever waits in `wait_until` (state, heartbeat, alert or delivery changes)."""
        self.changes += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (event-driven, no polling) until `predicate()` holds after some change;
        TimeoutError after `timeout` seconds."""
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            async for signum in sigs:
                if signum == signal.SIGHUP:
                    self.reload()
                    continue
                self.shutdown(f"supervisor received {signal.Signals(signum).name}")

    # ---- the reconciler ------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        """Reconcile every job after `wake()` (a state change, a control command, a clock
        step); on a timer, only the jobs whose own deadline has come. Each job's next
        deadline is cached, so N quiet jobs cost nothing per wake-up of one."""
        assert self._tg is not None
        for job, run in self._adopted:  # runs taken over at start: await their end or proofs
            if run.finishing:
                self._tg.start_soon(self._verify, job, run)
            elif not run.exited:
                self._watch_exit(job, run)  # (an ended one: the first pass)
        self._adopted.clear()
        while True:
            self._wake = anyio.Event()
            now = self.clock.now()
            self.reconciled_at = time.monotonic()  # the watchdog's proof that this loop turns
            self.turns += 1
            if self.shutdown_reason and self._leave_running:
                left = [job.run for job in self.jobs.values() if job.run is not None]
                for run in left:
                    if isinstance(run.child, Child):
                        adopt.release(run.child.popen)
                if any(run.state == JobState.VERIFYING for run in left) and interrupt_verifiers():
                    log.warning("verifier programs killed: the next proofwatch verifies those runs again")
                self._event(None, None, "supervisor",
                            f"exiting ({self.shutdown_reason}) with {len(left)} run(s) left running "
                            "(on_exit = \"leave\"): the next proofwatch re-adopts them")
                return
            if self._full_pass:
                self._full_pass = False
                self._due.clear()
                jobs = list(self.jobs.values())
            else:
                jobs = [self.jobs[name] for name, at in list(self._due.items())
                        if at <= now and name in self.jobs]
                self._read_ahead(now)
            self._in_pass = True
            for job in jobs:
                if self.shutdown_reason and job.run is not None and not job.run.stop_reason:
                    if job.run.state == JobState.VERIFYING:
                        job.run.stop_reason, job.run.stop_state = self.shutdown_reason, JobState.STOPPED
                        if interrupt_verifiers():
                            log.warning("verifier programs killed: %s", self.shutdown_reason)
                    self.stop_run(job, self.shutdown_reason, JobState.STOPPED)
                try:
                    self._reconcile(job, now)
                except Exception:  # one job's bug must not stop the others
                    log.exception("job=%s reconcile failed; will retry", job.name)
                at = self._job_deadline(job, now)
                if at is None:
                    self._due.pop(job.name, None)
                else:
                    self._due[job.name] = at
            self._in_pass = False
            self._write_pids()
            self._reap_orphans(now)
            if self.shutdown_reason and not any(j.run for j in self.jobs.values()):
                return
            delay = self._next_delay(now)
            with anyio.move_on_after(delay):
                await self._wake.wait()

    def _read_ahead(self, now: datetime) -> None:
        """Read the running runs whose stall deadline comes within LOOKAHEAD, and move each
        deadline their progress moved. A busy run's file is read only at its deadline (see
        _on_file_change), so without this every healthy run would wake the loop once per
        stall_after, each at its own instant; with it, one wake a second serves them all. A
        deadline is still judged only when it has passed."""
        soon = now + LOOKAHEAD
        for name, at in list(self._due.items()):
            job = self.jobs.get(name)
            if job is None or not now < at <= soon:
                continue
            run = job.run
            if run is None or run.state != JobState.RUNNING or run.exited or run.stop_reason:
                continue
            self._ingest(job, run, now)
            moved = self._job_deadline(job, now)
            if moved is not None:
                self._due[name] = moved

    def _next_delay(self, now: datetime) -> float:
        times = [*self._orphans.values(), *self._due.values()]
        if not times:
            return MAX_SLEEP
        return min(MAX_SLEEP, max(0.0, (min(times) - now).total_seconds()))

    def _job_deadline(self, job: JobRuntime, now: datetime) -> datetime | None:
        """When this job next needs the reconciler, were nothing else to happen."""
        times: list[datetime] = []
        js, run = job.settings, job.run
        if run is not None:
            if run.exited or run.finishing:
                return None
            if run.kill_at:
                times.append(run.kill_at)
            if run.stop_reason:
                return min(times, default=None)
            if run.state == JobState.STARTING:
                times.append(silent_deadline(run.started_at, js.startup_grace))
            if run.state == JobState.RUNNING and run.last_progress_at:
                times.append(stall_deadline(run.last_progress_at, js.stall_after))
            if js.max_runtime:
                times.append(run.started_at + timedelta(seconds=js.max_runtime))
            if js.prove_every and not run.proving and run.state in LIVE_PROOF_STATES:
                times.append(self._next_proof_at(run, js.prove_every))
        elif not self.shutdown_reason and not job.held:
            times.extend(t for t in (job.next_start_at, job.next_fire_at) if t)
            if js.not_before and js.not_before > now:
                times.append(js.not_before)
        return min(times, default=None)

    def _reconcile(self, job: JobRuntime, now: datetime) -> None:
        run = job.run
        if run is not None:
            if run.exited and not run.finishing:
                self._on_exit(job, run, now)
            elif not run.exited:
                self._check_live(job, run, now)
            return
        if self.shutdown_reason or job.held:
            return
        self._maybe_start(job, now)

    def _maybe_start(self, job: JobRuntime, now: datetime) -> None:
        js = job.settings
        if js.schedule and job.next_fire_at and now >= job.next_fire_at:
            job.next_fire_at = next_fire(js.schedule, now)
            if not_before_ok(js.not_before, now):
                self._start(job, now, "schedule " + js.schedule)
                return
        if not not_before_ok(js.not_before, now):
            return
        if job.next_start_at and now >= job.next_start_at:
            reason = job.next_start_reason
            job.next_start_at = None
            self._start(job, now, reason)
        elif job.boot_pending:
            job.boot_pending = False
            self._start(job, now, "start = boot")
        elif js.after:
            ready, why = after_ready(self._deps(job), job.last_started_at)
            if not ready and self.fleet is not None:
                why = self.fleet.explain(job.settings.after, why)  # e.g. "emubox has no job biuld"
            if ready:
                self._start(job, now, why)
            elif why != job.waiting:
                job.waiting = why
                self.status.changed()

    def _deps(self, job: JobRuntime) -> dict[str, DepRun | None]:
        out: dict[str, DepRun | None] = {}
        for entry in job.settings.after:
            name, host = split_dep(entry, self.hostname)
            if host is not None:  # a job on another host: its latest run in the shared history
                out[entry] = self.fleet.remote_dep(name, host, job.name) if self.fleet is not None else None
                continue
            dep = self.jobs.get(name)
            last = dep.last_run if dep else None
            if dep is None:
                out[name] = None
            elif dep.run is not None:
                out[name] = DepRun(dep.state, None)
            elif last is not None:
                out[name] = DepRun(last.state, last.ended_at)
            elif dep.prior is not None:
                out[name] = dep.prior
            else:
                out[name] = None
        return out

    def _why_pending(self, job: JobRuntime) -> str:
        js = job.settings
        if js.starts_at_boot:
            return "starting at boot"
        if js.schedule:
            return f"scheduled: {js.schedule}"
        if js.after:
            return "waiting for " + ", ".join(js.after)
        return "manual start (proofwatch start " + job.name + ")"

    # ---- live runs -----------------------------------------------------------------------

    def _check_live(self, job: JobRuntime, run: RunState, now: datetime) -> None:
        js = job.settings
        if run.kill_at and now >= run.kill_at and run.pid:
            log.warning(
                "job=%s run=%s did not stop within stop_grace %s; sending SIGKILL to its group "
                "(make it exit on SIGTERM, or raise stop_grace)",
                job.name, run.run_id, format_duration(js.stop_grace),
            )
            self._event(job.name, run.run_id, "control",
                        f"SIGKILL to process group {run.pid}: still alive {format_duration(js.stop_grace)} after SIGTERM")
            procinfo.signal_group(run.pid, signal.SIGKILL)
            run.kill_at = None
            return
        if run.stop_reason:
            return
        if js.max_runtime and now >= run.started_at + timedelta(seconds=js.max_runtime):
            self.stop_run(job, f"exceeded max_runtime {format_duration(js.max_runtime)}", JobState.FAILED)
            return
        if run.state == JobState.STARTING and is_silent(run.started_at, run.first_beat_at, js.startup_grace, now):
            self._ingest(job, run, now)
            if run.first_beat_at is None:
                self._to_silent(job, run, now)
            return
        if run.state == JobState.RUNNING and is_stalled(run.last_progress_at, js.stall_after, now):
            self._ingest(job, run, now)  # a heartbeat may be in flight: read the file itself
            if run.state == JobState.RUNNING and is_stalled(run.last_progress_at, js.stall_after, now):
                self._to_stalled(job, run, now)
        if (js.prove_every and not run.proving and run.state in LIVE_PROOF_STATES
                and now >= self._next_proof_at(run, js.prove_every)):
            run.proving = True
            assert self._tg is not None
            self._tg.start_soon(self._prove_live, job, run)

    @staticmethod
    def _next_proof_at(run: RunState, every: float) -> datetime:
        return run.next_proof_at or run.started_at + timedelta(seconds=every)

    async def _prove_live(self, job: JobRuntime, run: RunState) -> None:
        """prove_every: verify a live run's proofs (a service's manifest, say) without ending
        it; a failure raises `unproven`, a later success resolves it."""
        js = job.settings
        try:
            proofs = await anyio.to_thread.run_sync(
                partial(verify_all, js.proofs, run.declared_proofs, run.run_dir, self.config.data_dir,
                        run.started_at, config_dir=self.config.base_dir,
                        environ=job_environment(self.config, job.name, os.environ)))
        except Exception as exc:
            log.exception("job=%s run=%s live proof verification crashed", job.name, run.run_id)
            proofs, crashed = [], f"verification crashed: {exc}"
        else:
            crashed = None
        finally:
            run.proving = False
        now = self.clock.now()
        run.next_proof_at = now + timedelta(seconds=js.prove_every or 0)
        if job.run is not run or run.exited:
            return  # the run ended meanwhile; its end verifies again
        run.proofs = proofs
        problem = crashed or (failure_summary(proofs) or "").removeprefix("unproven: ")
        self.recorder.run(self._run_row(run))
        if problem:
            failed = [p for p in proofs if not p.ok]
            first = f"{failed[0].path}: {failed[0].detail.splitlines()[0]}" if failed else problem
            self._event(job.name, run.run_id, "proof", f"live proofs failed: {problem}")
            self.alerts.fire(job.name, "unproven", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                             title=f"{job.name}: running but unproven — {first}",
                             detail="\n".join([f"run {run.run_id} in {run.run_dir}", problem,
                                               *(f"{p.path}: {p.detail}" for p in failed)]))
        else:
            self.alerts.resolve(f"{job.name}:unproven", now, f"{len(proofs)} proofs verified while running")
        self.status.changed()
        self.notify_change()
        self.wake()

    def _to_silent(self, job: JobRuntime, run: RunState, now: datetime) -> None:
        grace = job.settings.startup_grace
        self._transition(job, run, JobState.SILENT, f"no heartbeat within startup_grace {format_duration(grace)}")
        self.alerts.fire(job.name, "silent", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                         title=f"{job.name}: silent — no heartbeat {format_duration(grace)} after start",
                         detail=details.silent_detail(run, grace, procinfo.describe_process(run.pid or 0), now))

    def _to_stalled(self, job: JobRuntime, run: RunState, now: datetime) -> None:
        js = job.settings
        assert run.last_progress_at is not None
        cpu = details.cpu_from_samples(run, run.last_progress_at)
        proc = procinfo.describe_process(run.pid or 0)
        self._transition(job, run, JobState.STALLED,
                         f"no progress for {format_duration(js.stall_after)} (stall_after)")
        self.alerts.fire(job.name, "stalled", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                         title=f"{job.name}: stalled — no progress for {format_duration(js.stall_after)}",
                         detail=details.stall_detail(run, js.stall_after, proc, cpu, now))
        if js.on_stall == "kill":
            self.stop_run(job, f"killed: no progress for {format_duration(js.stall_after)}", JobState.FAILED)
        elif js.on_stall == "restart":
            self.stop_run(job, f"restarting: no progress for {format_duration(js.stall_after)}",
                          JobState.FAILED, restart=True)

    def _ingest(self, job: JobRuntime, run: RunState, now: datetime) -> None:
        """Read the run's reports and apply what they mean."""
        if run.exited or run.finishing:
            return
        since = run.first_seen_at or run.read_at
        run.read_at = now
        got = intake.read_heartbeat(run, now, since=since)
        run.first_seen_at = None
        if got.error:
            self._event(job.name, run.run_id, "heartbeat_error", got.error)
            log.warning("job=%s run=%s %s", job.name, run.run_id, got.error)
        if job.settings.progress_from == "output":
            out = intake.read_output(run, now)
            got = intake.Intake(beat=got.beat or out.beat, progressed=got.progressed or out.progressed,
                                blocker_changed=got.blocker_changed)
        if not got.beat:
            return
        self.status.changed()
        self.notify_change()
        if run.stop_reason:
            return
        if run.blocker:
            if run.state != JobState.BLOCKED or got.blocker_changed:
                if run.state != JobState.BLOCKED:
                    self._transition(job, run, JobState.BLOCKED, f"worker reported a blocker: {run.blocker}")
                self.alerts.fire(job.name, "blocked", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                                 title=f"{job.name}: blocked — {run.blocker}",
                                 detail=f"run {run.run_id} reports it cannot go on:\n  {run.blocker}\n"
                                        f"last message: {run.message or '(none)'}")
            return
        if run.state in (JobState.STARTING, JobState.SILENT):
            self._transition(job, run, JobState.RUNNING, "first heartbeat")
            self.alerts.resolve(f"{job.name}:silent", now, "the run sent its first heartbeat")
        elif run.state == JobState.BLOCKED:
            self._transition(job, run, JobState.RUNNING, "blocker cleared")
            self.alerts.resolve(f"{job.name}:blocked", now, "the worker cleared its blocker")
        elif run.state == JobState.STALLED and got.progressed:
            self._transition(job, run, JobState.RUNNING, "progress resumed")
            self.alerts.resolve(f"{job.name}:stalled", now, "progress resumed")
        # Progress only moves the stall deadline later: the reconciler wakes at the old one,
        # finds no stall, and sleeps until the new one. No wake-up per heartbeat; state
        # changes wake it through _transition.

    def _on_file_change(self, path: str) -> None:
        """A file under runs/ changed (from the watcher; hot: string ops, no pathlib)."""
        if not path.startswith(self._runs_prefix):
            return
        parts = path[len(self._runs_prefix):].split(os.sep)
        if len(parts) != 3:
            return
        job_name, run_id, name = parts
        job = self.jobs.get(job_name)
        if job is None or job.run is None or job.run.run_id != run_id:
            return
        run, now = job.run, self.clock.now()
        if name != HEARTBEAT_FILE:
            run.output_grew = True  # the next rescan checks its logs for rotation
            if job.settings.progress_from == "heartbeat":
                return  # output of a heartbeating job: not a report
        if run.state == JobState.RUNNING and run.read_at is not None and (
            (now - run.read_at).total_seconds() < self.config.supervisor.rescan_every
        ):
            # A busy, healthy run: its file changed, which proves liveness. Read it at the
            # next rescan (or at its stall deadline), so a 10 Hz beater costs 0.5 reads/s.
            run.last_beat_at = now
            run.first_seen_at = run.first_seen_at or now
            return
        self._ingest(job, run, now)

    async def _rescan_loop(self) -> None:
        """Safety net for missed file events; also log rotation. (CPU per run is sampled by
        the host watch, from the one process-table scan it makes anyway.)"""
        sup = self.config.supervisor
        rounds = 0
        while True:
            await anyio.sleep(sup.rescan_every)
            rounds += 1
            now = self.clock.now()
            runs = [j.run for j in self.jobs.values() if j.run and not j.run.exited]
            for run in runs:
                self._ingest(self.jobs[run.job], run, now)
            self._note_stable(now)
            if not self.config.status_file.exists():
                log.warning("%s was removed; writing it again", self.config.status_file)
                self.status.changed(urgent=True)

            # logs whose growth the watcher saw; every run's now and then, in case it missed some
            grown = runs if rounds % _ROTATE_ALL_EVERY == 0 else [r for r in runs if r.output_grew]
            for run in grown:
                run.output_grew = False

            def housekeeping() -> list[tuple[RunState, int]]:
                return [(run, sum(rotate_if_needed(p, sup.log_max_bytes, sup.log_backups)
                                  for p in (run.stdout_path, run.stderr_path))) for run in grown]

            for run, moved in await anyio.to_thread.run_sync(housekeeping):
                if moved:
                    run.rotated_bytes += moved
                    self.notify_change()

    def _note_stable(self, now: datetime) -> None:
        for job in self.jobs.values():
            run = job.run
            if run is None or run.stable_noted or job.settings.kind != "service":
                continue
            if run.state == JobState.RUNNING and (now - run.started_at).total_seconds() >= job.settings.stable_after:
                run.stable_noted = True
                job.consecutive = 0
                self.alerts.resolve_job(job.name, ("crashed", "exited", "fatal", "silent"), now,
                                        f"running stably for {format_duration(job.settings.stable_after)}")
                self.status.changed()

    # ---- starting, stopping, ending ------------------------------------------------------

    def _start(self, job: JobRuntime, now: datetime, reason: str) -> RunState | None:
        js = job.settings
        run_id = new_run_id(now)
        cfg = self.config
        run_dir = cfg.runs_dir / job.name / run_id
        try:
            run_dir.mkdir(mode=0o700)
        except FileNotFoundError:  # the job's first run (or its dir was deleted meanwhile)
            run_dir.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            run_dir.mkdir(mode=0o700)
        run = RunState(job.name, run_id, js.kind, run_dir, now)
        job.run, job.last_started_at, job.next_start_at, job.error, job.waiting = run, now, None, None, ""
        scratch = cfg.state_dir / SCRATCH_DIR
        try:
            env = job_environment(cfg, job.name, os.environ)  # without the daemon's secrets
            run_as = identity_for(job.name, js.user, js.allow_root or cfg.supervisor.allow_root)
            if run_as is not None:
                scratch = give_run_dir(run_as, cfg.state_dir, run_dir, scratch)
                env.update(run_as.env())
        except (EnvError, SpawnError) as exc:
            self._spawn_failed(job, run, now, str(exc), reason)
            return None
        env.update({ENV_JOB: job.name, ENV_RUN_ID: run_id, ENV_RUN_DIR: str(run_dir),
                    ENV_HEARTBEAT: str(run.heartbeat_path), ENV_DATA_DIR: str(cfg.data_dir),
                    ENV_SCRATCH: str(scratch)})
        try:
            child = spawn(resolve_command(js.command), cwd=cfg.job_cwd(job.name), env=env,
                          stdout=run.stdout_path, stderr=run.stderr_path, run_as=run_as)
        except SpawnError as exc:
            self._spawn_failed(job, run, now, str(exc), reason)
            return None
        run.child, run.pid, run.command = child, child.pid, shlex.join(child.popen.args)
        self._pids_due.append(run)
        if not self._in_pass:
            self._write_pids()
        self._transition(job, run, JobState.STARTING, f"{reason}; pid {child.pid}")
        self._watch_exit(job, run)
        return run

    def _write_pids(self) -> None:
        """Each new run's pid file ("PID CREATE_TIME"), so a later daemon finds and re-adopts it
        even if this one dies before the history has the run. A pass that spawns many jobs
        writes them after the last spawn: reading a child's create time right after its spawn
        waits for its exec (~0.5 ms a job, a quarter of a spawn), read afterwards it costs
        nothing. A daemon killed in between leaves those runs to the environment scan
        (adopt.py), like a pid file that a full disk refused."""
        due, self._pids_due = self._pids_due, []
        for run in due:
            if run.pid is None or run.pid_created is not None:
                continue
            run.pid_created = adopt.create_time(run.pid)
            try:
                adopt.write_pidfile(run.run_dir / PIDFILE, adopt.pidfile_text(run.pid, run.pid_created))
            except OSError as exc:  # a full disk: the run goes on (a later daemon finds it by its environment)
                log.warning("job=%s run=%s cannot write its pid file: %s", run.job, run.run_id, exc)
            if run.pid_created is not None:
                self.recorder.run(self._run_row(run))  # the history has the create time too

    def _spawn_failed(self, job: JobRuntime, run: RunState, now: datetime, error: str, reason: str) -> None:
        run.exited, run.ended_at, run.error = True, now, error
        self._transition(job, run, JobState.STARTING, reason)
        run.finishing = True
        self._finish(job, run, JobState.CRASHED, f"could not start: {error}", now)

    def _watch_exit(self, job: JobRuntime, run: RunState) -> None:
        """Have the end of a run's leader (spawned or adopted) reach `_exited`: through its
        pidfd in the event loop (supervisor/exitwatch.py), or a task where it has none."""
        assert run.child is not None and self._tg is not None
        if not self._exits.watch(run.child, partial(self._exited, job, run)):
            self._tg.start_soon(self._await_exit, job, run)

    async def _await_exit(self, job: JobRuntime, run: RunState) -> None:
        """A run's leader without a pidfd (a kernel before 5.3): a task waits for its end."""
        assert run.child is not None
        self._exited(job, run, await run.child.wait())  # None: an adopted process, whose status went elsewhere

    def _exited(self, job: JobRuntime, run: RunState, code: int | None) -> None:
        """A run's leader has exited (and was reaped, if it was ours): judged at the next pass."""
        now = self.clock.now()
        run.exited, run.ended_at = True, now
        run.signal = procinfo.signal_name(code)
        run.exit_code = code if code is not None and code >= 0 else None
        try:
            self._ingest_final(job, run, now)
        finally:
            self.wake()

    def _ingest_final(self, job: JobRuntime, run: RunState, now: datetime) -> None:
        """Read the last heartbeat/output a run left before its exit is judged."""
        got = intake.read_heartbeat(run, now)
        if job.settings.progress_from == "output":
            intake.read_output(run, now)
        if got.error:
            self._event(job.name, run.run_id, "heartbeat_error", got.error)

    def stop_run(self, job: JobRuntime, reason: str, final: JobState, *, restart: bool = False) -> None:
        """SIGTERM the run's process group; SIGKILL after stop_grace."""
        run = job.run
        if run is None or run.exited or run.stop_reason:
            return
        run.stop_reason, run.stop_state, run.restart_after = reason, final, restart
        now = self.clock.now()
        run.kill_at = now + timedelta(seconds=job.settings.stop_grace)
        self._event(job.name, run.run_id, "control", f"SIGTERM to process group {run.pid}: {reason}")
        if run.pid:
            procinfo.signal_group(run.pid, signal.SIGTERM)
        self.wake()

    def _on_exit(self, job: JobRuntime, run: RunState, now: datetime) -> None:
        run.finishing = True
        if run.pid and procinfo.group_alive(run.pid):
            procinfo.signal_group(run.pid, signal.SIGTERM)
            self._orphans[run.pid] = now + timedelta(seconds=job.settings.stop_grace)
            self._event(job.name, run.run_id, "control",
                        f"the run's leader exited but its process group {run.pid} lives on: SIGTERM, "
                        f"SIGKILL in {format_duration(job.settings.stop_grace)}")
        how = describe_exit(run.exit_code, run.signal)
        if run.stop_reason and run.stop_state:
            self._finish(job, run, run.stop_state, f"{run.stop_reason} ({how})", now)
            return
        if run.adopted and run.exit_code is None and run.signal is None:
            outcome = classify_adopted_exit(job.settings.kind, run.first_beat_at is not None,
                                            unseen=run.ended_unseen)
        else:
            outcome = classify_exit(job.settings.kind, run.first_beat_at is not None, run.exit_code, run.signal)
        if outcome.state != JobState.VERIFYING:
            self._finish(job, run, outcome.state, outcome.reason, now)
            return
        self._transition(job, run, JobState.VERIFYING, outcome.reason)
        assert self._tg is not None
        self._tg.start_soon(self._verify, job, run)

    async def _verify(self, job: JobRuntime, run: RunState) -> None:
        js = job.settings
        try:
            proofs = await anyio.to_thread.run_sync(
                partial(verify_all, js.proofs, run.declared_proofs, run.run_dir, self.config.data_dir,
                        run.started_at, config_dir=self.config.base_dir,
                        environ=job_environment(self.config, job.name, os.environ))
            )
        except Exception as exc:  # a verifier bug is a failed proof, not a daemon crash
            log.exception("job=%s run=%s proof verification crashed", job.name, run.run_id)
            self._finish(job, run, JobState.FAILED, f"unproven: verification crashed: {exc}", self.clock.now())
            return
        run.proofs = proofs
        now = self.clock.now()
        if run.stop_reason and run.stop_state == JobState.STOPPED:
            self._finish(job, run, JobState.STOPPED, f"stopped while verifying proofs: {run.stop_reason}", now)
            return
        problems = [p.removeprefix("unproven: ") for p in (
            too_fast(((run.ended_at or now) - run.started_at).total_seconds(), js.min_runtime),
            failure_summary(proofs),
        ) if p]
        if not proofs and run.adopted and run.exit_code is None:
            problems.append(("it ended while the supervisor was down" if run.ended_unseen else
                             "its exit status is unknown (adopted after a supervisor restart)")
                            + " and it declares no proofs, so nothing shows it did its work")
        if problems:
            self._finish(job, run, JobState.FAILED, "unproven: " + "; ".join(problems), now)
        else:
            n = len(proofs)
            self._finish(job, run, JobState.SUCCEEDED,
                         f"exit 0 and {n} proof{'s' if n != 1 else ''} verified" if n else "exit 0 (no proofs declared)",
                         now)
        self.wake()

    def _finish(self, job: JobRuntime, run: RunState, state: JobState, reason: str, now: datetime) -> None:
        """Record a run's final state, alert, and decide what comes next."""
        run.ended_at = run.ended_at or now
        if state != JobState.SUCCEEDED:
            run.error = reason
        self._transition(job, run, state, reason)
        job.run, job.last_run = None, run
        self.recent.appendleft(run_summary(run))
        if job.removed:
            self.jobs.pop(job.name, None)
        self._alert_on_end(job, run, state, reason, now)
        self._prune(job)
        if state == JobState.SUCCEEDED:
            job.last_success_at = run.ended_at
        if self.shutdown_reason:
            return
        if run.restart_after and state == JobState.STOPPED:  # the operator asked: at once
            job.restarts += 1
            self._start(job, now, "restarted by the operator")
        elif run.restart_after or (job.settings.kind == "service" and state != JobState.STOPPED):
            # a service that ended, or any run restarted for stalling: backoff, budget, FATAL
            self._plan_restart(job, run, now)
        else:
            job.waiting = self._why_pending(job) if state == JobState.STOPPED else ""
        self.wake()

    def _alert_on_end(self, job: JobRuntime, run: RunState, state: JobState, reason: str, now: datetime) -> None:
        name = job.name
        if state == JobState.SUCCEEDED:
            self.alerts.resolve_job(name, (*STICKY, "stalled", "blocked"), now, f"run {run.run_id} succeeded")
            return
        self.alerts.resolve_job(name, ("stalled", "blocked"), now, f"run {run.run_id} ended: {state.value}")
        if state == JobState.STOPPED:
            self.alerts.resolve(f"{name}:silent", now, f"run {run.run_id} was stopped")
            return
        how = describe_exit(run.exit_code, run.signal)
        if state == JobState.CRASHED:
            self.alerts.fire(name, "crashed", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                             title=f"{name}: crashed — {reason}", detail=details.exit_detail(run, how, now))
        elif reason.startswith("unproven"):
            failed = [p for p in run.proofs if not p.ok]
            first = (f"{failed[0].path}: {failed[0].detail.splitlines()[0]}" if failed
                     else reason.removeprefix("unproven: "))
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            self.alerts.fire(name, "unproven", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                             title=f"{name}: exit 0 but unproven — {first}{more}",
                             detail="\n".join([f"run {run.run_id} in {run.run_dir}", reason,
                                                *(f"{p.path}: {p.detail}" for p in failed)]))
        elif job.settings.kind == "service" and not run.stop_reason:
            self.alerts.fire(name, "exited", severity=Severity.WARNING, run_id=run.run_id, now=now,
                             title=f"{name}: {reason}", detail=details.exit_detail(run, how, now))
        else:  # a task that failed, or a run the daemon killed (stall, max_runtime)
            self.alerts.fire(name, "failed", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                             title=f"{name}: failed — {reason}", detail=details.exit_detail(run, how, now))

    def _plan_restart(self, job: JobRuntime, run: RunState, now: datetime) -> None:
        js = job.settings
        decision = decide_restart(
            RestartSettings(js.backoff_initial, js.backoff_max, js.stable_after, js.max_restarts,
                            js.restart_window, js.fatal_retry_every, tuple(js.no_restart_exit_codes)),
            exit_code=run.exit_code,
            ran_for=((run.ended_at or now) - run.started_at).total_seconds(),
            consecutive_before=job.consecutive,
            recent_restarts=list(job.restart_times),
            now=now,
            jitter=self._rng.random(),
        )
        job.consecutive = decision.consecutive
        job.add_restart(now)
        if decision.action == "fatal":
            retry = now + timedelta(seconds=decision.delay)
            job.next_start_at, job.next_start_reason = retry, "FATAL retry"
            job.error = (f"FATAL: {decision.reason}; retrying every {format_duration(js.fatal_retry_every)} "
                         f"(next at {retry.isoformat(timespec='seconds')})")
            self._set_job_state(job, JobState.FATAL, decision.reason, run.run_id)
            self.alerts.fire(job.name, "fatal", severity=Severity.CRITICAL, run_id=run.run_id, now=now,
                             title=f"{job.name}: FATAL — {decision.reason}",
                             detail=f"{job.error}\nlast exit: {run.error}\n" + details.stderr_block(run))
        elif decision.delay <= 0:
            self._start(job, now, f"restart after {describe_exit(run.exit_code, run.signal)}")
        else:
            job.next_start_at = now + timedelta(seconds=decision.delay)
            job.next_start_reason = f"backoff {decision.delay:.1f}s elapsed"
            self._set_job_state(job, JobState.BACKOFF,
                                f"{decision.reason}: next start in {decision.delay:.1f}s", run.run_id)

    def _prune(self, job: JobRuntime) -> None:
        """Keep the newest keep_runs run directories of a job (off the event loop)."""
        assert self._tg is not None
        protect = {r.run_id for r in (job.run, job.last_run) if r is not None}
        self._tg.start_soon(anyio.to_thread.run_sync, prune_runs, self.config.runs_dir / job.name,
                            self.config.supervisor.keep_runs, protect)

    def _reap_orphans(self, now: datetime) -> None:
        for pgid, kill_at in list(self._orphans.items()):
            if not procinfo.group_alive(pgid):
                del self._orphans[pgid]
            elif now >= kill_at:
                log.warning("process group %d ignored SIGTERM; SIGKILL", pgid)
                procinfo.signal_group(pgid, signal.SIGKILL)
                del self._orphans[pgid]

    def reload(self) -> dict[str, Any]:
        """Re-read the config file; on any error keep the last good config and say why."""
        now = self.clock.now()
        try:
            new = load_config(self.config.path)
        except ConfigError as exc:
            log.error("config reload failed; keeping the last good config:\n%s", exc)
            self._event(None, None, "supervisor", f"config reload failed, last good config kept: {exc}")
            return {"ok": False, "error": f"{exc}\n(the daemon keeps running on the last good config)"}
        plan = plan_reload(self.config, new)
        if plan.refused:
            self._event(None, None, "supervisor", f"config reload refused: {plan.refused}")
            return {"ok": False, "error": plan.refused}
        self.config = new
        for name in plan.added:
            job = self.jobs[name] = JobRuntime(name, new.jobs[name])
            job.boot_pending = job.settings.starts_at_boot
            job.waiting = self._why_pending(job)
        for name in plan.changed:
            job = self.jobs[name]
            job.settings = new.jobs[name]
            job.next_fire_at = next_fire(job.settings.schedule, now) if job.settings.schedule else None
            job.waiting = self._why_pending(job) if job.run is None else job.waiting
        for name in plan.removed:
            job = self.jobs[name]
            job.removed = True
            if job.run is not None:
                self.stop_run(job, "removed from the config", JobState.STOPPED)
            else:
                del self.jobs[name]
        self._event(None, None, "supervisor", f"config reloaded: {plan.summary()}")
        log.info("config reloaded: %s", plan.summary())
        self.settle_heap("config reloaded", again=True)
        self.status.changed(urgent=True)
        self.wake()
        return {"ok": True, "message": f"config reloaded: {plan.summary()}"}

    # ---- control (from the socket) -------------------------------------------------------

    async def control_async(self, cmd: str, arg: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        """Operator commands that need to await (silences); the rest go to `control`."""
        if cmd not in ("silence", "unsilence"):
            return self.control(cmd, arg)
        if not arg:
            return {"ok": False, "error": "name a job or an alert key to silence"}
        if self.notifier is None:
            return {"ok": False, "error": "the daemon is still starting: try again in a moment"}
        if cmd == "unsilence":
            if not await self.notifier.dispatcher.unsilence(arg):
                return {"ok": False, "error": f"no active silence for {arg!r}"}
            self._event(None, None, "control", f"operator lifted the silence on {arg}")
            self.status.changed(urgent=True)
            return {"ok": True, "message": f"notifications for {arg} resumed"}
        job_part = arg.split(":", 1)[0]
        if arg not in self.jobs and arg not in self.alerts.active and job_part not in self.jobs \
                and job_part != "host":
            return {"ok": False, "error": f"{arg!r} is neither a job ({', '.join(sorted(self.jobs))}) "
                                          f"nor an alert key (like {sorted(self.jobs)[0] if self.jobs else 'job'}:stalled or host:disk:/)"}
        try:
            seconds = parse_duration(str(extra.get("duration", "")))
        except ValueError as exc:
            return {"ok": False, "error": f"duration: {exc}"}
        reason = str(extra.get("reason", ""))
        sil = await self.notifier.dispatcher.silence(arg, seconds, reason=reason)
        self._event(None, None, "control",
                    f"operator silenced {arg} for {format_duration(seconds)} until {sil.until.isoformat(timespec='seconds')}"
                    + (f": {reason}" if reason else ""))
        self.status.changed(urgent=True)
        return {"ok": True, "message": f"notifications for {arg} muted until {sil.until.astimezone():%Y-%m-%d %H:%M:%S %Z}"}

    def control(self, cmd: str, arg: str | None) -> dict[str, Any]:
        """Apply an operator command; returns a reply for the client."""
        now = self.clock.now()
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "reload":
            return self.reload()
        if cmd == "ack":
            outcome = self.alerts.acknowledge(arg or "", now)
            if outcome is None:
                return {"ok": False, "error": f"no active alert {arg!r}"}
            self._event(None, None, "control", f"operator acknowledged alert {arg} ({outcome})")
            self.status.changed(urgent=True)
            return {"ok": True, "message": f"alert {arg} {outcome}"}
        job = self.jobs.get(arg or "")
        if job is None:
            return {"ok": False, "error": f"unknown job {arg!r} (jobs: {', '.join(sorted(self.jobs))})"}
        self._event(job.name, job.run.run_id if job.run else None, "control", f"operator: {cmd}")
        if cmd == "start":
            if job.run is not None:
                return {"ok": False, "error": f"{job.name} is already {job.state.value} (run {job.run.run_id})"}
            job.held = False
            job.consecutive, job.error = 0, None  # the operator starts a fresh streak
            job.restart_times.clear()
            run = self._start(job, now, "started by the operator")
            return {"ok": run is not None, "message": f"{job.name} started", "run_id": run and run.run_id}
        if cmd == "stop":
            job.held = True
            job.next_start_at, job.error = None, None
            if job.run is not None:
                self.stop_run(job, "stopped by the operator", JobState.STOPPED)
                return {"ok": True, "message": f"stopping {job.name} (run {job.run.run_id})"}
            if job.state in (JobState.BACKOFF, JobState.FATAL, JobState.PENDING):
                self._set_job_state(job, JobState.STOPPED, "stopped by the operator", None)
            return {"ok": True, "message": f"{job.name} is not running; held until started"}
        if cmd == "restart":
            job.held = False
            job.consecutive, job.error = 0, None
            job.restart_times.clear()
            if job.run is not None:
                self.stop_run(job, "restarted by the operator", JobState.STOPPED, restart=True)
                return {"ok": True, "message": f"restarting {job.name}"}
            run = self._start(job, now, "restarted by the operator")
            return {"ok": run is not None, "message": f"{job.name} started", "run_id": run and run.run_id}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def ingest_remote(self, job: JobRuntime, error: str | None = None) -> None:
        """A remote heartbeat, already written to the run's heartbeat file by the API: read it
        now through the same intake as a local one. With `error` (it was malformed), record it
        like a malformed heartbeat file (once per distinct error)."""
        run = job.run
        if run is None:
            return
        if error is None:
            self._ingest(job, run, self.clock.now())
        elif error not in run.heartbeat_errors:
            run.heartbeat_errors.add(error)
            self._event(job.name, run.run_id, "heartbeat_error", error)
            log.warning("job=%s run=%s %s", job.name, run.run_id, error)

    # ---- recording -----------------------------------------------------------------------

    def _transition(self, job: JobRuntime, run: RunState, new: JobState, reason: str) -> None:
        old = job.state
        if not is_allowed(old, new) and old != new:
            log.error("job=%s illegal transition %s->%s (%s)", job.name, old, new, reason)
        log.info("job=%s run=%s %s->%s reason=%s", job.name, run.run_id, old.value, new.value, reason)
        job.state = run.state = new
        self._event(job.name, run.run_id, "transition", reason, old, new)
        self.recorder.run(self._run_row(run))
        self.status.changed(urgent=True)
        self.notify_change()
        self.wake()  # a new state has new deadlines (e.g. RUNNING's stall deadline)

    def _set_job_state(self, job: JobRuntime, new: JobState, reason: str, run_id: str | None) -> None:
        old = job.state
        log.info("job=%s %s->%s reason=%s", job.name, old.value, new.value, reason)
        job.state = new
        self._event(job.name, run_id, "transition", reason, old, new)
        self.status.changed(urgent=True)
        self.notify_change()

    def _event(self, job: str | None, run_id: str | None, kind: str, reason: str,
               old: JobState | None = None, new: JobState | None = None) -> None:
        self.recorder.event({"ts": self.clock.now(), "job": job or "", "run_id": run_id, "kind": kind,
                             "from_state": old.value if old else None,
                             "to_state": new.value if new else None, "reason": reason})

    def _run_row(self, run: RunState) -> RowData:
        return {
            "run_id": run.run_id, "job": run.job, "host": self.hostname, "state": run.state.value,
            "started_at": run.started_at, "ended_at": run.ended_at, "pid": run.pid,
            "exit_code": run.exit_code, "signal": run.signal, "error": run.error,
            "pid_created": run.pid_created, "command": run.command,
            "run_dir": str(run.run_dir), "phase": run.phase, "message": run.message,
            "progress": dict(run.progress), "proofs": [p.model_dump(mode="json") for p in run.proofs],
            "last_heartbeat_at": run.last_beat_at, "last_progress_at": run.last_progress_at,
        }

    def document(self) -> StatusDocument:
        """The current status.json document."""
        cfg = self.config
        return build_document(
            now=self.clock.now(),
            supervisor=SupervisorStatus(pid=os.getpid(), version=VERSION, started_at=self.started_at,
                                        config=str(cfg.path), host=self.hostname,
                                        socket=str(cfg.socket_path)),
            jobs=self.jobs.values(),
            alerts=self.alerts.statuses(),
            recent=list(self.recent),
            host=self.hostwatch.status if self.hostwatch else None,
            notify=self.notifier.status() if self.notifier else None,
            store=self.store_status(),
            fleet=self.fleet.status() if self.fleet is not None else None,
        )

    def store_status(self) -> StoreStatus:
        """The `store` section: the history's target (no password) and whether writes succeed."""
        rec = getattr(self, "recorder", None)
        kind, target = ("sqlite", "") if not hasattr(self, "history") else (
            store_parts(self.history.engine)[0], store_target(self.history.engine))
        if rec is None:
            return StoreStatus(kind=kind, target=target)
        error, since = rec.failing.get(rec.history_name), rec.failing_since
        if error is None and since is None and self.offline and self.history.upgrade_pending:
            error, since = self.offline, self.started_at  # started without it, no write tried yet
        return StoreStatus(kind=kind, target=target, ok=error is None, error=error,
                           failing_since=since, queued=rec.queued())

    # ---- write outcomes (a full disk) ----------------------------------------------------

    def _write_outcome(self, what: str, path: Path, exc: BaseException | None) -> None:
        """A write of status.json, the history or alerts.jsonl succeeded (exc None) or failed."""
        self.disks.report(what, path, exc)

    def _disk_changed(self) -> None:
        self.status.changed(urgent=True)
        self.notify_change()
