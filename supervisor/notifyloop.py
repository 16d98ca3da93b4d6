"""Feeding the alert book to the notification dispatcher: on every alert change, and again
when the policy says something is due (a grouped message, a reminder, an escalation)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from policies.alerting import AlertState, AlertView
from status.models import NotifyStatus, SilenceStatus
from supervisor.notify.dispatcher import Dispatcher

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)
STALL_ESCALATE_FACTOR = 3  # a stall still unresolved at 3x stall_after becomes critical


class NotifyLoop:
    """Owns the Dispatcher for the daemon's lifetime."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        cfg = daemon.config
        # the outbox is the host's own (history.db, or outbox.db beside a shared store): alerts go
        # out while a shared store is unreachable
        outbox = cfg.outbox_db if cfg.shared_store else daemon.history
        self.dispatcher = Dispatcher(cfg.alerts, outbox, daemon.clock, base_dir=cfg.base_dir)
        self._changed = anyio.Event()
        self._next_due: datetime | None = None

    def poke(self) -> None:
        """Alerts changed: plan notifications soon."""
        self._changed.set()

    def views(self) -> list[AlertView]:
        """The alert book as the notification policy sees it."""
        out = []
        for status in self.daemon.alerts.statuses():
            escalate_after = None
            job = self.daemon.jobs.get(status.job or "")
            if job is not None and status.key.endswith(":stalled"):
                escalate_after = STALL_ESCALATE_FACTOR * job.settings.stall_after
            state = AlertState.ACKNOWLEDGED if status.acknowledged_at else AlertState.FIRING
            out.append(AlertView.from_status(status, state=state, escalate_after=escalate_after))
        return out

    def status(self) -> NotifyStatus:
        """The `notify` section of status.json."""
        return NotifyStatus(
            outbox_depth=self.dispatcher.depth(),
            silences=[SilenceStatus(target=s.target, until=s.until, reason=s.reason)
                      for s in self.dispatcher.silences(self.daemon.clock.now())],
        )

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the dispatcher and plan notifications until cancelled."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.dispatcher.serve)
            task_status.started()
            self._changed.set()  # notify what was restored from the history
            while True:
                delay = None
                if self._next_due is not None:
                    delay = max(0.0, (self._next_due - self.daemon.clock.now()).total_seconds())
                with anyio.move_on_after(delay if delay is not None else 3600):
                    await self._changed.wait()
                self._changed = anyio.Event()
                try:
                    self._next_due = await self.dispatcher.update(self.views())
                except Exception:
                    log.exception("planning notifications failed; retrying in 5s")
                    await anyio.sleep(5)
                    self._changed.set()
                self.daemon.status.changed()
                self.daemon.notify_change()
