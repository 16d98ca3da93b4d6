"""The alert book: one active alert per condition (key), with a count; every raise,
escalation and resolution goes to the history and to alerts.jsonl."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from status.rows import AlertRow
from status.models import AlertStatus, Severity
from supervisor.recorder import Recorder

log = logging.getLogger(__name__)

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

# Conditions that stay active until acknowledged or a later run of the job succeeds.
STICKY = ("crashed", "silent", "failed", "unproven", "fatal", "exited", "lost")


def alert_key(job: str | None, condition: str) -> str:
    """The dedup key of a condition: 'retrain:stalled', 'host:disk:/'."""
    return f"{job}:{condition}" if job else condition


@dataclass
class ActiveAlert:
    """An alert that has not been resolved."""

    id: str
    key: str
    job: str | None
    run_id: str | None
    severity: Severity
    title: str
    detail: str
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    acknowledged_at: datetime | None = None

    def row(self, resolved_at: datetime | None = None, resolution: str | None = None) -> AlertRow:
        """A fresh history row for this alert."""
        return AlertRow(
            id=self.id,
            key=self.key,
            job=self.job,
            run_id=self.run_id,
            severity=self.severity.value,
            title=self.title,
            detail=self.detail,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            count=self.count,
            resolved_at=resolved_at,
            resolution=resolution,
            acknowledged_at=self.acknowledged_at,
        )

    def status(self) -> AlertStatus:
        """The status.json form."""
        return AlertStatus(
            key=self.key,
            job=self.job,
            severity=self.severity,
            title=self.title,
            detail=self.detail,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            count=self.count,
            run_id=self.run_id,
            state="acknowledged" if self.acknowledged_at else "firing",
            acknowledged_at=self.acknowledged_at,
        )


class AlertBook:
    """Active alerts by key."""

    def __init__(self, recorder: Recorder, on_change: Callable[[], None] | None = None) -> None:
        self.recorder = recorder
        self.active: dict[str, ActiveAlert] = {}
        self.on_change = on_change or (lambda: None)

    def load(self, rows: list[AlertRow]) -> None:
        """Restore unresolved alerts from the history at start."""
        for r in rows:
            if r.resolved_at is None and r.key not in self.active:
                self.active[r.key] = ActiveAlert(
                    r.id, r.key, r.job, r.run_id, Severity(r.severity), r.title, r.detail,
                    r.first_seen, r.last_seen, r.count, r.acknowledged_at,
                )

    def fire(
        self,
        job: str | None,
        condition: str,
        *,
        severity: Severity,
        title: str,
        detail: str,
        now: datetime,
        run_id: str | None = None,
    ) -> bool:
        """Raise (or repeat) an alert; True when it is new."""
        key = alert_key(job, condition)
        cur = self.active.get(key)
        if cur is not None:
            escalated = _RANK[severity] > _RANK[cur.severity]
            cur.count += 1
            cur.last_seen = now
            cur.detail = detail
            cur.title = title
            cur.run_id = run_id or cur.run_id
            if escalated:
                cur.severity = severity
            line = self._line("escalated", cur, now) if escalated else None
            self.recorder.alert(cur.row(), line)
            self.on_change()
            return False
        alert = ActiveAlert(
            uuid.uuid4().hex, key, job, run_id, severity, title, detail, now, now
        )
        self.active[key] = alert
        log.warning("alert %s [%s] %s", key, severity.value, title)
        self.recorder.alert(alert.row(), self._line("raised", alert, now))
        self.on_change()
        return True

    def resolve(self, key: str, now: datetime, resolution: str) -> bool:
        """Clear an alert; True when one was active."""
        alert = self.active.pop(key, None)
        if alert is None:
            return False
        log.info("alert %s resolved: %s", key, resolution)
        line = self._line("resolved", alert, now) | {"resolution": resolution}
        self.recorder.alert(alert.row(now, resolution), line)
        self.on_change()
        return True

    def acknowledge(self, key: str, now: datetime) -> str | None:
        """The operator has seen it: a condition that can still clear (a stall, a host
        threshold) stays listed as acknowledged with no more reminders; one that cannot (a crash,
        silence, FATAL, an unproven run) is resolved. None when no such alert is active."""
        alert = self.active.get(key)
        if alert is None:
            return None
        if key.rsplit(":", 1)[-1] in STICKY:
            self.resolve(key, now, "acknowledged by the operator")
            return "resolved"
        alert.acknowledged_at = now
        self.recorder.alert(alert.row(), self._line("acknowledged", alert, now))
        self.on_change()
        return "acknowledged"

    def resolve_job(
        self, job: str, conditions: tuple[str, ...], now: datetime, resolution: str
    ) -> None:
        """Clear the given conditions of one job."""
        for condition in conditions:
            self.resolve(alert_key(job, condition), now, resolution)

    def statuses(self) -> list[AlertStatus]:
        """Active alerts, most severe and newest first."""
        ordered = sorted(
            self.active.values(), key=lambda a: (-_RANK[a.severity], -a.last_seen.timestamp())
        )
        return [a.status() for a in ordered]

    @staticmethod
    def _line(event: str, alert: ActiveAlert, now: datetime) -> dict[str, object]:
        return {
            "event": event,
            "ts": now.isoformat(),
            "key": alert.key,
            "job": alert.job,
            "run_id": alert.run_id,
            "severity": alert.severity.value,
            "title": alert.title,
            "detail": alert.detail,
            "count": alert.count,
        }
