"""The single writer of status.json: coalesces changes to at most one write per
`min_interval`, and writes at once when a state changed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread

from status.models import StatusDocument
from status.store import dump_status, write_atomic

log = logging.getLogger(__name__)


class StatusWriter:
    """Writes status.json when told something changed."""

    def __init__(
        self, path: Path, build: Callable[[], StatusDocument], min_interval: float
    ) -> None:
        self.path = path
        self.build = build
        self.min_interval = min_interval
        self.writes = 0
        self._dirty = anyio.Event()
        self._urgent = anyio.Event()
        self._last = 0.0
        self._lock = anyio.Lock()

    def changed(self, *, urgent: bool = False) -> None:
        """Note a change; `urgent` (a state change) skips the coalescing delay."""
        self._dirty.set()
        if urgent:
            self._urgent.set()

    async def write_now(self) -> None:
        """Build and write the document immediately."""
        async with self._lock:  # one write at a time, each with the newest document
            data = dump_status(self.build())
            await anyio.to_thread.run_sync(write_atomic, self.path, data)
            self.writes += 1
            self._last = time.monotonic()

    async def serve(self) -> None:
        """Write whenever something changed, coalescing bursts."""
        while True:
            await self._dirty.wait()
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0 and not self._urgent.is_set():
                with anyio.move_on_after(wait):
                    await self._urgent.wait()
            self._dirty = anyio.Event()
            self._urgent = anyio.Event()
            try:
                await self.write_now()
            except OSError as exc:
                log.error("cannot write %s: %s; will retry", self.path, exc)
                self._dirty.set()
                await anyio.sleep(1.0)
