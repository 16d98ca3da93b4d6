"""Restart policy for services: immediate first restart, then jittered exponential backoff,
reset after a stable run, FATAL when the budget in the window is spent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

JITTER = 0.1  # +-10 %: delays still grow strictly while doubling


@dataclass(frozen=True)
class RestartSettings:
    """The knobs of the restart policy (seconds)."""

    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    stable_after: float = 60.0
    max_restarts: int = 10
    restart_window: float = 3600.0
    fatal_retry_every: float = 1800.0
    no_restart_exit_codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class RestartDecision:
    """Restart after `delay` seconds, or go FATAL (and retry after `delay`)."""

    action: Literal["restart", "fatal"]
    delay: float
    consecutive: int
    reason: str


def backoff_delay(consecutive: int, settings: RestartSettings, jitter: float) -> float:
    """Delay before restart number `consecutive` (1-based); jitter is uniform in [0, 1)."""
    if consecutive <= 1:
        return 0.0
    # cap the exponent: 2 ** n overflows float after ~1026 unstable restarts (days of crashing)
    base = settings.backoff_initial * 2.0 ** min(consecutive - 2, 512)
    return min(settings.backoff_max, base * (1 - JITTER + 2 * JITTER * jitter))


def decide_restart(
    settings: RestartSettings,
    *,
    exit_code: int | None,
    ran_for: float,
    consecutive_before: int,
    recent_restarts: Sequence[datetime],
    now: datetime,
    jitter: float,
) -> RestartDecision:
    """Decide what to do after a service's run ended."""
    consecutive = 1 if ran_for >= settings.stable_after else consecutive_before + 1
    if exit_code is not None and exit_code in settings.no_restart_exit_codes:
        return RestartDecision(
            "fatal",
            settings.fatal_retry_every,
            consecutive,
            f"exit code {exit_code} is in no_restart_exit_codes",
        )
    window_start = now - timedelta(seconds=settings.restart_window)
    in_window = sum(1 for t in recent_restarts if t >= window_start)
    if in_window >= settings.max_restarts:
        return RestartDecision(
            "fatal",
            settings.fatal_retry_every,
            consecutive,
            f"{in_window} restarts within {_fmt(settings.restart_window)} "
            f"(max_restarts = {settings.max_restarts})",
        )
    delay = backoff_delay(consecutive, settings, jitter)
    why = "restarting at once" if delay == 0 else f"restart {consecutive} in a row, backing off"
    return RestartDecision("restart", delay, consecutive, why)


def _fmt(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
