"""policies/triggers.py: cron schedules in a fixed zone, `after` dependencies, not_before."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from policies.triggers import DepRun, after_ready, next_fire, not_before_ok
from status.models import JobState

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/30 * * * *", datetime(2026, 5, 1, 12, 0, tzinfo=UTC), datetime(2026, 5, 1, 12, 30, tzinfo=UTC)),
        ("*/30 * * * *", datetime(2026, 5, 1, 12, 29, 59, tzinfo=UTC), datetime(2026, 5, 1, 12, 30, tzinfo=UTC)),
        ("0 */6 * * *", datetime(2026, 5, 1, 18, 0, 1, tzinfo=UTC), datetime(2026, 5, 2, 0, 0, tzinfo=UTC)),
        ("0 9 * * 1", datetime(2026, 5, 1, 12, 0, tzinfo=UTC), datetime(2026, 5, 4, 9, 0, tzinfo=UTC)),
        ("* * * * * */10", datetime(2026, 5, 1, 12, 0, 3, tzinfo=UTC), datetime(2026, 5, 1, 12, 0, 10, tzinfo=UTC)),
        ("* * * * * */10", datetime(2026, 5, 1, 12, 0, 50, tzinfo=UTC), datetime(2026, 5, 1, 12, 1, 0, tzinfo=UTC)),
        ("30 * * * * 15", datetime(2026, 5, 1, 12, 30, 15, tzinfo=UTC), datetime(2026, 5, 1, 13, 30, 15, tzinfo=UTC)),
    ],
    ids=[
        "strictly-after-a-matching-time",
        "next-half-hour",
        "every-six-hours-rolls-over-midnight",
        "next-monday",
        "seconds-field",
        "seconds-field-rolls-minute",
        "minute-and-second",
    ],
)
def test_next_fire_in_utc(expression: str, after: datetime, expected: datetime) -> None:
    fire = next_fire(expression, after, UTC)
    assert fire == expected
    assert fire.tzinfo is not None


def test_next_fire_is_local_time_in_the_given_zone() -> None:
    # 12:00 UTC is 14:00 in Berlin (CEST): "0 9 * * *" fires at 09:00 Berlin = 07:00 UTC next day
    fire = next_fire("0 9 * * *", T0, BERLIN)
    assert fire == datetime(2026, 5, 2, 7, 0, tzinfo=UTC)
    assert fire.utcoffset() == timedelta(hours=2)


def test_next_fire_hourly_across_spring_forward_skips_the_missing_hour() -> None:
    # 2026-03-29 02:00 CET does not exist in Berlin; hourly runs stay one real hour apart
    t = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
    fires = []
    for _ in range(4):
        t = next_fire("0 * * * *", t, BERLIN)
        fires.append(t.astimezone(UTC))
    assert fires == [datetime(2026, 3, 29, h, 0, tzinfo=UTC) for h in range(0, 4)]


def test_next_fire_hourly_across_fall_back_fires_each_real_hour() -> None:
    # 2026-10-25 02:00-03:00 happens twice in Berlin; an hourly job runs in both of them
    t = datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN)
    fires = []
    for _ in range(5):
        t = next_fire("0 * * * *", t, BERLIN)
        fires.append(t.astimezone(UTC))
    assert fires == [datetime(2026, 10, 24, 23, 0, tzinfo=UTC)] + [
        datetime(2026, 10, 25, h, 0, tzinfo=UTC) for h in range(0, 4)
    ]


def _ok(minutes: int) -> DepRun:
    return DepRun(JobState.SUCCEEDED, T0 + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("deps", "last_started_at", "ready", "why"),
    [
        ({"ingest": _ok(0)}, None, True, "after ingest succeeded"),
        ({"ingest": None}, None, False, "waiting for ingest to succeed"),
        ({"ingest": DepRun(JobState.FAILED, T0)}, None, False, "waiting for ingest to succeed"),
        ({"ingest": DepRun(JobState.RUNNING, None)}, None, False, "waiting for ingest to succeed"),
        ({"ingest": _ok(0)}, T0 + timedelta(minutes=5), False, "waiting for a new success of ingest"),
        ({"ingest": _ok(0)}, T0, False, "waiting for a new success of ingest"),
        ({"ingest": _ok(10)}, T0 + timedelta(minutes=5), True, "after ingest succeeded"),
        ({"retrain": _ok(1), "emulator": _ok(2)}, None, True, "after emulator, retrain succeeded"),
        ({"retrain": _ok(1), "emulator": None, "arb": DepRun(JobState.STALLED, None)}, None, False,
         "waiting for arb to succeed, emulator to succeed"),
        ({"retrain": _ok(1), "emulator": _ok(2)}, T0 + timedelta(minutes=5), False,
         "waiting for a new success of emulator, retrain"),
        ({"retrain": _ok(1), "emulator": _ok(9)}, T0 + timedelta(minutes=5), True,
         "after emulator, retrain succeeded"),
    ],
    ids=[
        "dep-succeeded",
        "dep-never-ran",
        "dep-failed",
        "dep-still-running",
        "success-older-than-last-start",
        "success-at-last-start",
        "success-newer-than-last-start",
        "two-deps-succeeded",
        "waiting-names-every-missing-dep",
        "both-successes-already-consumed",
        "one-new-success-is-enough",
    ],
)
def test_after_ready_table(
    deps: dict[str, DepRun | None], last_started_at: datetime | None, ready: bool, why: str
) -> None:
    assert after_ready(deps, last_started_at) == (ready, why)


@pytest.mark.parametrize(
    ("not_before", "now", "ok"),
    [
        (None, T0, True),
        (T0 + timedelta(seconds=1), T0, False),
        (T0, T0, True),
        (T0 - timedelta(days=1), T0, True),
        (datetime(2026, 5, 1, 14, 0, tzinfo=BERLIN), T0, True),
        (datetime(2026, 5, 1, 14, 0, 1, tzinfo=BERLIN), T0, False),
    ],
    ids=["unset", "in-the-future", "exactly-now", "in-the-past", "same-instant-other-zone",
         "other-zone-one-second-ahead"],
)
def test_not_before_ok_table(not_before: datetime | None, now: datetime, ok: bool) -> None:
    assert not_before_ok(not_before, now) is ok
