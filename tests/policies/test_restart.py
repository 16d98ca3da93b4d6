"""policies/restart.py: immediate first restart, jittered doubling backoff, reset, FATAL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from policies.restart import JITTER, RestartSettings, backoff_delay, decide_restart

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = RestartSettings(
    backoff_initial=1.0,
    backoff_max=300.0,
    stable_after=60.0,
    max_restarts=10,
    restart_window=3600.0,
    fatal_retry_every=1800.0,
    no_restart_exit_codes=(78,),
)
JITTERS = (0.0, 0.5, 0.999)


def decide(
    *,
    exit_code: int | None = 1,
    ran_for: float = 0.5,
    consecutive_before: int = 0,
    recent: list[datetime] | None = None,
    jitter: float = 0.5,
    settings: RestartSettings = SETTINGS,
):  # type: ignore[no-untyped-def]
    return decide_restart(
        settings,
        exit_code=exit_code,
        ran_for=ran_for,
        consecutive_before=consecutive_before,
        recent_restarts=recent or [],
        now=NOW,
        jitter=jitter,
    )


@pytest.mark.parametrize("jitter", JITTERS, ids=lambda j: f"jitter={j}")
def test_restart_policy_first_restart_is_immediate(jitter: float) -> None:
    decision = decide(consecutive_before=0, jitter=jitter)
    assert decision.action == "restart"
    assert decision.delay == 0.0
    assert decision.consecutive == 1
    assert decision.reason == "restarting at once"


@pytest.mark.parametrize(
    ("consecutive", "expected"),
    [(2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 128.0), (10, 256.0)],
    ids=["2nd", "3rd", "4th", "5th", "9th", "10th"],
)
def test_restart_policy_doubles_from_backoff_initial(consecutive: int, expected: float) -> None:
    # jitter 0.5 is the midpoint of the +-10 % band: the bare doubling sequence
    assert backoff_delay(consecutive, SETTINGS, 0.5) == pytest.approx(expected)


def test_restart_policy_second_restart_backs_off_from_backoff_initial() -> None:
    settings = RestartSettings(backoff_initial=5.0, backoff_max=300.0)
    decision = decide(consecutive_before=1, jitter=0.5, settings=settings)
    assert decision.action == "restart"
    assert decision.consecutive == 2
    assert decision.delay == pytest.approx(5.0)
    assert decision.reason == "restart 2 in a row, backing off"


def test_restart_policy_delays_grow_strictly_whatever_the_jitter() -> None:
    consecutive = 2
    while backoff_delay(consecutive + 1, SETTINGS, 0.0) < SETTINGS.backoff_max:
        worst_now = max(backoff_delay(consecutive, SETTINGS, j) for j in JITTERS)
        best_next = min(backoff_delay(consecutive + 1, SETTINGS, j) for j in JITTERS)
        assert worst_now < best_next, f"restart {consecutive} -> {consecutive + 1} did not grow"
        consecutive += 1
    assert consecutive >= 9  # the loop really walked the doubling range (1 s .. 256 s)


@pytest.mark.parametrize("consecutive", [10, 11, 20, 64, 1100], ids=lambda c: f"restart-{c}")
@pytest.mark.parametrize("jitter", JITTERS, ids=lambda j: f"jitter={j}")
def test_restart_policy_caps_delay_at_backoff_max(consecutive: int, jitter: float) -> None:
    delay = backoff_delay(consecutive, SETTINGS, jitter)
    assert delay <= SETTINGS.backoff_max
    if consecutive >= 11:  # 512 s * 0.9 is already above the 300 s cap
        assert delay == SETTINGS.backoff_max


def test_restart_policy_survives_a_service_that_has_crashed_for_days() -> None:
    # regression: 2 ** (consecutive - 2) overflowed float after ~1026 unstable restarts
    decision = decide(consecutive_before=5000, jitter=0.999)
    assert decision.action == "restart"
    assert decision.delay == SETTINGS.backoff_max


@pytest.mark.parametrize("consecutive", [2, 3, 5, 8], ids=lambda c: f"restart-{c}")
def test_restart_policy_jitter_stays_within_ten_percent(consecutive: int) -> None:
    base = SETTINGS.backoff_initial * 2 ** (consecutive - 2)
    low = backoff_delay(consecutive, SETTINGS, 0.0)
    high = backoff_delay(consecutive, SETTINGS, 0.999999)
    assert JITTER == 0.1
    assert low == pytest.approx(base * 0.9)
    assert base * 0.9 <= high < base * 1.1
    assert high == pytest.approx(base * 1.1, rel=1e-5)


@pytest.mark.parametrize(
    ("ran_for", "consecutive_before", "consecutive", "delay"),
    [
        (60.0, 7, 1, 0.0),
        (3600.0, 7, 1, 0.0),
        (59.9, 7, 8, 64.0),
        (0.0, 0, 1, 0.0),
    ],
    ids=["exactly-stable_after-resets", "long-run-resets", "just-short-keeps-counting", "first-death"],
)
def test_restart_policy_resets_backoff_after_a_stable_run(
    ran_for: float, consecutive_before: int, consecutive: int, delay: float
) -> None:
    decision = decide(ran_for=ran_for, consecutive_before=consecutive_before, jitter=0.5)
    assert decision.action == "restart"
    assert decision.consecutive == consecutive
    assert decision.delay == pytest.approx(delay)


def test_restart_policy_goes_fatal_when_the_budget_in_the_window_is_spent() -> None:
    recent = [NOW - timedelta(minutes=m) for m in range(0, 50, 5)]  # 10 within the hour
    decision = decide(consecutive_before=3, recent=recent)
    assert decision.action == "fatal"
    assert decision.delay == SETTINGS.fatal_retry_every
    assert decision.reason == "10 restarts within 1h (max_restarts = 10)"


def test_restart_policy_ignores_restarts_older_than_the_window() -> None:
    old = [NOW - timedelta(hours=1, seconds=1 + m) for m in range(20)]
    recent = [NOW - timedelta(minutes=m) for m in range(9)]  # one short of the budget
    decision = decide(consecutive_before=3, recent=old + recent, jitter=0.5)
    assert decision.action == "restart"
    assert decision.delay == pytest.approx(4.0)  # 4th in a row


@pytest.mark.parametrize(
    ("window", "text"),
    [(600.0, "10m"), (86400.0, "1d"), (90.0, "90s")],
    ids=["minutes", "days", "seconds"],
)
def test_restart_policy_fatal_reason_names_window_and_budget(window: float, text: str) -> None:
    settings = RestartSettings(max_restarts=2, restart_window=window, fatal_retry_every=120.0)
    decision = decide(recent=[NOW, NOW], settings=settings)
    assert decision.action == "fatal"
    assert decision.delay == 120.0
    assert decision.reason == f"2 restarts within {text} (max_restarts = 2)"


@pytest.mark.parametrize(
    ("ran_for", "consecutive_before"),
    [(0.1, 0), (3600.0, 4)],
    ids=["quick-death", "after-stable-run"],
)
def test_restart_policy_no_restart_exit_code_is_fatal_at_once(
    ran_for: float, consecutive_before: int
) -> None:
    decision = decide(exit_code=78, ran_for=ran_for, consecutive_before=consecutive_before)
    assert decision.action == "fatal"
    assert decision.delay == SETTINGS.fatal_retry_every
    assert decision.reason == "exit code 78 is in no_restart_exit_codes"


@pytest.mark.parametrize("exit_code", [0, 1, 77, None], ids=["0", "1", "77", "signal"])
def test_restart_policy_other_exit_codes_restart(exit_code: int | None) -> None:
    assert decide(exit_code=exit_code).action == "restart"
