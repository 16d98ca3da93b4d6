"""When a job should start: boot, schedule (cron), `after` other jobs, not_before."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from status.models import JobState


@dataclass(frozen=True)
class DepRun:
    """The latest run of a job another job waits for."""

    state: JobState
    ended_at: datetime | None
    run_id: str | None = None  # named in the start reason (a job on another host: see supervisor/fleet.py)


def next_fire(expression: str, after: datetime, tz: tzinfo | None = None) -> datetime:
    """The first time strictly after `after` that matches the cron expression (in `tz`,
    default the host's local time). Returned aware, in `tz`."""
    from croniter import croniter  # a job with a schedule only: croniter and dateutil are ~2 MB

    local = after.astimezone(tz)
    nxt: datetime = croniter(expression, local).get_next(datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=local.tzinfo)


def after_ready(
    deps: Mapping[str, DepRun | None], last_started_at: datetime | None
) -> tuple[bool, str]:
    """Whether every dependency's latest run SUCCEEDED, with one success newer than this
    job's last start (so a chain runs once per upstream success)."""
    waiting = [name for name, dep in deps.items() if dep is None or dep.state != JobState.SUCCEEDED]
    if waiting:
        return False, "waiting for " + ", ".join(f"{n} to succeed" for n in sorted(waiting))
    ends = [dep.ended_at for dep in deps.values() if dep is not None and dep.ended_at]
    newest = max(ends) if ends else None
    if last_started_at is not None and (newest is None or newest <= last_started_at):
        return False, "waiting for a new success of " + ", ".join(sorted(deps))
    runs = [f"run {deps[name].run_id}" for name in sorted(deps) if deps[name].run_id]  # type: ignore[union-attr]
    return True, "after " + ", ".join(sorted(deps)) + " succeeded" + (f" ({', '.join(runs)})" if runs else "")


def not_before_ok(not_before: datetime | None, now: datetime) -> bool:
    """False while a job's not_before date lies in the future."""
    return not_before is None or now >= not_before
