"""policies/stall.py: progress is a counter above its high-water mark or a phase change."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from policies.stall import check_progress, is_stalled, stall_deadline

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("high", "phase", "progress", "new_phase", "progressed", "advanced"),
    [
        ({"rows": 10}, "load", {"rows": 11}, "load", True, ("rows",)),
        ({"rows": 10}, "load", {"rows": 10.5}, "load", True, ("rows",)),
        ({"rows": 10}, "load", {"rows": 10, "pages": 0}, "load", True, ("pages",)),
        ({}, "", {"rows": 0}, "", True, ("rows",)),
        ({"rows": 10}, "load", {"rows": 10}, "fit", True, ("phase:fit",)),
        ({"rows": 10}, "load", {"rows": 12}, "fit", True, ("rows", "phase:fit")),
        ({"rows": 10}, "load", {"rows": 10}, "load", False, ()),
        ({"rows": 10}, "load", {}, "load", False, ()),
        ({"rows": 10}, "load", {"rows": 3}, "load", False, ()),
        ({"rows": 10, "pages": 2}, "load", {"rows": 10, "pages": 2}, "load", False, ()),
    ],
    ids=[
        "counter-up",
        "fractional-counter-up",
        "new-counter",
        "first-heartbeat",
        "phase-change",
        "counter-and-phase",
        "same-values",
        "no-counters",
        "counter-down",
        "several-unchanged",
    ],
)
def test_stall_policy_progress_table(
    high: dict[str, float],
    phase: str,
    progress: dict[str, float],
    new_phase: str,
    progressed: bool,
    advanced: tuple[str, ...],
) -> None:
    check = check_progress(high, phase, progress, new_phase)
    assert check.progressed is progressed
    assert check.advanced == advanced


def test_stall_policy_ignores_heartbeats_without_progress() -> None:
    high = {"pages": 3.0}
    for _ in range(5):
        check = check_progress(high, "crawl", {"pages": 3}, "crawl")
        assert not check.progressed
        high = check.high_water
    assert high == {"pages": 3.0}


def test_stall_policy_counter_back_to_old_high_is_not_progress() -> None:
    # a worker that restarts its loop (or a counter that dips) must not reset the stall clock
    high = {"ticks": 100.0}
    dipped = check_progress(high, "", {"ticks": 5}, "")
    assert not dipped.progressed
    assert dipped.high_water == {"ticks": 100.0}
    back = check_progress(dipped.high_water, "", {"ticks": 100}, "")
    assert not back.progressed
    above = check_progress(back.high_water, "", {"ticks": 101}, "")
    assert above.progressed
    assert above.advanced == ("ticks",)
    assert above.high_water == {"ticks": 101.0}


def test_stall_policy_does_not_mutate_the_callers_high_water() -> None:
    high = {"rows": 1.0}
    check = check_progress(high, "", {"rows": 5, "new": 1}, "")
    assert high == {"rows": 1.0}
    assert check.high_water == {"rows": 5.0, "new": 1.0}


def test_stall_policy_keeps_counters_missing_from_a_heartbeat() -> None:
    check = check_progress({"a": 4.0, "b": 2.0}, "", {"b": 3}, "")
    assert check.high_water == {"a": 4.0, "b": 3.0}


def test_stall_deadline_is_last_progress_plus_stall_after() -> None:
    assert stall_deadline(T0, 1200.0) == T0 + timedelta(minutes=20)
    assert stall_deadline(T0, 0.25) == T0 + timedelta(milliseconds=250)


@pytest.mark.parametrize(
    ("last_progress_at", "now", "stalled"),
    [
        (T0, T0, False),
        (T0, T0 + timedelta(seconds=59, microseconds=999_999), False),
        (T0, T0 + timedelta(seconds=60), True),
        (T0, T0 + timedelta(hours=3), True),
        (None, T0 + timedelta(days=1), False),
    ],
    ids=["just-progressed", "a-microsecond-early", "at-the-deadline", "long-after", "never-progressed"],
)
def test_stall_policy_is_stalled_at_the_deadline(
    last_progress_at: datetime | None, now: datetime, stalled: bool
) -> None:
    assert is_stalled(last_progress_at, 60.0, now) is stalled
