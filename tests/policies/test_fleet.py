"""policies/fleet.py: host states, who claims a stale-host episode, when the claim is done, the
alert's words, and a remote run as `after` sees it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from policies.fleet import (
    HostState,
    claim_done,
    duplicate_alert_key,
    duplicate_alert_text,
    duration_text,
    held_by_another,
    host_taken_text,
    host_state,
    may_judge_stale,
    remote_dep,
    should_claim,
    stale_alert_key,
    stale_alert_text,
    stale_claim_key,
)
from status.models import JobState

T0 = datetime(2026, 11, 25, 10, 2, 3, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("last_seen", "stopped_at", "now", "expected"),
    [
        (at(0), None, at(60), HostState.UP),
        (at(0), None, at(60.5), HostState.STALE),
        (at(0), at(0), at(600), HostState.STOPPED),
        (at(10), at(0), at(600), HostState.STALE),  # reported again after a stop, then went silent
    ],
    ids=["up-within-stale-after", "stale-past-it", "stopped-cleanly-never-stale", "back-after-a-stop-then-silent"],
)
def test_host_state(last_seen, stopped_at, now, expected) -> None:
    assert host_state(last_seen, stopped_at, now, 60.0) == expected


@pytest.mark.parametrize(
    ("owner", "lease_until", "done", "expected"),
    [
        (None, None, False, True),
        ("me", at(5), False, True),
        ("other", at(5), False, False),
        ("other", at(-1), False, True),
        ("other", at(-1), True, False),
        ("me", at(-1), True, False),
    ],
    ids=["unclaimed", "ours-not-done", "others-lease-alive", "others-lease-ran-out",
         "others-done", "ours-done-never-again"],
)
def test_should_claim(owner, lease_until, done, expected) -> None:
    assert should_claim(owner, lease_until, done, "me", at(0)) is expected


@pytest.mark.parametrize(
    ("sinks", "delivered", "active", "acked", "expected"),
    [
        ([], set(), True, False, True),
        (["hook"], set(), True, False, False),
        (["hook", "file"], {"hook"}, True, False, False),
        (["hook", "file"], {"hook", "file"}, True, False, True),
        (["hook"], set(), False, False, True),
        (["hook"], set(), True, True, True),
    ],
    ids=["no-sink-takes-it", "not-delivered-yet", "one-sink-of-two", "every-sink",
         "resolved-before-it-went-out", "acknowledged-before-it-went-out"],
)
def test_claim_done(sinks, delivered, active, acked, expected) -> None:
    assert claim_done(sinks, delivered, active, acked) is expected


def test_the_keys_name_the_host_and_the_episode() -> None:
    assert stale_alert_key("emubox") == "fleet:emubox:stale"  # not "host:": this host's own conditions
    assert stale_claim_key("emubox", T0) == "stale:emubox:2026-11-25T10:02:03.000000+00:00"
    assert stale_claim_key("emubox", T0) != stale_claim_key("emubox", at(1))


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (72, "1m 12s"), (3600, "1h"),
                                               (7500, "2h 5m"), (3 * 86400 + 4 * 3600 + 9, "3d 4h")])
def test_duration_text(seconds, text) -> None:
    assert duration_text(seconds) == text


def test_the_stale_alert_says_how_long_since_when_and_what_was_running() -> None:
    jobs = [{"name": "emulator", "state": "RUNNING", "pid": 4242, "message": "capturing"},
            {"name": "arb", "state": "PENDING", "waiting": "waiting for emulator to succeed"},
            {"name": "ingestor", "state": "STALLED", "pid": 77},
            {"name": "retrain", "state": "FAILED", "error": "unproven: model.pkl missing"}]
    title, detail = stale_alert_text("emubox", T0, at(72), jobs)
    assert title == ("host emubox: no report for 1m 12s (daemon silent since 10:02:03 UTC; "
                     "last seen with 2 jobs running)")
    assert detail.splitlines()[1:] == [
        "  arb: PENDING (waiting for emulator to succeed)",
        "  emulator: RUNNING pid 4242 (capturing)",
        "  ingestor: STALLED pid 77",
        "  retrain: FAILED (unproven: model.pkl missing)",
    ]
    assert "last seen with 1 job running" in stale_alert_text("emubox", T0, at(5), jobs[:1])[0]
    assert stale_alert_text("emubox", T0, at(5), [])[1].endswith("(no jobs)")


@pytest.mark.parametrize(
    ("state", "proofs", "expected"),
    [
        ("SUCCEEDED", [{"ok": True}, {"ok": True}], JobState.SUCCEEDED),
        ("SUCCEEDED", [], JobState.SUCCEEDED),
        ("SUCCEEDED", [{"ok": True}, {"ok": False}], JobState.FAILED),
        ("SUCCEEDED", [{"path": "x"}], JobState.FAILED),
        ("RUNNING", [], JobState.RUNNING),
        ("FAILED", [{"ok": True}], JobState.FAILED),
        ("SOMETHING_NEWER", [], JobState.PENDING),
    ],
    ids=["every-proof-ok", "no-proofs-declared", "one-proof-failed", "proof-without-verdict",
         "still-running", "failed", "unknown-state-is-not-success"],
)
def test_a_remote_run_counts_as_success_only_with_every_proof_ok(state, proofs, expected) -> None:
    dep = remote_dep(state, at(1), proofs)
    assert dep.state == expected and dep.ended_at == at(1)


@pytest.mark.parametrize(
    ("since", "now", "expected"),
    [(None, at(100), False), (at(0), at(59), False), (at(0), at(60), True)],
    ids=["never-exchanged", "not-watched-long-enough", "watched-stale-after"],
)
def test_may_judge_stale_only_after_watching_a_full_stale_after(since, now, expected) -> None:
    assert may_judge_stale(since, now, 60.0) is expected


@pytest.mark.parametrize(
    ("last_seen", "stopped_at", "same_machine", "alive_here", "expected"),
    [
        (at(-5), None, False, False, True),
        (at(-5), None, True, True, True),
        (at(-5), None, True, False, False),
        (at(-5), None, None, True, True),
        (at(-5), None, None, False, False),
        (at(-61), None, False, False, False),
        (at(-5), at(-5), False, True, False),
    ],
    ids=["fresh-from-another-machine", "fresh-and-its-daemon-alive-here", "own-previous-incarnation-killed",
         "unknown-machine-alive-here", "unknown-machine-nothing-here", "stale-report", "stopped-cleanly"],
)
def test_held_by_another(last_seen, stopped_at, same_machine, alive_here, expected) -> None:
    assert held_by_another(last_seen, stopped_at, at(0), 60.0, same_machine=same_machine,
                           alive_here=alive_here) is expected


def test_the_host_name_texts_name_the_host_and_the_other_daemon() -> None:
    assert duplicate_alert_key("alpha") == "fleet:alpha:duplicate"
    line = host_taken_text("alpha", 4242, "3d1219c7c4c5404aaa1f6d2a48adfda4", at(-3600), at(-2), at(0), 60.0)
    assert line.startswith("host alpha: another proofwatch daemon already reports as this host (pid 4242 on "
                           "machine 3d1219c7c4c5, running since 2026-11-25 09:02:03 UTC; last report 2s ago)")
    assert "\n" not in line and "1m" in line
    title, detail = duplicate_alert_text("alpha", 4242, "", at(-3600))
    assert title == ("host alpha: another proofwatch daemon reports as this host too "
                     "(pid 4242, running since 2026-11-25 09:02:03 UTC)")
    assert 'host = "alpha"' in detail
