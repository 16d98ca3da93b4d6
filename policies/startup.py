"""Startup and exit policy: CRASHED (died before the first heartbeat), SILENT (no first
heartbeat within startup_grace), and what an exit means for a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from status.models import JobState


@dataclass(frozen=True)
class Outcome:
    """The state a run ends in (or VERIFYING, pending proofs) and why."""

    state: JobState
    reason: str


def silent_deadline(started_at: datetime, startup_grace: float) -> datetime:
    """When a run without a first heartbeat becomes SILENT."""
    return started_at + timedelta(seconds=startup_grace)


def is_silent(
    started_at: datetime, first_beat_at: datetime | None, startup_grace: float, now: datetime
) -> bool:
    """True when no heartbeat arrived within the startup grace."""
    return first_beat_at is None and now >= silent_deadline(started_at, startup_grace)


def describe_exit(exit_code: int | None, signal_name: str | None) -> str:
    """'exited with code 3' / 'killed by SIGKILL' / 'exited (code unknown)'."""
    if signal_name:
        return f"killed by {signal_name}"
    if exit_code is None:
        return "exited (code unknown)"
    return f"exited with code {exit_code}"


def classify_exit(
    kind: str,
    saw_heartbeat: bool,
    exit_code: int | None,
    signal_name: str | None,
    stop_reason: str | None = None,
) -> Outcome:
    """Decide what a process exit means for its run."""
    how = describe_exit(exit_code, signal_name)
    ended = _ended(kind, saw_heartbeat, how, stop_reason)
    if ended is not None:
        return ended
    if exit_code == 0:
        return Outcome(JobState.VERIFYING, "exited with code 0; verifying proofs")
    return Outcome(JobState.FAILED, how)


def _ended(kind: str, saw_heartbeat: bool, how: str, stop_reason: str | None) -> Outcome | None:
    """What any end means before its exit status is looked at: stopped on request, crashed
    before its first heartbeat, or a service gone; None for a task that ran (its status decides)."""
    if stop_reason is not None:
        return Outcome(JobState.STOPPED, f"stopped: {stop_reason} ({how})")
    if not saw_heartbeat:
        return Outcome(JobState.CRASHED, f"{how} before its first heartbeat")
    if kind == "service":
        return Outcome(JobState.FAILED, f"service {how}")
    return None


UNKNOWN_EXIT = "exited (status unknown: adopted after a supervisor restart)"
ENDED_UNSEEN = "ended while the supervisor was down (exit status unknown)"


def classify_adopted_exit(kind: str, saw_heartbeat: bool, stop_reason: str | None = None, *,
                          unseen: bool = False) -> Outcome:
    """Decide what the end of a re-adopted run means (`unseen`: it ended before the daemon
    came back). Its exit status went to its new parent, so a task is judged by its proofs
    alone; a service's end is an exit as any other."""
    how = ENDED_UNSEEN if unseen else UNKNOWN_EXIT
    return (_ended(kind, saw_heartbeat, how, stop_reason)
            or Outcome(JobState.VERIFYING, f"{how}; judging it by its proofs"))
