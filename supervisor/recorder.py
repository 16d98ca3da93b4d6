"""The daemon's single writer to the history store and alerts.jsonl.

Callers enqueue rows without blocking the event loop; one task applies them in batches, in
order, on a worker thread. `flush()` waits until everything enqueued so far is written.

A write that fails (a full disk: ENOSPC, SQLite's "database or disk is full"; a locked or
broken database) loses nothing: the rows go back to the front of the queue and are retried
with backoff (0.5 s doubling to 10 s, or at once on `retry_now()`), and every outcome is
reported to `on_write` (the daemon's disk-full watch). The history and alerts.jsonl are
retried separately, so a batch is never applied twice.

One bad row must not block the rest forever (a text with a lone surrogate that SQLite refuses,
say): after SPLIT_AFTER failed attempts for a reason other than the disk or the database
itself (`_database_wide`), the batch is written row by row. A row that still fails is
retried once with its text made valid UTF-8, and then quarantined: logged with its error,
counted in `quarantined`, dropped. Rows failing for lack of space or a locked or broken
database are never dropped: they are kept and retried as above, and they never start the
row-by-row split (it cannot cure them, and it would hit a struggling server once per row).

A shared store (PostgreSQL) that cannot be reached (refused, reset, timed out: `connection_lost`)
is the same case: supervision and alerting go on (the notification outbox is local), every row
and engine call is kept in order and retried with the backoff above, and each distinct error is
logged once per outage (no traceback), then "written again (N rows were waiting)" once.
`failing` / `failing_since` / `queued()` feed status.json's `store` section.

Memory while the store is down: run upserts coalesce by run_id (one row per run, ~1 KB) and
alerts by id, so they are bounded by the runs and alerts of the outage; events append. A
heartbeat writes nothing by itself: the queue grows only by what changes, e.g. a transition
(an event + its run's upsert), a spawn or exit (2-3 events), an alert raise or resolution, and
one host sample per `[health] interval`. For 200 jobs restarting every 10 minutes that is
well under 1 row/s, ~1 MB per hour of outage.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from status.backend import store_parts
from status.rows import AlertRow, Batch, EventRow, RowData, RunRow
from supervisor.confine import printable
from supervisor.diskfull import no_space

log = logging.getLogger(__name__)

WriteReport = Callable[[str, Path, BaseException | None], None]  # (what, path, error or None)
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
SPLIT_AFTER = 3  # failed attempts of a batch (not for space) before it is written row by row
# SQLite result codes that are about the database, not the row: such rows are kept, never dropped
_DATABASE_WIDE = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM,
                            sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT,
                            sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
                            sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH})

EngineCall = Callable[[Any], object]  # given the history's engine (a SqliteDB, or SQLAlchemy's)


@dataclass
class _Outcome:
    history_error: BaseException | None = None
    calls_left: list[EngineCall] = field(default_factory=list)
    lines_error: OSError | None = None
    kept: Batch | None = None  # after a row-by-row write: only the rows to retry (else the whole batch)


class Recorder:
    """Batches history writes and alert log lines."""

    def __init__(self, history: Any, alerts_log: Path, *, on_write: WriteReport | None = None) -> None:
        self.history = history  # a status.sqlite.SqliteHistory, or a status.history.History
        self.alerts_log = alerts_log
        kind, host, port, database = store_parts(history.engine)
        db = database if kind == "sqlite" else None
        self.history_path = Path(db) if db else alerts_log.with_name("history.db")
        # how the history is named in errors and status.json: its file, or the server (no password)
        self.history_name = self.history_path.name if db else f"history ({kind} {host}:{port or ''}/{database})"
        self.on_write = on_write or (lambda what, path, exc: None)
        self._runs: dict[str, RunRow | RowData] = {}
        self._events: list[EventRow | RowData] = []
        self._alerts: dict[str, AlertRow] = {}
        self._lines: list[str] = []
        self._calls: list[EngineCall] = []
        self._pending = anyio.Event()
        self._written = anyio.Event()
        self._retry = anyio.Event()
        self._busy = False
        self._errors: dict[str, str] = {}  # target -> error text, while its writes fail
        self._delay = RETRY_FIRST
        self._refusals = 0  # consecutive history failures not for lack of space (SPLIT_AFTER)
        self.quarantined = 0  # history rows dropped because they could not be written even alone
        self.failing_since: datetime | None = None  # when history writes began to fail (None: they succeed)
        self._logged: set[str] = set()  # (target + error) already logged in this outage

    def run(self, row: RunRow | RowData) -> None:
        """Upsert a run row (a RunRow or its columns as a dict, the cheap form). Rows handed
        over here must not be changed afterwards."""
        self._runs[row["run_id"] if isinstance(row, dict) else row.run_id] = row
        self._pending.set()

    def event(self, row: EventRow | RowData) -> None:
        """Append an event (an EventRow or its columns as a dict)."""
        self._events.append(row)
        self._pending.set()

    def alert(self, row: AlertRow, log_line: dict[str, Any] | None = None) -> None:
        """Upsert an alert row; optionally append a line to alerts.jsonl."""
        self._alerts[row.id] = row
        if log_line is not None:
            self._lines.append(json.dumps(log_line, default=str))
        self._pending.set()

    def call(self, fn: EngineCall) -> None:
        """Run `fn(engine)` in the writer thread, in order with the other writes (e.g. host
        samples), so the history has a single writer."""
        self._calls.append(fn)
        self._pending.set()

    @property
    def failing(self) -> dict[str, str]:
        """What cannot be written now (`history_name`, "alerts.jsonl") and the error."""
        return dict(self._errors)

    def queued(self) -> int:
        """Rows and lines waiting to be written."""
        return len(self._runs) + len(self._events) + len(self._alerts) + len(self._lines) + len(self._calls)

    def retry_now(self) -> None:
        """Retry failed writes now instead of at the end of the backoff (space is back)."""
        self._retry.set()

    def _take(self) -> tuple[Batch, list[str]]:
        batch = Batch(
            runs=list(self._runs.values()),
            events=self._events,
            alerts=list(self._alerts.values()),
        )
        lines = self._lines
        self._runs, self._events, self._alerts, self._lines = {}, [], {}, []
        return batch, lines

    def _write(self, batch: Batch, lines: list[str], calls: list[EngineCall], split: bool = False) -> _Outcome:
        out = _Outcome()
        if batch.runs or batch.events or batch.alerts:
            if split:  # the batch kept failing, not for space: find and quarantine the bad rows
                out.history_error, out.kept = self._apply_rows(batch)
            else:
                try:
                    self.history.apply(batch)  # one transaction: all of it or none
                except Exception as exc:
                    out.history_error = exc
            if out.history_error is not None:
                out.calls_left = list(calls)
        if out.history_error is None:
            for i, fn in enumerate(calls):
                try:
                    fn(self.history.engine)
                except Exception as exc:
                    if no_space(exc) is None and not connection_lost(exc):
                        log.exception("history write %r failed; dropped", fn)
                        continue
                    out.history_error, out.calls_left = exc, calls[i:]
                    break
        if lines:
            try:
                self._append(lines)
            except OSError as exc:
                out.lines_error = exc
        return out

    def _apply_rows(self, batch: Batch) -> tuple[BaseException | None, Batch]:
        """Apply `batch` one row per transaction, in order. A row refused for its own content is
        retried once with valid UTF-8 text, then quarantined. At the first error about the
        disk or the database itself, that row and all after it are kept. Returns (that
        error or None, the kept rows)."""
        kept: dict[str, list[Any]] = {"runs": [], "events": [], "alerts": []}
        stop: BaseException | None = None
        for kind in ("runs", "events", "alerts"):  # the order History.apply writes them in
            for row in getattr(batch, kind):
                if stop is not None:
                    kept[kind].append(row)
                    continue
                exc = self._apply_one(kind, row)
                if exc is not None and not _database_wide(exc):
                    safe = _printable_row(row)
                    if (again := self._apply_one(kind, safe)) is None:
                        log.warning("history %s row %s was refused (%s: %s); written with its text made "
                                    "valid UTF-8", kind, _row_name(row), type(exc).__name__, exc)
                        exc = None
                    elif _database_wide(again):
                        exc = again
                    else:
                        self.quarantined += 1
                        log.error("history %s row %s cannot be written (%s: %s); quarantined (dropped, %d so "
                                  "far): %.500r", kind, _row_name(row), type(again).__name__, again,
                                  self.quarantined, safe)
                        continue
                if exc is not None:  # no space, a locked or broken database: kept and retried
                    stop = exc
                    kept[kind].append(row)
        return stop, Batch(runs=kept["runs"], events=kept["events"], alerts=kept["alerts"])

    def _apply_one(self, kind: str, row: Any) -> BaseException | None:
        try:
            self.history.apply(Batch(**{kind: [row]}))
        except Exception as exc:
            return exc
        return None

    def _append(self, lines: list[str]) -> None:
        """Append whole lines to alerts.jsonl, or none: a failed write is cut back off."""
        data = memoryview("".join(line + "\n" for line in lines).encode())
        fd = os.open(self.alerts_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            start = os.fstat(fd).st_size
            try:
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, start)  # no torn line: the lines are retried whole
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)

    async def serve(self) -> None:
        """Apply queued changes until cancelled (then write what is left)."""
        try:
            while True:
                await self._pending.wait()
                if not await self._drain():
                    with anyio.move_on_after(self._delay):
                        await self._retry.wait()
                    self._delay = min(self._delay * 2, RETRY_MAX)
        finally:
            with anyio.CancelScope(shield=True):
                await self._drain()
                if self.queued():
                    log.error("%d history rows and alert lines could not be written before exit (%s)",
                              self.queued(), "; ".join(f"{k}: {v}" for k, v in self._errors.items()))

    async def _drain(self) -> bool:
        """Write what is queued; False when something failed (it is queued again)."""
        self._pending = anyio.Event()
        batch, lines = self._take()
        calls, self._calls = self._calls, []
        if not (batch.runs or batch.events or batch.alerts or lines or calls):
            self._signal_written()
            return True
        self._busy = True
        try:
            with anyio.CancelScope(shield=True):  # the outcome must be seen, or rows would be lost
                out = await anyio.to_thread.run_sync(self._write, batch, lines, calls,
                                                     self._refusals >= SPLIT_AFTER)
        finally:
            self._busy = False
        self._retry = anyio.Event()
        # count failures that retrying the same batch may never cure: not space, not a locked or
        # unreachable database (those are waited out; splitting would only hammer the server)
        refused = out.history_error is not None and not _database_wide(out.history_error)
        self._refusals = self._refusals + 1 if refused else 0
        if out.history_error is not None:
            self._requeue(out.kept if out.kept is not None else batch, [], out.calls_left)
        if out.lines_error is not None:
            self._requeue(Batch(), lines, [])
        ok = True
        for what, path, done, exc in (
            (self.history_name, self.history_path, bool(batch.runs or batch.events or batch.alerts or calls),
             out.history_error),
            (self.alerts_log.name, self.alerts_log, bool(lines), out.lines_error),
        ):
            if exc is not None:
                ok = False
                if what == self.history_name and self.failing_since is None:
                    self.failing_since = datetime.now(timezone.utc)
                self._failed(what, path, exc)
            elif done:
                if what == self.history_name:
                    self.failing_since = None
                self._logged = {k for k in self._logged if not k.startswith(what + "\0")}
                if self._errors.pop(what, None) is not None:
                    log.info("%s written again (%d rows were waiting)", what, len(batch.events) + len(batch.runs)
                             + len(batch.alerts) + len(lines) + len(calls))
                self.on_write(what, path, None)
        if ok:
            self._delay = RETRY_FIRST
        if not self._pending.is_set() or not ok:
            self._signal_written()  # on failure too: flush() stops waiting for what cannot be written
        return ok

    def _failed(self, what: str, path: Path, exc: BaseException) -> None:
        text = error_text(exc)
        self._errors[what] = text
        if what + "\0" + text not in self._logged:  # once per distinct error and outage (they may alternate)
            self._logged.add(what + "\0" + text)
            log.error("%s write failed (%s); %d rows kept in memory, retried with backoff",
                      what, text, self.queued(), exc_info=no_space(exc) is None and not connection_lost(exc))
        self.on_write(what, path, exc)

    def _requeue(self, batch: Batch, lines: list[str], calls: list[EngineCall]) -> None:
        for r in batch.runs:
            self._runs.setdefault(r["run_id"] if isinstance(r, dict) else r.run_id, r)
        self._events[:0] = list(batch.events)
        for a in batch.alerts:
            self._alerts.setdefault(a.id, a)
        self._lines[:0] = lines
        self._calls[:0] = calls
        self._pending.set()

    def _signal_written(self) -> None:
        self._written.set()
        self._written = anyio.Event()

    async def flush(self) -> bool:
        """Wait until everything enqueued before this call is written. Returns False at once
        while writes fail (what is queued stays queued and is retried): callers never hang on
        a full disk."""
        while self._pending.is_set() or self._busy:
            if self._errors:
                return False
            await self._written.wait()
        return not self._errors


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps (SQLAlchemy's `orig`, then causes and contexts)."""
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        orig = getattr(cur, "orig", None)
        cur = orig if isinstance(orig, BaseException) else (cur.__cause__ or cur.__context__)
    return out


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` means the database server cannot be reached or its connection broke
    (refused, reset, shut down, timed out): SQLAlchemy's OperationalError / InterfaceError or a
    DBAPIError that invalidated its connection, around psycopg's OperationalError /
    InterfaceError. Not SQLite: its errors are about the file (see `_database_wide`)."""
    for cur in _chain(exc):
        if getattr(cur, "connection_invalidated", False) is True:  # SQLAlchemy's DBAPIError
            return True
        if isinstance(cur, sqlite3.Error):
            return False
        mod = type(cur).__module__
        if mod.startswith("psycopg") and any(c.__name__ in ("OperationalError", "InterfaceError")
                                             for c in type(cur).__mro__):
            return True
    return False


def error_text(exc: BaseException) -> str:
    """One line for the log and status.json: the disk's reason, or the driver's own message
    (e.g. psycopg's "connection failed: connection to server at "127.0.0.1", port 5432 failed:
    Connection refused"), without SQLAlchemy's help link and never with a password (the URL is
    not in it)."""
    reason = no_space(exc)
    if reason is not None:
        return reason
    if connection_lost(exc):
        orig = getattr(exc, "orig", None)
        inner = orig if isinstance(orig, BaseException) else exc
        text = " ".join(str(inner).split())
        return f"{type(inner).__name__}: {text}" if text else type(inner).__name__
    return f"{type(exc).__name__}: {exc}"


def _sqlalchemy_error(exc: BaseException, *names: str) -> bool:
    """Whether `exc` is one of SQLAlchemy's exceptions `names` (without importing it)."""
    return any(c.__module__ == "sqlalchemy.exc" and c.__name__ in names for c in type(exc).__mro__)


def _database_wide(exc: BaseException) -> bool:
    """Whether `exc` is about the disk or the database (full, locked, read-only, broken,
    unreachable), not about the row being written: such rows are kept and retried, never
    quarantined, and never split into one write per row."""
    if no_space(exc) is not None or isinstance(exc, OSError) or _sqlalchemy_error(exc, "OperationalError", "InterfaceError"):
        return True
    if connection_lost(exc):
        return True
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:  # SQLAlchemy wraps the driver's error
        seen.add(id(cur))
        code = getattr(cur, "sqlite_errorcode", None) or 0  # an extended code: its low byte is the primary
        if isinstance(cur, sqlite3.OperationalError) or (
                isinstance(cur, sqlite3.Error) and (code & 0xFF) in _DATABASE_WIDE):
            return True
        orig = getattr(cur, "orig", None)
        cur = orig if isinstance(orig, BaseException) else (cur.__cause__ or cur.__context__)
    return False


def _printable(value: Any) -> Any:
    """`value` with every string in it valid UTF-8 (lone surrogates escaped), into dicts and lists."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k) if isinstance(k, str) else k: _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def _printable_row(row: Any) -> Any:
    """A copy of a history row (a model or a dict of columns) with valid UTF-8 text."""
    if isinstance(row, dict):
        return _printable(row)
    return type(row)(**_printable(row.model_dump()))


def _row_name(row: Any) -> str:
    """Which row, for the log: its key columns."""
    get = row.get if isinstance(row, dict) else (lambda name: getattr(row, name, None))
    return printable(" ".join(f"{name}={value}" for name in ("run_id", "id", "job", "kind", "key", "state")
                              if (value := get(name)) is not None))
