"""Alert notification policy: which alerts to tell which sink about, when, and in what message.

`plan_notifications(alerts, sinks, state, now, settings) -> Plan` is the whole policy. The
caller (the daemon's notification dispatcher) calls it whenever the active alerts change and
again at `Plan.next_due`; it persists `Plan.state` together with `Plan.notifications` (the
outbox) before anything is sent, and passes that state back in on the next call. The function
is pure: no clock, no I/O, no randomness; same input, same output (notification ids included).

Per alert (tracked by key in `NotifyState.alerts`), one event is decided per call, at most:
    new        the alert is firing and has not been announced yet (one per condition)
    escalated  its effective severity rose above the severity last announced
    repeat     still firing, unacknowledged, and `repeat_every` passed since its last event
    resolved   it was announced and is gone from `alerts` (or given with state "resolved")
Acknowledged alerts get no reminders and do not escalate; they still get "resolved". An alert
acknowledged before it was ever announced is never announced (nor resolved).

Effective severity: the alert's own severity, raised one level (info -> warning -> critical)
for each full `escalate_after` it has been active since `first_seen`. `AlertView.escalate_after`
(e.g. 3 x the job's stall_after) overrides `NotifySettings.escalate_after`; None = never.

Silences (`silence(state, target, seconds, now)`): the target is a job name or an alert key.
A due event of a silenced alert is suppressed (listed in `Plan.suppressed`) and the alert's
tracking is not advanced, so when the silence expires by itself (it is dropped once `until`
passes) whatever is still due goes out: "new" if it was never announced, otherwise
"escalated"/"repeat". A resolution during a silence is dropped.

Routing: an event goes to every sink whose `SinkRule` accepts it: severity >= min_severity
(a "resolved" event carries the severity last announced) and, when the rule lists `jobs`, the
alert's job is among them (alerts without a job, the host ones, then do not match).

Grouping: each sink has a queue. The first event into an empty queue opens it; at
`opened_at + group_wait` the queue is flushed as ONE `Notification` holding every event
collected meanwhile. Events of the same key within a queue coalesce (the later one wins,
except that "new" followed by "escalated"/"repeat" stays "new" at the later severity; an
alert that fires and clears within group_wait is reported once, as "resolved").
group_wait = 0 sends at once.

Inhibition: an inhibitor is a host alert (key "host:...") that is firing (not acknowledged),
effectively critical and not silenced. A job alert raised while an inhibitor fires
(first_seen >= the inhibitor's first_seen; the earliest such inhibitor wins) gets
`inhibited_by=<host key>`: on sinks that also receive the inhibitor, its events are held
(`SinkQueue.held`) instead of queued, and attached to the next message that carries an
event of the inhibitor (its "new", a reminder, an escalation or its "resolved"), after the
inhibitor's own items. Held events whose inhibitor is no longer active (and is not in the
queue) are released into the queue and sent alone. Job alerts raised before the host alert
keep being sent normally: they are not "plainly caused" by it.

`Plan.next_due` is the earliest time a later call can have something to do (a queue flush, a
reminder, an escalation, the end of a silence over a due alert); None when nothing is pending.
`NotifyState` is a frozen pydantic model: `model_dump(mode="json")` / `model_validate` persist it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from status.models import AlertStatus, Severity

__all__ = [
    "AlertState", "AlertView", "EventKind", "Item", "Notification", "NotifySettings",
    "NotifyState", "Plan", "SinkQueue", "SinkRule", "Silence", "Tracked", "active_silences",
    "effective_severity", "plan_notifications", "severity_rank", "silence", "unsilence",
]

_LEVELS = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)
EventKind = Literal["new", "repeat", "escalated", "resolved"]


def severity_rank(severity: Severity) -> int:
    """0 for info, 1 for warning, 2 for critical."""
    return _LEVELS.index(severity)


class AlertState(StrEnum):
    """Where an alert stands for the operator."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlertView(_Frozen):
    """An alert as the policy sees it (built by the daemon from its alert book)."""

    key: str
    severity: Severity
    title: str
    detail: str = ""
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    job: str | None = None
    run_id: str | None = None
    state: AlertState = AlertState.FIRING
    escalate_after: float | None = None  # seconds; overrides NotifySettings.escalate_after

    @classmethod
    def from_status(cls, alert: AlertStatus, *, state: AlertState = AlertState.FIRING,
                    escalate_after: float | None = None) -> AlertView:
        """The view of an active alert as status.json shows it."""
        return cls(key=alert.key, severity=alert.severity, title=alert.title, detail=alert.detail,
                   first_seen=alert.first_seen, last_seen=alert.last_seen, count=alert.count,
                   job=alert.job, run_id=alert.run_id, state=state, escalate_after=escalate_after)


