"""status.json from its source of truth, the history: `proofwatch status --rebuild` while the
daemon is down, and the check the daemon makes at start.

    check_at_start(path, now)  a corrupt or hand-edited status.json is kept as
                               status.json.corrupt-<UTC time> (nothing lost) and reported;
                               temp files of a killed writer are removed
    rebuild(config, now)       the document the daemon would write, from the history: each
                               job's latest run, active alerts, recent runs, the outbox depth
    preserve(path, now)        keep a copy of a file about to be replaced (a hard link)
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any


from status.backend import open_history
from status.rows import AlertRow, RunRow, latest_by_job
from status.models import (
    AlertStatus,
    JobState,
    JobStatus,
    NotifyStatus,
    ProofStatus,
    RunSummary,
    Severity,
    SilenceStatus,
    StatusDocument,
    SupervisorStatus,
)
from status.store import StatusFileError, read_status, temp_files
from supervisor.config import Config

log = logging.getLogger(__name__)

DOWN_KEY = "supervisor:down"
_STARTED = re.compile(r"proofwatch (\S+) started \(pid (\d+)\)")
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def problem_of(path: Path) -> str | None:
    """What is wrong with an existing status.json (JSON error with line and column, or the first
    invalid field); None when it is a valid document or does not exist."""
    if not path.exists():
        return None
    try:
        read_status(path)
    except StatusFileError as exc:
        return str(exc)
    return None


def preserve(path: Path, now: datetime) -> Path:
    """Keep the current content of `path` as `<name>.corrupt-<UTC time>` (a hard link: no space
    needed, and the file stays in place until its replacement is written)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        keep = path.with_name(f"{path.name}.corrupt-{stamp}" + (f".{n}" if n else ""))
        try:
            os.link(path, keep)
            return keep
        except FileExistsError:
            continue
        except OSError:  # no hard links here: a copy
            if keep.exists():
                continue
            shutil.copy2(path, keep)
            return keep
    raise OSError(f"{path}: too many corrupt copies named {path.name}.corrupt-{stamp}.*")


def check_at_start(path: Path, now: datetime) -> list[str]:
    """Before the daemon's first write: keep a corrupt status.json and remove a killed writer's
    temp files. Returns what was found, one line each (to log and record as events)."""
    found: list[str] = []
    leftovers = temp_files(path)
    for tmp in leftovers:
        tmp.unlink(missing_ok=True)
    if leftovers:
        found.append(f"removed {len(leftovers)} temp file(s) of {path.name} left by a writer killed "
                     f"mid-write ({', '.join(p.name for p in leftovers)}); {path.name} itself was never torn")
    problem = problem_of(path)
    if problem is not None:
        try:
            kept = f"kept as {preserve(path, now).name}"
        except OSError as exc:
            kept = f"could not keep a copy ({exc})"
        found.append(f"corrupt status.json at start: {problem}; {kept}; the daemon's first write "
                     "replaces it (the history is its source)")
    return found


