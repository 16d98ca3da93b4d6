"""The specific words of an alert: exit code or signal, stderr tail, heartbeat age, last
progress, last message, process state and CPU use over the stall window."""

from __future__ import annotations

from datetime import datetime

from supervisor.durations import format_duration
from supervisor.logs import tail
from supervisor.runs import RunState

TAIL_LINES = 20


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    return f"{format_duration(max(0.0, (now - then).total_seconds()))} ago ({then.isoformat(timespec='seconds')})"


def stderr_block(run: RunState, lines: int = TAIL_LINES) -> str:
    """The last lines of stderr (or stdout when stderr is empty), indented."""
    out = tail(run.stderr_path, lines)
    label = "stderr"
    if not out:
        out, label = tail(run.stdout_path, lines), "stdout"
    if not out:
        return "stderr: (empty)"
    return f"last {len(out)} lines of {label}:\n" + "\n".join("  " + line for line in out)


def exit_detail(run: RunState, how: str, now: datetime) -> str:
    """Why a run died, with its output tail."""
    parts = [
        f"run {run.run_id} {how} after {format_duration((now - run.started_at).total_seconds())}",
        f"last heartbeat: {_ago(now, run.last_beat_at)}",
    ]
    if run.message:
        parts.append(f"last message: {run.message}")
    parts.append(f"run dir: {run.run_dir}")
    parts.append(stderr_block(run))
    return "\n".join(parts)


def silent_detail(run: RunState, grace: float, proc: str, now: datetime) -> str:
    """A run alive but without a first heartbeat."""
    return "\n".join(
        [
            f"run {run.run_id} (pid {run.pid}) started {_ago(now, run.started_at)} and has sent "
            f"no heartbeat within startup_grace {format_duration(grace)}",
            f"heartbeat file expected at {run.heartbeat_path}",
            f"process: {proc}",
            stderr_block(run),
        ]
    )


def stall_detail(
    run: RunState, stall_after: float, proc: str, cpu_pct: float | None, now: datetime
) -> str:
    """A run alive but not progressing."""
    progress = ", ".join(f"{k}={v:g}" for k, v in run.progress.items()) or "(none)"
    cpu = "unknown" if cpu_pct is None else f"{cpu_pct:.1f}% of one core"
    return "\n".join(
        [
            f"run {run.run_id} (pid {run.pid}) made no progress for {format_duration(stall_after)}"
            f" (stall_after)",
            f"last progress: {_ago(now, run.last_progress_at)}; counters: {progress}; "
            f"phase: {run.phase or '(none)'}",
            f"last heartbeat: {_ago(now, run.last_beat_at)} (seq {run.hb_seq})",
            f"last message: {run.message or '(none)'}",
            f"process: {proc}; CPU over the stall window: {cpu}",
            stderr_block(run),
        ]
    )


def cpu_over_window(run: RunState, since: datetime, now_cpu: float | None, now: datetime) -> float | None:
    """Average CPU % of the run's process tree between `since` and now, from the per-run
    samples the host watch takes; before the first sample, the run's start (0 s of CPU)."""
    if now_cpu is None:
        return None
    older = [(t, c) for t, c in run.cpu_samples if t <= since]
    t0, c0 = older[-1] if older else (run.started_at, 0.0)
    span = (now - t0).total_seconds()
    if span <= 0:
        return None
    return max(0.0, (now_cpu - c0) / span * 100.0)


def cpu_from_samples(run: RunState, since: datetime) -> float | None:
    """Average CPU % of the run's process tree from the sample at or before `since` (or the
    run's start) to the newest sample the host watch took: no process-table scan per stall."""
    if not run.cpu_samples:
        return None
    t1, c1 = run.cpu_samples[-1]
    return cpu_over_window(run, since, c1, t1)
