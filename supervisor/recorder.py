"""The daemon's single writer to the history store and alerts.jsonl.

Callers enqueue rows without blocking the event loop; one task applies them in batches, in
order, on a worker thread. `flush()` waits until everything enqueued so far is written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

import anyio
import anyio.to_thread

from status.history import AlertRow, Batch, EventRow, History, RowData, RunRow

log = logging.getLogger(__name__)


class Recorder:
    """Batches history writes and alert log lines."""

    def __init__(self, history: History, alerts_log: Path) -> None:
        self.history = history
        self.alerts_log = alerts_log
        self._runs: dict[str, RunRow | RowData] = {}
        self._events: list[EventRow | RowData] = []
        self._alerts: dict[str, AlertRow] = {}
        self._lines: list[str] = []
        self._calls: list[Callable[[Engine], object]] = []
        self._pending = anyio.Event()
        self._written = anyio.Event()
        self._busy = False

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

    def call(self, fn: Callable[[Engine], object]) -> None:
        """Run `fn(engine)` in the writer thread, in order with the other writes (e.g. host
        samples), so the history has a single writer."""
        self._calls.append(fn)
        self._pending.set()

    def _take(self) -> tuple[Batch, list[str]]:
        batch = Batch(
            runs=list(self._runs.values()),
            events=self._events,
            alerts=list(self._alerts.values()),
        )
        lines = self._lines
        self._runs, self._events, self._alerts, self._lines = {}, [], {}, []
        return batch, lines

    def _write(self, batch: Batch, lines: list[str], calls: list[Callable[[Engine], object]]) -> None:
        self.history.apply(batch)
        for fn in calls:
            try:
                fn(self.history.engine)
            except Exception:
                log.exception("history write %r failed; dropped", fn)
        if lines:
            fd = os.open(self.alerts_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(f.fileno())

    async def serve(self) -> None:
        """Apply queued changes until cancelled (then write what is left)."""
        try:
            while True:
                await self._pending.wait()
                await self._drain()
        finally:
            with anyio.CancelScope(shield=True):
                await self._drain()

    async def _drain(self) -> None:
        self._pending = anyio.Event()
        batch, lines = self._take()
        calls, self._calls = self._calls, []
        if not (batch.runs or batch.events or batch.alerts or lines or calls):
            self._signal_written()
            return
        self._busy = True
        try:
            await anyio.to_thread.run_sync(self._write, batch, lines, calls)
        except Exception:
            log.exception("history write failed; %d events kept for retry", len(batch.events))
            self._requeue(batch, lines)
            await anyio.sleep(1.0)
        finally:
            self._busy = False
        if not self._pending.is_set():
            self._signal_written()

    def _requeue(self, batch: Batch, lines: list[str]) -> None:
        for r in batch.runs:
            self._runs.setdefault(r["run_id"] if isinstance(r, dict) else r.run_id, r)
        self._events[:0] = list(batch.events)
        for a in batch.alerts:
            self._alerts.setdefault(a.id, a)
        self._lines[:0] = lines
        self._pending.set()

    def _signal_written(self) -> None:
        self._written.set()
        self._written = anyio.Event()

    async def flush(self) -> None:
        """Wait until everything enqueued before this call is written."""
        while self._pending.is_set() or self._busy:
            await self._written.wait()
