"""policies/alerting.py: one notification per condition, reminders, escalation, resolution,
silences, routing filters, group_wait batching and inhibition under a critical host alert."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pytest

from policies.alerting import (AlertState, AlertView, Notification, NotifySettings, NotifyState,
                               Plan, SinkRule, effective_severity, plan_notifications, silence,
                               unsilence)
from status.models import AlertStatus, Severity

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
ALL = [SinkRule(name="all")]
NOW = NotifySettings(repeat_every=3600, group_wait=0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(key: str = "retrain:stalled", severity: Severity = Severity.CRITICAL, *,
          first: float = 0, state: AlertState = AlertState.FIRING,
          escalate_after: float | None = None) -> AlertView:
    job = None if key.startswith("host:") else key.split(":")[0]
    return AlertView(key=key, job=job, severity=severity, title=f"{key} title", detail="why",
                     first_seen=at(first), last_seen=at(first), state=state,
                     escalate_after=escalate_after)


class Run:
    """Feeds plan_notifications call after call, carrying the state like the dispatcher does."""

    def __init__(self, sinks: Sequence[SinkRule] = ALL, settings: NotifySettings = NOW) -> None:
        self.sinks, self.settings, self.state = sinks, settings, NotifyState()

    def __call__(self, seconds: float, *alerts: AlertView) -> Plan:
        plan = plan_notifications(alerts, self.sinks, self.state, at(seconds), self.settings)
        self.state = plan.state
        return plan


def events(plan: Plan, sink: str = "all") -> list[tuple[str, str]]:
    return [(i.key, i.event) for n in plan.notifications if n.sink == sink for i in n.items]


def test_new_alert_sends_one_notification_and_no_more_until_repeat() -> None:
    run = Run()
    first = run(0, alert())
    assert events(first) == [("retrain:stalled", "new")]
    note = first.notifications[0]
    assert (note.sink, note.severity, note.created_at) == ("all", Severity.CRITICAL, T0)
    assert first.next_due == at(3600)
    for t in (1, 60, 3599):
        assert run(t, alert()).notifications == []


def test_reminder_every_repeat_every_while_firing() -> None:
    run = Run()
    run(0, alert())
    assert events(run(3600, alert())) == [("retrain:stalled", "repeat")]
    assert run(3601, alert()).next_due == at(7200)
    assert events(run(7200, alert())) == [("retrain:stalled", "repeat")]


def test_acknowledged_alert_gets_no_reminder_nor_escalation_but_is_resolved() -> None:
    run = Run(settings=NotifySettings(repeat_every=60, escalate_after=60, group_wait=0))
    run(0, alert(severity=Severity.WARNING))
    acked = alert(severity=Severity.WARNING, state=AlertState.ACKNOWLEDGED)
    assert run(600, acked).notifications == []
    assert run(600, acked).next_due is None
    resolved = run(700)
    assert events(resolved) == [("retrain:stalled", "resolved")]
    assert resolved.notifications[0].items[0].severity is Severity.WARNING


def test_warning_escalates_to_critical_after_escalate_after() -> None:
    run = Run(settings=NotifySettings(repeat_every=3600, escalate_after=600, group_wait=0))
    assert events(run(0, alert(severity=Severity.WARNING))) == [("retrain:stalled", "new")]
    assert run(0, alert(severity=Severity.WARNING)).next_due == at(600)
    assert run(599, alert(severity=Severity.WARNING)).notifications == []
    plan = run(600, alert(severity=Severity.WARNING))
    item = plan.notifications[0].items[0]
    assert (item.event, item.previous_severity, item.severity) == ("escalated", Severity.WARNING,
                                                                   Severity.CRITICAL)
    assert plan.next_due == at(600 + 3600)  # the reminder clock restarts; nothing above critical
    assert run(1200, alert(severity=Severity.WARNING)).notifications == []


def test_per_alert_escalate_after_overrides_the_setting_one_level_per_period() -> None:
    run = Run(settings=NotifySettings(repeat_every=3600, escalate_after=10_000, group_wait=0))
    view = alert(severity=Severity.INFO, escalate_after=300)  # e.g. 3 x stall_after
    run(0, view)
    assert [(i.severity, i.event) for n in run(300, view).notifications for i in n.items] == [
        (Severity.WARNING, "escalated")]
    assert [(i.severity, i.event) for n in run(600, view).notifications for i in n.items] == [
        (Severity.CRITICAL, "escalated")]
    assert effective_severity(alert(severity=Severity.INFO), NOW, at(10_000)) is Severity.INFO


def test_a_caller_raised_severity_is_an_escalation() -> None:
    run = Run()
    run(0, alert(severity=Severity.WARNING))
    assert events(run(5, alert(severity=Severity.CRITICAL))) == [("retrain:stalled", "escalated")]


@pytest.mark.parametrize("how", ["absent", "resolved-view"])
def test_resolved_note_when_the_condition_clears(how: str) -> None:
    run = Run()
    run(0, alert())
    gone = () if how == "absent" else (alert(state=AlertState.RESOLVED),)
    plan = run(30, *gone)
    assert events(plan) == [("retrain:stalled", "resolved")]
    assert plan.notifications[0].items[0].state is AlertState.RESOLVED
    assert plan.state.alerts == {}
    assert plan.next_due is None
    assert run(40).notifications == []


@pytest.mark.parametrize("target", ["retrain", "retrain:stalled"], ids=["job", "key"])
def test_silenced_alert_is_not_sent_until_the_silence_expires(target: str) -> None:
    run = Run()
    run.state = silence(run.state, target, 600, T0, reason="maintenance")
    plan = run(0, alert())
    assert plan.notifications == []
    assert plan.suppressed == [("retrain:stalled", "new")]
    assert plan.next_due == at(600)
    assert run(599, alert()).notifications == []
    expired = run(600, alert())
    assert events(expired) == [("retrain:stalled", "new")]
    assert expired.state.silences == ()


def test_silence_mutes_only_its_target_and_can_be_lifted() -> None:
    run = Run()
    run.state = silence(run.state, "arb", 600, T0)
    assert events(run(0, alert(), alert("arb:failed"))) == [("retrain:stalled", "new")]
    run.state = unsilence(run.state, "arb")
    assert events(run(1, alert(), alert("arb:failed"))) == [("arb:failed", "new")]


def test_alert_raised_and_cleared_under_a_silence_sends_nothing() -> None:
    run = Run()
    run.state = silence(run.state, "retrain", 600, T0)
    run(0, alert())
    assert run(10).notifications == []
    assert run(700).notifications == []


@pytest.mark.parametrize(("rule", "key", "severity", "sent"), [
    (SinkRule(name="s", min_severity=Severity.CRITICAL), "retrain:stalled", Severity.WARNING, False),
    (SinkRule(name="s", min_severity=Severity.CRITICAL), "retrain:stalled", Severity.CRITICAL, True),
    (SinkRule(name="s", min_severity=Severity.WARNING), "retrain:stalled", Severity.INFO, False),
    (SinkRule(name="s", jobs=("retrain",)), "retrain:stalled", Severity.INFO, True),
    (SinkRule(name="s", jobs=("arb",)), "retrain:stalled", Severity.CRITICAL, False),
    (SinkRule(name="s", jobs=("arb",)), "host:disk:/", Severity.CRITICAL, False),
    (SinkRule(name="s"), "host:disk:/", Severity.INFO, True),
], ids=["below-min", "at-min", "info-under-warning", "job-listed", "job-not-listed",
        "host-alert-under-job-filter", "no-filter"])
def test_sink_filters_min_severity_and_jobs(rule: SinkRule, key: str, severity: Severity,
                                            sent: bool) -> None:
    plan = Run(sinks=[rule])(0, alert(key, severity))
    assert bool(plan.notifications) is sent


def test_alerts_within_group_wait_go_out_as_one_message_per_sink() -> None:
    sinks = [SinkRule(name="a"), SinkRule(name="b", min_severity=Severity.CRITICAL)]
    run = Run(sinks=sinks, settings=NotifySettings(group_wait=10))
    first = alert("retrain:stalled", Severity.CRITICAL)
    second = alert("arb:failed", Severity.WARNING, first=3)
    assert run(0, first).notifications == []
    assert run(0, first).next_due == at(10)
    assert run(3, first, second).notifications == []
    plan = run(10, first, second)
    by_sink = {n.sink: n for n in plan.notifications}
    assert [(i.key, i.event) for i in by_sink["a"].items] == [
        ("retrain:stalled", "new"), ("arb:failed", "new")]
    assert [i.key for i in by_sink["b"].items] == ["retrain:stalled"]
    assert len(plan.notifications) == 2
    assert run(11, first, second).notifications == []


def test_group_coalesces_events_of_one_alert() -> None:
    run = Run(settings=NotifySettings(group_wait=10))
    run(0, alert(severity=Severity.WARNING))
    run(5, alert(severity=Severity.CRITICAL))
    plan = run(10, alert(severity=Severity.CRITICAL))
    [item] = plan.notifications[0].items
    assert (item.event, item.severity) == ("new", Severity.CRITICAL)


def test_job_alert_raised_under_a_critical_host_alert_is_attached_to_it() -> None:
    run = Run(settings=NotifySettings(repeat_every=3600, group_wait=10))
    host = alert("host:disk:/")
    job = alert("retrain:failed", first=2)
    run(0, host)
    plan = run(10, host, job)
    [note] = plan.notifications
    assert [(i.key, i.inhibited_by) for i in note.items] == [
        ("host:disk:/", None), ("retrain:failed", "host:disk:/")]
    late = alert("arb:crashed", first=60)
    assert run(60, host, job, late).notifications == []  # held, not sent alone
    assert run(3600, host, job, late).notifications == []  # the reminder waits group_wait too
    reminder = run(3610, host, job, late)
    assert [(i.key, i.event, i.inhibited_by) for n in reminder.notifications for i in n.items] == [
        ("host:disk:/", "repeat", None), ("arb:crashed", "new", "host:disk:/"),
        ("retrain:failed", "repeat", "host:disk:/")]


def test_host_resolution_carries_the_held_job_alerts() -> None:
    run = Run(settings=NotifySettings(repeat_every=3600, group_wait=0))
    host, job = alert("host:disk:/"), alert("retrain:failed", first=60)
    run(0, host)
    assert run(60, host, job).notifications == []
    plan = run(120, job)
    assert [(i.key, i.event, i.inhibited_by) for n in plan.notifications for i in n.items] == [
        ("host:disk:/", "resolved", None), ("retrain:failed", "new", "host:disk:/")]
    assert events(run(120 + 3600, job)) == [("retrain:failed", "repeat")]  # on its own now


def test_inhibition_spares_earlier_alerts_warning_hosts_and_sinks_without_the_host() -> None:
    run = Run(sinks=[SinkRule(name="all"), SinkRule(name="retrain-only", jobs=("retrain",))])
    before = alert("retrain:stalled")
    run(0, before)
    host = alert("host:disk:/", first=10)
    late = alert("retrain:failed", first=20)
    plan = run(20, before, host, late)
    [note] = [n for n in plan.notifications if n.sink == "all"]
    assert [(i.key, i.inhibited_by) for i in note.items] == [  # `before` is not re-sent
        ("host:disk:/", None), ("retrain:failed", "host:disk:/")]
    assert events(plan, "retrain-only") == [("retrain:failed", "new")]  # never gets the host alert
    reminder = run(3600, before, host, late)
    assert [(i.key, i.event, i.inhibited_by) for n in reminder.notifications if n.sink == "all"
            for i in n.items] == [("retrain:stalled", "repeat", None)]  # raised before the host
    warn = Run()
    warn(0, alert("host:cpu", Severity.WARNING))
    assert events(warn(5, alert("host:cpu", Severity.WARNING), alert("arb:failed", first=5))) == [
        ("arb:failed", "new")]


def test_silenced_host_alert_does_not_inhibit() -> None:
    run = Run()
    run.state = silence(run.state, "host:disk:/", 600, T0)
    assert events(run(0, alert("host:disk:/"), alert("arb:failed"))) == [("arb:failed", "new")]


def test_state_round_trips_through_json_and_ids_are_deterministic() -> None:
    run = Run(settings=NotifySettings(group_wait=10))
    run.state = silence(run.state, "arb", 60, T0)
    run(0, alert("host:disk:/"), alert("retrain:failed"), alert("arb:failed"))
    loaded = NotifyState.model_validate(json.loads(json.dumps(run.state.model_dump(mode="json"))))
    assert loaded == run.state
    again = plan_notifications([alert("host:disk:/"), alert("retrain:failed")], ALL, loaded, at(10),
                               NotifySettings(group_wait=10))
    plan = run(10, alert("host:disk:/"), alert("retrain:failed"))
    assert [n.id for n in again.notifications] == [n.id for n in plan.notifications]
    assert all(isinstance(n, Notification) and len(n.id) == 32 for n in plan.notifications)


def test_alert_view_from_status() -> None:
    status = AlertStatus(key="arb:failed", job="arb", severity=Severity.WARNING, title="t", detail="d",
                         first_seen=T0, last_seen=at(5), count=3, run_id="r1")
    view = AlertView.from_status(status, escalate_after=60)
    assert (view.key, view.count, view.run_id, view.escalate_after) == ("arb:failed", 3, "r1", 60)
    assert view.state is AlertState.FIRING
