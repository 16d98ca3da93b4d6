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

At start the daemon reads the store once: `restore` learns which runs were active (to re-adopt
them, or close them as lost) and which alerts were open. A shared store that cannot be reached
at start (a host rebooted while the database server is down) does not stop the daemon: it logs
one warning (`open_history`), starts "offline", and takes the same facts from its own
status.json instead (supervisor/restore.py `_from_status_file`). Starting blind must neither run
a job twice nor close old runs as lost, so offline only run dirs newer than what status.json
covers may be treated as spawned just before a crash, and with no readable status.json nothing
is closed as lost at all: only live runs (found by pid file or environment) are re-adopted.
The history then opens with its migration pending (`History(upgrade_pending=True)`): the
recorder's first successful write creates or migrates the schema (a brand-new database too),
then writes everything queued meanwhile; status.json says `store.ok = false` from the start.
A store migrated by a newer proofwatch (status.migrate.SchemaTooNew) stays fatal at start;
found only at the catch-up, it keeps the rows queued (status.history.SchemaRefused).

A shared store that can be reached at start is asked one more thing before `restore` reads
the runs: whether another daemon, still running, reports as this host (the same
`[supervisor] host` copied to a second machine). Its restore would close that daemon's runs as
lost, so it refuses to start, in one line naming the other daemon (supervisor/fleet.py
check_host_name). Its own previous incarnation (killed, or gone leaving its jobs) is not
refused. Started offline, the check is made at its first fleet report instead (an alert then).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio

from status.backend import open_history as _open
from status.models import Severity
from supervisor.recorder import connection_lost, error_text

if TYPE_CHECKING:
    from status.history import History
    from supervisor.config import Config
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)

KEY = "store:unreachable"
UNREACHABLE_AFTER = 30.0  # seconds of failing writes before the alert
CHECK_EVERY = 1.0


def open_history(cfg: Config) -> tuple[Any, str | None]:
    """The daemon's history, migrated to the current schema, and None. When a shared store
    cannot be reached at start: a history that migrates at its first write, and the error
    (one line, without the password), logged as a warning: the daemon starts without the
    store (supervisor/restore.py restores from status.json) and catches up when it returns.
    A private (SQLite) history is status.sqlite's: SQLAlchemy is loaded for a shared store only."""
    if not cfg.shared_store:
        return _open(cfg.store_url, host=cfg.host, scoped=False), None
    from sqlalchemy.engine import make_url

    from status.history import History
    from supervisor.fleet import HostNameTaken

    try:
        history = History(cfg.store_url, host=cfg.host, scoped=True)
        _check_host_name(history, cfg)
        return history, None
    except HostNameTaken:
        raise
    except Exception as exc:
        if not connection_lost(exc):
            raise  # SchemaTooNew, a permission refused...: fatal, one line (supervisor/cli.py)
        error = error_text(exc)
    url = make_url(cfg.store_url)
    log.warning("store.url: %s %s:%s/%s cannot be reached at start (%s); starting without it: "
                "supervision goes on from status.json, history writes are queued and the schema is "
                "migrated when the store returns", url.get_backend_name(), url.host or "",
                url.port or 5432, url.database or "", error)
    return History(cfg.store_url, create=False, host=cfg.host, upgrade_pending=True), error


def _check_host_name(history: History, cfg: Config) -> None:
    """Refuse (HostNameTaken, closing the history) when another live daemon reports as this
    host. A failure to check is logged, not fatal: the fleet's reports check again."""
    from supervisor.fleet import HostNameTaken, check_host_name

    try:
        check_host_name(history.engine, cfg.host, cfg.fleet.host_stale_after)
    except HostNameTaken:
        history.close()
        raise
    except Exception as exc:
        log.warning("fleet: could not check whether another daemon reports as host %s (%s)",
                    cfg.host, error_text(exc))


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
        if since is None and d.history.upgrade_pending:
            return  # started without the store: its first write has not been tried yet
        if since is None or error is None:
            if active:
                alerts.resolve(KEY, d.clock.now(), "history writes succeed again; the queued rows were written")
            return
        down = (wall - since).total_seconds()
        if down < self.after or active:
            return
        store = d.store_status()
        title = (f"history store unreachable for {int(down)}s: {store.kind} {store.target} — {error}; "
                 f"{rec.queued()} row{'' if rec.queued() == 1 else 's'} queued")
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