def rebuild(config: Config, now: datetime) -> StatusDocument:
    """The status document from the history alone (the daemon is down). Runs it recorded as
    active are shown as recorded, each with a note, and a `supervisor:down` alert says so."""
    from supervisor.daemon import VERSION

    history = open_history(config.store_url, create=False, host=config.host, scoped=config.shared_store)
    try:
        started, last_ts = history.last_start()
        rows = history.runs(limit=5000)
        alerts = history.alerts(active_only=True, limit=1000)
        depth, silences = _notify(config.outbox_db if config.shared_store else history.engine, now)
    finally:
        history.close()
    match = _STARTED.search(started.reason) if started else None
    supervisor = SupervisorStatus(
        pid=int(match.group(2)) if match else 0, version=match.group(1) if match else VERSION,
        started_at=_utc(started.ts) if started else now, config=str(config.path),
        host=rows[0].host if rows and rows[0].host else "", socket=str(config.socket_path))
    latest = latest_by_job(rows)
    jobs = {name: _job(js.kind, latest.get(name), now) for name, js in config.jobs.items()}
    active = [r for r in latest.values() if r.job in config.jobs and JobState(r.state).is_active]
    statuses = sorted((_alert(a) for a in alerts), key=lambda a: (-_RANK[a.severity], -a.last_seen.timestamp()))
    statuses.insert(0, _down_alert(active, _utc(last_ts) or now, now))
    recent = [RunSummary(job=r.job, run_id=r.run_id, state=JobState(r.state), started_at=r.started_at,
                         ended_at=r.ended_at, exit_code=r.exit_code, error=r.error)
              for r in rows if JobState(r.state).is_final]  # newest first, as the daemon restores them
    return StatusDocument(updated_at=now, supervisor=supervisor, jobs=jobs, alerts=statuses,
                          recent=recent[:config.supervisor.recent_runs],
                          notify=NotifyStatus(outbox_depth=depth, silences=silences))


def _job(kind: str, row: RunRow | None, now: datetime) -> JobStatus:
    if row is None:
        return JobStatus(state=JobState.PENDING, kind=kind, message="no run recorded in the history")
    state = JobState(row.state)
    error = row.error
    if state.is_active:
        note = (f"the supervisor is not running: {state.value} is the last recorded state "
                f"(rebuilt from the history at {now.isoformat(timespec='seconds')})")
        error = f"{error}; {note}" if error else note
    return JobStatus(
        state=state, kind=kind, run_id=row.run_id, pid=row.pid if state.is_active else None,
        started_at=row.started_at, ended_at=row.ended_at, last_heartbeat_at=row.last_heartbeat_at,
        last_progress_at=row.last_progress_at, progress=dict(row.progress or {}), phase=row.phase,
        message=row.message, exit_code=row.exit_code, signal=row.signal, error=error,
        proofs=[ProofStatus.model_validate(p) for p in row.proofs or []], run_dir=row.run_dir or None)


def _alert(row: AlertRow) -> AlertStatus:
    return AlertStatus(key=row.key, job=row.job, severity=Severity(row.severity), title=row.title,
                       detail=row.detail, first_seen=row.first_seen, last_seen=row.last_seen,
                       count=row.count, run_id=row.run_id,
                       state="acknowledged" if row.acknowledged_at else "firing",
                       acknowledged_at=_utc(row.acknowledged_at))


def _down_alert(active: list[RunRow], last_heard: datetime, now: datetime) -> AlertStatus:
    runs = "; ".join(f"{r.job} run {r.run_id}: {r.state}" for r in active)
    detail = ("status.json was rebuilt from the history by `proofwatch status --rebuild` while the "
              f"daemon was down; it last recorded something at {last_heard.isoformat(timespec='seconds')}. "
              + (f"Runs it recorded as active (shown as recorded; the next daemon start settles them): {runs}."
                 if active else "No run was active."))
    return AlertStatus(key=DOWN_KEY, job=None, severity=Severity.WARNING,
                       title="supervisor not running: status rebuilt from the history", detail=detail,
                       first_seen=last_heard, last_seen=now)


def _notify(db: Any, now: datetime) -> tuple[int, list[SilenceStatus]]:
    from pydantic import ValidationError

    from policies.alerting import NotifyState, active_silences
    from status.outbox import Outbox

    try:
        outbox = Outbox(db)
        depth, raw = outbox.undelivered_count(), outbox.load_state()
    except Exception as exc:  # no outbox tables: the daemon never notified anything
        log.debug("no outbox in the history: %s", exc)
        return 0, []
    try:
        state = NotifyState.model_validate(raw or {})
    except ValidationError:
        return depth, []
    return depth, [SilenceStatus(target=s.target, until=s.until, reason=s.reason)
                   for s in active_silences(state, now)]


def _utc(dt: datetime | None) -> datetime | None:
    from datetime import timezone

    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
