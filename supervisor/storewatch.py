"""The `store:unreachable` alert: a shared history store (PostgreSQL) the daemon cannot write.

The recorder keeps the rows and retries (supervisor/recorder.py) and status.json says so at once
(`store.ok = false`). A short blip is not worth waking anyone, so the alert is raised only once
writes have failed for UNREACHABLE_AFTER seconds:

    store:unreachable  critical  "history store unreachable for 30s: postgresql
                                  db.example:5432/proofwatch — OperationalError: connection failed: ...
                                  Connection refused; 120 rows queued"

It goes out through the local outbox like any other alert, and is resolved when a write
succeeds again ("written again: the queue caught up"). A full disk under a SQLite history has
its own alert (`disk-full:<mount>`, supervisor/diskfull.py); this one is for shared stores only.

At start the daemon needs the store once: `restore` reads which runs were active (to re-adopt
them, or close them as lost) and which alerts were open. Starting blind could run a job twice or
close every old run as lost, so an unreachable store at start is refused with one line
(`StoreUnreachable`, exit 1) and the service manager retries (deploy/proofwatch.service:
Restart=on-failure, every 5 s); jobs left running are re-adopted when it starts.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import anyio

from sqlalchemy.engine import make_url

from status.history import History
from status.models import Severity
from supervisor.control import ControlError
from supervisor.recorder import connection_lost, error_text

if TYPE_CHECKING:
    from supervisor.config import Config
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)

KEY = "store:unreachable"
UNREACHABLE_AFTER = 30.0  # seconds of failing writes before the alert
CHECK_EVERY = 1.0


class StoreUnreachable(ControlError):
    """Raised when the daemon refuses to start because its shared history store cannot be
    reached (it reads the store once at start to know what was running)."""


def open_history(cfg: Config) -> History:
    """The daemon's history (migrated to the current schema); StoreUnreachable, one line
    without the password, when a shared store cannot be reached."""
    try:
        return History(cfg.store_url, host=cfg.host, scoped=cfg.shared_store)
    except Exception as exc:
        if not (cfg.shared_store and connection_lost(exc)):
            raise
        url = make_url(cfg.store_url)
        raise StoreUnreachable(
            f"{cfg.path}: store.url: {url.get_backend_name()} {url.host or ''}:{url.port or 5432}/"
            f"{url.database or ''} cannot be reached at start ({error_text(exc)}); the daemon reads it once "
            "at start to re-adopt what was running: start the database or fix the URL "
            "(under systemd the unit restarts the daemon every 5 s)") from None


class StoreWatch:
    """Raises and resolves `store:unreachable` from the recorder's state."""

    def __init__(self, daemon: Daemon, after: float | None = None) -> None:
        self.daemon = daemon
        self.after = UNREACHABLE_AFTER if after is None else after

    def check(self, now: datetime | None = None) -> None:
        """Compare the recorder's state with the alert; raise or resolve it."""
        d = self.daemon
        rec, alerts = d.recorder, d.alerts
        wall = now or datetime.now(timezone.utc)
        since = rec.failing_since
        error = rec.failing.get(rec.history_name)
        active = KEY in alerts.active
        if since is None or error is None:
            if active:
                alerts.resolve(KEY, d.clock.now(), "history writes succeed again; the queued rows were written")
            return
        down = (wall - since).total_seconds()
        if down < self.after or active:
            return
        store = d.store_status()
        title = (f"history store unreachable for {int(down)}s: {store.kind} {store.target} — {error}; "
                 f"{rec.queued()} rows queued")
        detail = (f"The daemon cannot write its history to {store.kind} {store.target} since "
                  f"{since.isoformat(timespec='seconds')}:\n  {error}\n"
                  "Supervision and local alerting go on; runs, events and alerts are kept in memory "
                  "and written when the store is back (status.json `store.queued`).")
        alerts.fire(None, KEY, severity=Severity.CRITICAL, title=title, detail=detail, now=d.clock.now())

    async def serve(self) -> None:
        """Check every CHECK_EVERY seconds until cancelled; a failed check is logged, never fatal."""
        while True:
            await anyio.sleep(CHECK_EVERY)
            try:
                self.check()
            except Exception:
                log.exception("store watch check failed")
