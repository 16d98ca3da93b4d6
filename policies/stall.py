"""Stall policy: progress means a counter rose above its high-water mark or the phase
changed; heartbeats without progress prove liveness only and do not reset the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

StallAction = Literal["alert", "restart", "kill"]


@dataclass(frozen=True)
class ProgressCheck:
    """Result of comparing a heartbeat with what was seen before."""

    progressed: bool
    high_water: dict[str, float]
    advanced: tuple[str, ...]


def check_progress(
    high_water: Mapping[str, float],
    phase: str,
    new_progress: Mapping[str, float],
    new_phase: str,
) -> ProgressCheck:
    """Compare a heartbeat's counters and phase against the high-water marks."""
    high = dict(high_water)
    advanced: list[str] = []
    for name, value in new_progress.items():
        if name not in high or value > high[name]:
            advanced.append(name)
            high[name] = value
    if new_phase != phase:
        advanced.append(f"phase:{new_phase}")
    return ProgressCheck(bool(advanced), high, tuple(advanced))


def stall_deadline(last_progress_at: datetime, stall_after: float) -> datetime:
    """When a run without further progress becomes STALLED."""
    return last_progress_at + timedelta(seconds=stall_after)


def is_stalled(last_progress_at: datetime | None, stall_after: float, now: datetime) -> bool:
    """True once stall_after has passed since the last progress."""
    return last_progress_at is not None and now >= stall_deadline(last_progress_at, stall_after)

