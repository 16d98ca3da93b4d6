"""The single writer of status.json: coalesces changes to at most one write per
`min_interval`, and writes at once when a state changed.

Every write is atomic (status.store.write_atomic: temp file, fsync, rename, directory fsync),
so the file on disk is always a complete document. A write that fails (a full disk) leaves
the previous version in place, is reported to `on_write` and retried with backoff (0.5 s
doubling to 10 s, or at once on `retry_now()`), always with the newest document.

A document that cannot be serialised at all (a ValueError, such as pydantic's
PydanticSerializationError for a lone surrogate in some text) never kills the writer: it is
logged (once per distinct error), the last good status.json stays in place, and the next
change tries again; retrying the same document could not help.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread

from status.models import StatusDocument
from status.store import dump_status, write_atomic
from supervisor.diskfull import no_space
from supervisor.recorder import RETRY_FIRST, RETRY_MAX, WriteReport

log = logging.getLogger(__name__)


class StatusWriter:
    """Writes status.json when told something changed."""

    def __init__(
        self, path: Path, build: Callable[[], StatusDocument], min_interval: float, *,
        on_write: WriteReport | None = None,
    ) -> None:
        self.path = path
        self.build = build
        self.min_interval = min_interval
        self.on_write = on_write or (lambda what, path, exc: None)
        self.writes = 0
        self.failures = 0  # consecutive failed writes (0 when the file is current)
        self.error: str | None = None  # why the last write failed, while it keeps failing
        self.unserialisable: str | None = None  # why the newest document could not be serialised
        self._dirty = anyio.Event()
        self._urgent = anyio.Event()
        self._retry = anyio.Event()
        self._last = 0.0
        self._lock = anyio.Lock()

    def changed(self, *, urgent: bool = False) -> None:
        """Note a change; `urgent` (a state change) skips the coalescing delay."""
        self._dirty.set()
        if urgent:
            self._urgent.set()

    def retry_now(self) -> None:
        """Retry a failed write now instead of at the end of the backoff (space is back)."""
        self._retry.set()

    async def write_now(self) -> None:
        """Build and write the document immediately; OSError when it cannot be written (the
        file then keeps its previous complete version)."""
        async with self._lock:  # one write at a time, each with the newest document
            data = dump_status(self.build())  # ValueError when it cannot be serialised: see try_write
            self.unserialisable = None
            try:
                # 0600: it names runs, errors and stderr tails; the state dir may be 0711 (`user` jobs)
                await anyio.to_thread.run_sync(partial(write_atomic, self.path, data, mode=0o600))
            except OSError as exc:
                self._failed(exc)
                raise
            if self.failures:
                log.info("%s written again after %d failed attempts", self.path, self.failures)
            self.failures, self.error = 0, None
            self.writes += 1
            self._last = time.monotonic()
            self.on_write(self.path.name, self.path, None)

    async def try_write(self) -> bool:
        """`write_now`, except that a failure is logged and left to `serve` to retry (an
        unserialisable document: logged, and left to the next change)."""
        try:
            await self.write_now()
        except OSError:
            self._dirty.set()
            return False
        except ValueError as exc:  # PydanticSerializationError and ValidationError are ValueErrors
            self._unserialisable(exc)
            return False
        return True

    async def serve(self) -> None:
        """Write whenever something changed, coalescing bursts; retry failures with backoff."""
        delay = RETRY_FIRST
        while True:
            await self._dirty.wait()
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0 and not self._urgent.is_set():
                with anyio.move_on_after(wait):
                    await self._urgent.wait()
            self._dirty = anyio.Event()
            self._urgent = anyio.Event()
            if await self.try_write() or self.unserialisable is not None:
                delay = RETRY_FIRST  # written, or unwritable until something changes: no backoff
                continue
            with anyio.move_on_after(delay):
                await self._retry.wait()
            delay = min(delay * 2, RETRY_MAX)

    def _unserialisable(self, exc: ValueError) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if text != self.unserialisable:  # once per distinct error, not once per change
            log.error("cannot serialise %s (%s); its last good version stays in place, the next "
                      "change tries again", self.path, text, exc_info=exc)
        self.unserialisable = text

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        self._retry = anyio.Event()
        text = no_space(exc) or exc.strerror or str(exc)
        if text != self.error:
            log.error("cannot write %s: %s; its previous complete version stays in place, retrying",
                      self.path, text)
        self.error = text
        self.on_write(self.path.name, self.path, exc)