class SinkRule(_Frozen):
    """Which events one sink takes."""

    name: str
    min_severity: Severity = Severity.INFO
    jobs: tuple[str, ...] = ()

    def accepts(self, job: str | None, severity: Severity) -> bool:
        """Whether an event of `job` at `severity` goes to this sink."""
        if severity_rank(severity) < severity_rank(self.min_severity):
            return False
        return not self.jobs or job in self.jobs


class NotifySettings(_Frozen):
    """Timing ([alerts] in config.toml), in seconds."""

    repeat_every: float = 3600.0
    escalate_after: float | None = None
    group_wait: float = 10.0


class Silence(_Frozen):
    """Mutes the notifications of a job (all its alerts) or of one alert key until `until`."""

    target: str
    created_at: datetime
    until: datetime
    reason: str = ""

    def matches(self, alert: AlertView) -> bool:
        """Whether this silence covers `alert`."""
        return self.target in (alert.key, alert.job)


class Item(_Frozen):
    """One alert's event inside a notification."""

    key: str
    job: str | None
    run_id: str | None
    event: EventKind
    severity: Severity
    previous_severity: Severity | None = None
    title: str
    detail: str
    state: AlertState
    first_seen: datetime
    last_seen: datetime
    count: int
    at: datetime
    inhibited_by: str | None = None


class Notification(_Frozen):
    """One message to one sink."""

    id: str
    sink: str
    created_at: datetime
    severity: Severity
    items: tuple[Item, ...]


class Tracked(_Frozen):
    """What has been decided about one active alert."""

    view: AlertView
    severity: Severity  # the effective severity last announced
    announced: bool = False
    notified_at: datetime | None = None
    inhibited_by: str | None = None


class SinkQueue(_Frozen):
    """Events waiting for a sink's group flush, and events held under an inhibitor."""

    opened_at: datetime | None = None
    items: tuple[Item, ...] = ()
    held: tuple[Item, ...] = ()


class NotifyState(_Frozen):
    """Everything the policy remembers between calls."""

    alerts: dict[str, Tracked] = {}
    silences: tuple[Silence, ...] = ()
    queues: dict[str, SinkQueue] = {}


class Plan(NamedTuple):
    """What `plan_notifications` decided."""

    notifications: list[Notification]
    state: NotifyState
    next_due: datetime | None
    suppressed: list[tuple[str, str]]  # (alert key, event) muted by a silence


def _escalate_after(alert: AlertView, settings: NotifySettings) -> float | None:
    after = alert.escalate_after if alert.escalate_after is not None else settings.escalate_after
    return after if after is not None and after > 0 else None


