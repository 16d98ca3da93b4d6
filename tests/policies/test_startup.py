"""policies/startup.py: what a process exit means, and when a run without a heartbeat is SILENT."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from policies.startup import classify_exit, describe_exit, is_silent, silent_deadline
from status.models import JobState

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kind", "saw_heartbeat", "exit_code", "signal_name", "stop_reason", "state", "reason"),
    [
        ("task", False, 3, None, None,
         JobState.CRASHED, "exited with code 3 before its first heartbeat"),
        ("service", False, 3, None, None,
         JobState.CRASHED, "exited with code 3 before its first heartbeat"),
        ("task", False, None, "SIGKILL", None,
         JobState.CRASHED, "killed by SIGKILL before its first heartbeat"),
        ("task", False, 0, None, None,
         JobState.CRASHED, "exited with code 0 before its first heartbeat"),
        ("task", True, 0, None, None,
         JobState.VERIFYING, "exited with code 0; verifying proofs"),
        ("task", True, 1, None, None, JobState.FAILED, "exited with code 1"),
        ("task", True, None, "SIGSEGV", None, JobState.FAILED, "killed by SIGSEGV"),
        ("task", True, None, None, None, JobState.FAILED, "exited (code unknown)"),
        ("service", True, 0, None, None, JobState.FAILED, "service exited with code 0"),
        ("service", True, 2, None, None, JobState.FAILED, "service exited with code 2"),
        ("service", True, None, "SIGTERM", None, JobState.FAILED, "service killed by SIGTERM"),
        ("task", True, None, "SIGTERM", "operator",
         JobState.STOPPED, "stopped: operator (killed by SIGTERM)"),
        ("service", False, 0, None, "supervisor shutting down",
         JobState.STOPPED, "stopped: supervisor shutting down (exited with code 0)"),
    ],
    ids=[
        "task-dies-before-heartbeat",
        "service-dies-before-heartbeat",
        "sigkill-before-heartbeat",
        "exit-0-without-any-heartbeat-is-a-crash",
        "task-exit-0-needs-proofs",
        "task-exit-1",
        "task-killed-by-signal",
        "task-exit-unknown",
        "service-exit-0-is-a-failure",
        "service-exit-2",
        "service-killed",
        "operator-stop-beats-everything",
        "stop-before-first-heartbeat-is-not-a-crash",
    ],
)
def test_classify_exit_table(
    kind: str,
    saw_heartbeat: bool,
    exit_code: int | None,
    signal_name: str | None,
    stop_reason: str | None,
    state: JobState,
    reason: str,
) -> None:
    outcome = classify_exit(kind, saw_heartbeat, exit_code, signal_name, stop_reason)
    assert outcome.state == state
    assert outcome.reason == reason


def test_describe_exit_prefers_the_signal_over_the_code() -> None:
    assert describe_exit(-9, "SIGKILL") == "killed by SIGKILL"


@pytest.mark.parametrize(
    ("first_beat_at", "now", "silent"),
    [
        (None, T0, False),
        (None, T0 + timedelta(seconds=59, microseconds=999_999), False),
        (None, T0 + timedelta(seconds=60), True),
        (None, T0 + timedelta(hours=1), True),
        (T0 + timedelta(seconds=1), T0 + timedelta(hours=1), False),
        (T0 + timedelta(seconds=61), T0 + timedelta(hours=1), False),
    ],
    ids=[
        "just-started",
        "a-microsecond-before-grace",
        "at-grace",
        "long-after-grace",
        "beat-in-time",
        "late-first-beat-still-counts",
    ],
)
def test_startup_policy_is_silent_without_a_first_heartbeat(
    first_beat_at: datetime | None, now: datetime, silent: bool
) -> None:
    assert is_silent(T0, first_beat_at, 60.0, now) is silent


def test_silent_deadline_is_start_plus_grace() -> None:
    assert silent_deadline(T0, 20.0) == T0 + timedelta(seconds=20)
