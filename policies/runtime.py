"""Run-duration policy: a task that finished suspiciously fast is not trusted."""

from __future__ import annotations


def _fmt(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"


def too_fast(ran_for: float, min_runtime: float | None) -> str | None:
    """'finished in 2s, expected at least 5m' when a run ended before min_runtime, else None."""
    if min_runtime is None or ran_for >= min_runtime:
        return None
    return f"finished in {_fmt(ran_for)}, expected at least {_fmt(min_runtime)} (min_runtime)"