def effective_severity(alert: AlertView, settings: NotifySettings, now: datetime) -> Severity:
    """The alert's severity raised one level per full `escalate_after` it has been active."""
    after = _escalate_after(alert, settings)
    if after is None or alert.state is not AlertState.FIRING:
        return alert.severity
    steps = int(max(0.0, (now - alert.first_seen).total_seconds()) // after)
    return _LEVELS[min(2, severity_rank(alert.severity) + steps)]


def _next_escalation(alert: AlertView, above: Severity, settings: NotifySettings) -> datetime | None:
    after = _escalate_after(alert, settings)
    if after is None or above is Severity.CRITICAL or alert.state is not AlertState.FIRING:
        return None
    steps = max(1, severity_rank(above) + 1 - severity_rank(alert.severity))
    return alert.first_seen + timedelta(seconds=steps * after)


def silence(
    state: NotifyState, target: str, seconds: float, now: datetime, reason: str = ""
) -> NotifyState:
    """Mute `target` (a job name or an alert key) for `seconds`; replaces its earlier silence."""
    kept = tuple(s for s in state.silences if s.target != target)
    new = Silence(target=target, created_at=now, until=now + timedelta(seconds=seconds), reason=reason)
    return state.model_copy(update={"silences": (*kept, new)})


def unsilence(state: NotifyState, target: str) -> NotifyState:
    """Lift the silence on `target`, if any."""
    return state.model_copy(update={"silences": tuple(s for s in state.silences if s.target != target)})


def active_silences(state: NotifyState, now: datetime) -> tuple[Silence, ...]:
    """Silences that have not expired at `now`."""
    return tuple(s for s in state.silences if s.until > now)


def _item(alert: AlertView, event: EventKind, severity: Severity, now: datetime, *,
          previous: Severity | None = None, inhibited_by: str | None = None) -> Item:
    state = AlertState.RESOLVED if event == "resolved" else alert.state
    return Item(key=alert.key, job=alert.job, run_id=alert.run_id, event=event, severity=severity,
                previous_severity=previous, title=alert.title, detail=alert.detail, state=state,
                first_seen=alert.first_seen, last_seen=alert.last_seen, count=alert.count,
                at=now, inhibited_by=inhibited_by)


def _coalesce(items: tuple[Item, ...], new: Item) -> tuple[Item, ...]:
    for i, old in enumerate(items):
        if old.key == new.key:
            if old.event == "new" and new.event != "resolved":
                new = new.model_copy(update={"event": "new", "previous_severity": None})
            return (*items[:i], *items[i + 1:], new)
    return (*items, new)


def _notification_id(sink: str, now: datetime, items: Sequence[Item]) -> str:
    text = "|".join([sink, now.isoformat(), *(f"{i.key}:{i.event}:{i.at.isoformat()}" for i in items)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _inhibitor_of(alert: AlertView, inhibitors: dict[str, AlertView]) -> str | None:
    if alert.job is None or alert.key.startswith("host:"):
        return None
    causes = [h for h in inhibitors.values() if h.first_seen <= alert.first_seen]
    return min(causes, key=lambda h: (h.first_seen, h.key)).key if causes else None


def plan_notifications(
    alerts: Sequence[AlertView],
    sinks: Sequence[SinkRule],
    state: NotifyState,
    now: datetime,
    settings: NotifySettings | None = None,
) -> Plan:
    """Decide the notifications due at `now` and the state to persist with them."""
    settings = settings or NotifySettings()
    silences = active_silences(state, now)
    active = {a.key: a for a in alerts if a.state is not AlertState.RESOLVED}
    ended = {a.key: a for a in alerts if a.state is AlertState.RESOLVED}
    sev = {k: effective_severity(a, settings, now) for k, a in active.items()}

    def muted(alert: AlertView) -> bool:
        return any(s.matches(alert) for s in silences)

    inhibitors = {k: a for k, a in active.items() if k.startswith("host:") and not muted(a)
                  and a.state is AlertState.FIRING and sev[k] is Severity.CRITICAL}
    tracked = dict(state.alerts)
    events: list[Item] = []
    suppressed: list[tuple[str, str]] = []

    for key, t in sorted(state.alerts.items()):
        if key in active:
            continue
        del tracked[key]
        final = ended.get(key, t.view)
        if not t.announced:
            continue
        if muted(final):
            suppressed.append((key, "resolved"))
            continue
        cause = t.inhibited_by if t.inhibited_by in inhibitors else None
        events.append(_item(final, "resolved", t.severity, now, inhibited_by=cause))

    for key, alert in sorted(active.items(), key=lambda kv: (kv[1].first_seen, kv[0])):
        t = tracked.get(key) or Tracked(view=alert, severity=sev[key])
        firing = alert.state is AlertState.FIRING
        event: EventKind | None = None
        if not t.announced:
            event = "new" if firing else None
        elif firing and severity_rank(sev[key]) > severity_rank(t.severity):
            event = "escalated"
        elif firing and t.notified_at is not None and (
                now >= t.notified_at + timedelta(seconds=settings.repeat_every)):
            event = "repeat"
        cause = _inhibitor_of(alert, inhibitors)
        t = t.model_copy(update={"view": alert, "inhibited_by": cause})
        if event is not None and muted(alert):
            suppressed.append((key, event))
        elif event is not None:
            previous = t.severity if event == "escalated" else None
            events.append(_item(alert, event, sev[key], now, previous=previous, inhibited_by=cause))
            t = t.model_copy(update={"severity": sev[key], "announced": True, "notified_at": now})
        tracked[key] = t

    notifications: list[Notification] = []
    queues: dict[str, SinkQueue] = {}
    for rule in sinks:
        queue = state.queues.get(rule.name, SinkQueue())
        queue = _route(rule, queue, events, inhibitors, now)
        queue, note = _flush(rule.name, queue, now, settings.group_wait)
        if note is not None:
            notifications.append(note)
        if queue.items or queue.held:
            queues[rule.name] = queue
    new_state = NotifyState(alerts=tracked, silences=silences, queues=queues)
    return Plan(notifications, new_state, _next_due(new_state, settings, now), suppressed)


def _route(rule: SinkRule, queue: SinkQueue, events: Sequence[Item],
           inhibitors: dict[str, AlertView], now: datetime) -> SinkQueue:
    items, held = queue.items, queue.held
    for item in events:
        if not rule.accepts(item.job, item.severity):
            continue
        cause = inhibitors.get(item.inhibited_by or "")
        if cause is not None and rule.accepts(cause.job, Severity.CRITICAL):
            held = _coalesce(held, item)
        else:
            items = _coalesce(items, item.model_copy(update={"inhibited_by": None}))
    queued = {i.key for i in items}
    keep: tuple[Item, ...] = ()
    for item in held:
        cause = inhibitors.get(item.inhibited_by or "")
        routed = cause is not None and rule.accepts(cause.job, Severity.CRITICAL)
        if item.inhibited_by in queued or routed:
            keep = (*keep, item)
        else:
            items = _coalesce(items, item.model_copy(update={"inhibited_by": None}))
    opened = queue.opened_at if queue.items else (now if items else None)
    return SinkQueue(opened_at=opened, items=items, held=keep)


def _flush(sink: str, queue: SinkQueue, now: datetime,
           group_wait: float) -> tuple[SinkQueue, Notification | None]:
    if not queue.items or queue.opened_at is None:
        return queue, None
    if now < queue.opened_at + timedelta(seconds=group_wait):
        return queue, None
    primary = sorted(queue.items, key=lambda i: (-severity_rank(i.severity), i.at, i.key))
    keys = {i.key for i in primary}
    attached = tuple(i for i in queue.held if i.inhibited_by in keys)
    held = tuple(i for i in queue.held if i.inhibited_by not in keys)
    order = {i.key: n for n, i in enumerate(primary)}
    items = (*primary, *sorted(attached, key=lambda i: (order[i.inhibited_by or ""], i.at, i.key)))
    top = max((i.severity for i in primary), key=severity_rank)
    note = Notification(id=_notification_id(sink, now, items), sink=sink, created_at=now,
                        severity=top, items=items)
    return SinkQueue(held=held), note


def _next_due(state: NotifyState, settings: NotifySettings, now: datetime) -> datetime | None:
    times: list[datetime] = []
    for queue in state.queues.values():
        if queue.items and queue.opened_at is not None:
            times.append(queue.opened_at + timedelta(seconds=settings.group_wait))
    for t in state.alerts.values():
        alert = t.view
        if alert.state is not AlertState.FIRING:
            continue
        ends = [s.until for s in state.silences if s.matches(alert)]
        if ends:
            times.append(max(ends))
            continue
        if t.announced and t.notified_at is not None:
            times.append(t.notified_at + timedelta(seconds=settings.repeat_every))
        if (at := _next_escalation(alert, t.severity, settings)) is not None:
            times.append(at)
    return max(now, min(times)) if times else None
