"""Reading what a run reports: its heartbeat file, or the growth of its output files.

Pure bookkeeping on a RunState; the daemon decides the state transitions from the result.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime

from policies.stall import check_progress
from supervisor.logs import size_of
from supervisor.runs import RunState
from workers.protocol import HEARTBEAT_MAX_BYTES, HeartbeatError, parse_heartbeat


@dataclass(frozen=True)
class Intake:
    """What a read of a run's reports found."""

    beat: bool = False  # a new heartbeat arrived
    progressed: bool = False
    error: str | None = None  # the heartbeat file was malformed (first time for this text)
    blocker_changed: bool = False


NOTHING = Intake()


def read_heartbeat(run: RunState, now: datetime, since: datetime | None = None) -> Intake:
    """Ingest the heartbeat file if it changed since the last read.

    `since` is the earliest moment the new content can be from (the first unread change the
    watcher saw, else the previous read). Progress is dated by the worker's own `progress_at`,
    clamped into [since, now]; a writer that sends no `progress_at` gets the read time (late,
    never early: a stall is never flagged before its deadline)."""
    path = run.heartbeat_path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return NOTHING
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    if stamp == run.hb_stamp:
        return NOTHING  # the common case of a rescan: one stat, no read
    try:  # O_NONBLOCK: a FIFO put in its place must not hang the daemon at open()
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)  # no link followed
    except FileNotFoundError:
        return NOTHING
    except OSError as exc:
        return _error(run, f"heartbeat file cannot be opened: {exc.strerror}")
    try:
        st = os.fstat(fd)  # the file we opened (it may have been replaced since the stat)
        run.hb_stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if not stat.S_ISREG(st.st_mode):
            return _error(run, "heartbeat file is not a regular file; not read")
        if st.st_size > HEARTBEAT_MAX_BYTES:  # decided from fstat alone: not one byte is read
            return _error(run, f"heartbeat file is {st.st_size} bytes (limit {HEARTBEAT_MAX_BYTES}); not read")
        raw = os.read(fd, st.st_size + 1)  # sized read: never a 1 MB buffer per heartbeat
    except OSError as exc:
        return _error(run, f"heartbeat file cannot be read: {exc.strerror}")
    finally:
        os.close(fd)
    try:
        hb = parse_heartbeat(raw)
    except HeartbeatError as exc:
        return _error(run, f"malformed heartbeat ignored: {exc}")
    if hb.seq == run.hb_seq:
        return NOTHING
    run.hb_seq = hb.seq
    if run.first_beat_at is None:
        run.first_beat_at = now
        run.last_progress_at = now
    run.last_beat_at = now
    check = check_progress(run.high_water, run.phase, hb.progress, hb.phase)
    run.high_water = check.high_water
    progressed = check.progressed
    if progressed:
        run.last_progress_at = now
        if hb.progress_at is not None:
            lower = since or run.started_at
            run.last_progress_at = min(now, max(lower, hb.progress_at))
    run.progress = dict(hb.progress)
    run.phase = hb.phase
    run.message = hb.message
    blocker_changed = hb.blocker != run.blocker
    run.blocker = hb.blocker
    for entry in hb.proofs:
        if entry not in run.declared_proofs:
            run.declared_proofs.append(entry)
    return Intake(beat=True, progressed=progressed, blocker_changed=blocker_changed)


def read_output(run: RunState, now: datetime) -> Intake:
    """For progress_from = "output": growth of stdout+stderr is a heartbeat with progress."""
    total = run.rotated_bytes + size_of(run.stdout_path) + size_of(run.stderr_path)
    if total <= run.output_bytes:
        return NOTHING
    run.output_bytes = total
    if run.first_beat_at is None:
        run.first_beat_at = now
    run.last_beat_at = now
    run.last_progress_at = now
    run.progress["output_bytes"] = float(total)
    run.high_water["output_bytes"] = float(total)
    return Intake(beat=True, progressed=True)


def _error(run: RunState, text: str) -> Intake:
    if text in run.heartbeat_errors:
        return NOTHING
    run.heartbeat_errors.add(text)
    return Intake(error=text)
