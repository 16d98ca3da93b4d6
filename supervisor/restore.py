"""What a starting daemon takes over from the history and the runs dir: active alerts, recent
runs, and the runs a previous daemon left active — re-adopted when their process is still the
one they started (supervisor/adopt.py), else closed as lost with an alert.

Started without its shared store (`offline`, supervisor/storewatch.py): the same facts come
from the host's own status.json (`_from_status_file`): the jobs' current and last runs, the
recent runs and the active alerts. What status.json cannot say is which run dirs the history
knows; only those newer than what it covers may be taken for runs spawned just before a crash
(`_covered_until`). With no readable status.json the daemon supervises from scratch: it
re-adopts live runs only and closes nothing as lost.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import psutil

from policies.triggers import DepRun, next_fire
from status.rows import AlertRow, RunRow, latest_by_job
from status.models import JobState, RunSummary, Severity, StatusDocument
from status.store import StatusFileError, read_status
from supervisor import adopt, intake, procinfo
from supervisor.runs import RunState
from supervisor.spawn import write_private
from workers.protocol import ENV_RUN_DIR

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)
PIDFILE = adopt.PIDFILE


async def restore(d: Daemon, offline: str | None = None) -> None:
    """Load what the history knows (or, `offline`, status.json): active alerts, recent runs,
    and the runs a previous daemon left active: re-adopted when their process lives on, else
    closed as lost."""
    now = d.clock.now()
    if offline is None:
        active_states = [s.value for s in JobState if s.is_active]
        rows = await anyio.to_thread.run_sync(lambda: d.history.runs(limit=500))
        active = await anyio.to_thread.run_sync(lambda: d.history.runs_in(active_states))
        d.alerts.load(await anyio.to_thread.run_sync(lambda: d.history.alerts(active_only=True)))
        known = {row.run_id: row for row in rows}
        rows += [row for row in active if row.run_id not in known]
        known.update((row.run_id, row) for row in active)
        recorded: Callable[[dict[str, Path]], set[str]] = d.history.known_ids
    else:
        try:
            doc: StatusDocument | StatusFileError = await anyio.to_thread.run_sync(read_status, d.config.status_file)
        except StatusFileError as exc:
            doc = exc
        rows, recorded = _from_status_file(d, offline, doc)
        known = {row.run_id: row for row in rows}
    rows += _unrecorded_runs(d, known, recorded)
    rows.sort(key=lambda r: r.started_at, reverse=True)
    newest_active: dict[str, str] = {}
    for row in rows:
        if JobState(row.state).is_active:
            newest_active.setdefault(row.job, row.run_id)
    lost: list[str] = []
    for row in reversed(rows):
        if JobState(row.state).is_active:
            if newest_active[row.job] == row.run_id and _adopt(d, row, now):
                continue
            _close_lost_run(d, row, now)
            lost.append(row.run_id)
        if JobState(row.state).is_final:
            d.recent.appendleft(
                RunSummary(job=row.job, run_id=row.run_id, state=JobState(row.state),
                           started_at=row.started_at, ended_at=row.ended_at,
                           exit_code=row.exit_code, error=row.error)
            )
        job = d.jobs.get(row.job)
        if job is not None and JobState(row.state) == JobState.SUCCEEDED:
            job.last_success_at = max(filter(None, [job.last_success_at, row.ended_at]))
    latest = latest_by_job(rows)
    for name, job in d.jobs.items():
        js = job.settings
        if name in latest:
            job.last_started_at = latest[name].started_at
            if job.run is None:
                job.prior = DepRun(JobState(latest[name].state), latest[name].ended_at)
        job.boot_pending = js.starts_at_boot and job.run is None
        job.waiting = d._why_pending(job) if job.run is None else ""
        if js.schedule:
            job.next_fire_at = next_fire(js.schedule, now)
    if offline is not None:
        d.history.keep_final(lost)  # the history may know how they ended: that is not undone


# How long before status.json's `updated_at` a run dir it does not list may still be a run it
# could not list yet. The daemon mints a run id (its start time) and lists the run in the same
# step of its event loop, and builds status.json there too, with the same clock: a run started
# before `updated_at` is in the document (as a job's run or in `recent`). The margin absorbs
# clock adjustments while the previous daemon ran (an NTP slew; a step back of less than this)
# and the run id's millisecond rounding. Wider is not safer: every dir inside the margin that
# the document does not list would be closed as lost.
COVER_MARGIN = timedelta(seconds=5)


def _from_status_file(d: Daemon, offline: str, doc: StatusDocument | StatusFileError,
                      ) -> tuple[list[RunRow], Callable[[dict[str, Path]], set[str]]]:
    """What the history would have said, from status.json (the daemon started without its
    store): the rows of the jobs' runs and the recent runs (the active alerts are loaded
    here), and which unknown run dirs count as recorded."""
    why = f"started without the history store ({offline})"
    if isinstance(doc, StatusFileError):
        problem = str(doc).removesuffix(" (is the daemon started?)")
        what = (f"{why}: status.json cannot be read ({problem}), so nothing is restored: live runs are "
                "re-adopted from their pid files and environment, no old run is closed as lost; the "
                "history catches up when the store returns")
        log.warning("%s", what)
        d._event(None, None, "supervisor", what)
        return [], _live_only
    rows = _rows_from(d, doc)
    alerts = [AlertRow(id=uuid.uuid4().hex, key=a.key, job=a.job, run_id=a.run_id, severity=a.severity.value,
                       title=a.title, detail=a.detail, first_seen=a.first_seen, last_seen=a.last_seen,
                       count=a.count, acknowledged_at=a.acknowledged_at) for a in doc.alerts]
    d.alerts.load(alerts)
    d.history.match_alerts({a.key: a.id for a in alerts})
    covered = _covered_until(doc, d.config.supervisor.recent_runs)
    what = (f"{why}: restored from status.json (written {doc.updated_at.isoformat(timespec='seconds')}: "
            f"{len(rows)} run(s), {len(alerts)} active alert(s)); the history catches up when the store returns")
    log.warning("%s", what)
    d._event(None, None, "supervisor", what)

    def recorded(dirs: dict[str, Path]) -> set[str]:
        return {run_id for run_id in dirs if (t := _run_id_time(run_id)) is None or t < covered}

    return rows, recorded


def _live_only(dirs: dict[str, Path]) -> set[str]:
    """No status.json: every run dir counts as recorded (none is closed as lost); live runs
    are still found (`_unrecorded_runs`) and re-adopted."""
    return set(dirs)


def _covered_until(doc: StatusDocument, recent_max: int) -> datetime:
    """Run dirs started before this are in the history, or listed by `doc`: only newer ones may
    be runs spawned after its last write. A full `recent` list may have dropped runs that
    ended before its oldest entry: a run that started after that entry ended cannot be one."""
    until = doc.updated_at - COVER_MARGIN
    if recent_max and len(doc.recent) >= recent_max:
        ends = [r.ended_at or r.started_at for r in doc.recent]
        until = max(until, min(ends))
    return until


def _run_id_time(run_id: str) -> datetime | None:
    """A run's start time from its id (supervisor/runs.py new_run_id), or None."""
    try:
        return datetime.strptime(run_id[:19], "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _rows_from(d: Daemon, doc: StatusDocument) -> list[RunRow]:
    """Run rows for each job's current or last run and the recent runs in `doc`."""
    rows: dict[str, RunRow] = {}
    for r in doc.recent:
        rows[r.run_id] = RunRow(run_id=r.run_id, job=r.job, host=d.hostname, state=r.state.value,
                                started_at=r.started_at, ended_at=r.ended_at, exit_code=r.exit_code,
                                error=r.error, run_dir=str(d.config.runs_dir / r.job / r.run_id))
    for name, js in doc.jobs.items():
        state = JobState(js.state)
        if not js.run_id or js.started_at is None or not (state.is_active or state.is_final):
            continue  # no run, or one that ended and is waiting (BACKOFF, FATAL): in `recent`
        run_dir = Path(js.run_dir) if js.run_dir else d.config.runs_dir / name / js.run_id
        pid, created, command = js.pid, None, ""
        if state.is_active:
            try:
                got, created, _ = adopt.read_pidfile_at(run_dir / PIDFILE)
                if pid is None or got == pid:
                    pid = got
                else:
                    created = None
            except (OSError, ValueError, IndexError):
                pass
            if adopt.is_same_process(pid, created, js.started_at, js.run_id):
                command = _command_of(pid)
        rows[js.run_id] = RunRow(
            run_id=js.run_id, job=name, host=d.hostname, state=state.value, started_at=js.started_at,
            ended_at=js.ended_at, pid=pid, pid_created=created, command=command, exit_code=js.exit_code,
            signal=js.signal, error=js.error, run_dir=str(run_dir), phase=js.phase, message=js.message,
            progress=dict(js.progress), last_heartbeat_at=js.last_heartbeat_at,
            last_progress_at=js.last_progress_at)
    return sorted(rows.values(), key=lambda r: r.started_at, reverse=True)


def _command_of(pid: int | None) -> str:
    """A live run leader's argv, shell-quoted (status.json does not keep it; the adopted run's
    row is written whole, so it would blank the history's)."""
    if not pid:
        return ""
    try:
        return shlex.join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return ""


def _unrecorded_runs(d: Daemon, known: dict[str, RunRow],
                     recorded_of: Callable[[dict[str, Path]], set[str]]) -> list[RunRow]:
    """Runs spawned just before the previous daemon died, before the history had them:
    a live run leader found by its environment (adopted), or a run dir the history does
    not know (`recorded_of` says which it does), with a pid file (alive: adopted; gone: closed
    as lost) or without one (its process, if it ever ran, is gone: closed as lost). A live run
    is taken whatever `recorded_of` says: left unsupervised, its job would run twice."""
    dirs = {d.name: d for d in d.config.runs_dir.glob("*/*") if d.name not in known}
    recorded = recorded_of(dirs) if dirs else set()
    out: list[RunRow] = []
    leaders = adopt.run_leaders(d.config.runs_dir, ENV_RUN_DIR)
    for run_dir, pid in leaders.items():
        created = adopt.create_time(pid)
        if run_dir.name in dirs and created is not None and (
                run_dir.name not in recorded or d.offline is not None):
            out.append(RunRow(run_id=run_dir.name, job=run_dir.parent.name, state=JobState.STARTING.value,
                              host=d.hostname, started_at=datetime.fromtimestamp(created, timezone.utc),
                              pid=pid, pid_created=created, run_dir=str(run_dir),
                              command=_command_of(pid) if d.offline is not None else ""))
    found = {row.run_id for row in out}
    for run_id, run_dir in dirs.items():
        if run_id in found or not run_dir.is_dir():
            continue
        if run_id in recorded and (d.offline is None or not _alive(run_dir, run_id)):
            continue
        pid, created = None, None
        try:
            pid, created, mtime = adopt.read_pidfile_at(run_dir / PIDFILE)
            started = datetime.fromtimestamp(mtime, timezone.utc)
        except (OSError, ValueError, IndexError):  # died between spawn and its pid file
            try:
                started = datetime.fromtimestamp(run_dir.stat().st_mtime, timezone.utc)
            except OSError:
                continue
        live = d.offline is not None and run_id in recorded  # only a live one gets this far
        out.append(RunRow(run_id=run_id, job=run_dir.parent.name, state=JobState.STARTING.value,
                          host=d.hostname, started_at=started, pid=pid, pid_created=created,
                          run_dir=str(run_dir), command=_command_of(pid) if live else ""))
    return out


def _alive(run_dir: Path, run_id: str) -> bool:
    """Whether a run dir's pid file names a live process of that run."""
    try:
        pid, created, mtime = adopt.read_pidfile_at(run_dir / PIDFILE)
    except (OSError, ValueError, IndexError):
        return False
    return adopt.is_same_process(pid, created, datetime.fromtimestamp(mtime, timezone.utc), run_id)


def _adopt(d: Daemon, row: RunRow, now: datetime) -> bool:
    """Take over a run a previous daemon left active, if its process is still the one it
    started (pid + create time) or it was being verified; False when it cannot be."""
    job = d.jobs.get(row.job)
    if job is None or job.run is not None:
        return False  # dropped from the config: stopped by _close_lost_run
    state = JobState(row.state)
    alive = adopt.is_same_process(row.pid, row.pid_created, row.started_at, row.run_id)
    ended_unseen = not alive and state != JobState.VERIFYING
    if ended_unseen and job.settings.kind != "task":
        return False  # a service that ended meanwhile: lost (and started again at boot)
    run = RunState(job.name, row.run_id, job.settings.kind,
                   Path(row.run_dir) if row.run_dir else d.config.runs_dir / job.name / row.run_id,
                   row.started_at, state=state, pid=row.pid, pid_created=row.pid_created,
                   command=row.command, adopted=True, first_beat_at=row.last_heartbeat_at,
                   last_beat_at=row.last_heartbeat_at, last_progress_at=row.last_progress_at,
                   progress=dict(row.progress), high_water=dict(row.progress), phase=row.phase,
                   message=row.message, ended_unseen=ended_unseen)
    if alive and row.pid:
        handle = adopt.AdoptedProcess.open(row.pid)
        if not adopt.is_same_process(row.pid, row.pid_created, row.started_at, row.run_id):  # gone meanwhile
            if handle.pidfd is not None:
                os.close(handle.pidfd)
            return False
        run.child = handle
        pidfile = run.run_dir / PIDFILE
        if not pidfile.exists():  # found by its environment: note it before anything else
            try:
                write_private(pidfile, adopt.pidfile_text(row.pid, row.pid_created))
            except OSError as exc:  # a full disk must not stop the daemon from starting
                log.warning("job=%s run=%s cannot write its pid file: %s", job.name, row.run_id, exc)
        what = (f"re-adopted pid {row.pid} ({row.command or 'command not recorded'}), alive since "
                f"{row.started_at.isoformat(timespec='seconds')}: its exit status will be unknown, so it "
                "is judged by its heartbeats and proofs")
    elif ended_unseen:  # a task that ended while nobody watched: judged by its proofs
        run.exited, run.ended_at = True, _last_sign_of_life(run.run_dir) or now
        what = ("ended while the supervisor was down, exit status unknown: it is judged by its "
                "proofs")
    else:  # its leader had exited and its proofs were being checked: check them again
        run.exited, run.finishing = True, True
        run.exit_code, run.signal, run.ended_at = row.exit_code, row.signal, row.ended_at or now
        what = "resumed verifying its proofs, interrupted when the previous supervisor stopped"
    got = intake.read_heartbeat(run, now)  # what it reported while nobody was listening
    if got.error:
        d._event(job.name, run.run_id, "heartbeat_error", got.error)
    job.run, job.state, job.last_started_at = run, state, row.started_at
    d._adopted.append((job, run))
    log.info("job=%s run=%s %s", job.name, run.run_id, what)
    d._event(job.name, run.run_id, "adopt", what)
    d.recorder.run(d._run_row(run))
    return True


def _close_lost_run(d: Daemon, row: RunRow, now: datetime) -> None:
    """A run the history says was active when the previous daemon died, and that cannot be
    re-adopted: its process is gone, or its job left the config, or a newer run of the same
    job was adopted (then its group is stopped, so a job never runs twice)."""
    alive = adopt.is_same_process(row.pid, row.pid_created, row.started_at, row.run_id)
    if alive and row.pid:
        procinfo.signal_group(row.pid, signal.SIGTERM)
        grace = d.jobs[row.job].settings.stop_grace if row.job in d.jobs else 10.0
        d._orphans[row.pid] = now + timedelta(seconds=grace)
        why = "its job is no longer in the config" if row.job not in d.jobs else "a newer run was adopted"
        row.error = (f"lost while the supervisor was down: its process group {row.pid} was still running "
                     f"but {why}, so it has been stopped")
    else:
        row.error = ("lost while the supervisor was down: its process ended meanwhile, and its exit "
                     "status is unknowable")
    row.state, row.ended_at = JobState.FAILED.value, now
    d.recorder.run(row)
    d._event(row.job, row.run_id, "transition", row.error, None, JobState.FAILED)
    d.alerts.fire(row.job, "lost", severity=Severity.WARNING, run_id=row.run_id, now=now,
                     title=f"{row.job}: run {row.run_id} lost while the supervisor was down",
                     detail=row.error)


def _last_sign_of_life(run_dir: Path) -> datetime | None:
    """When a run that ended unseen last wrote its heartbeat or output: its end, near enough."""
    times = []
    for name in ("heartbeat.json", "stdout.log", "stderr.log"):
        try:
            times.append(os.lstat(run_dir / name).st_mtime)
        except OSError:
            pass
    return datetime.fromtimestamp(max(times), timezone.utc) if times else None
