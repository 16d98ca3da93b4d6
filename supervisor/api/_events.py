"""`GET /api/events`: the status document as server-sent events, pushed when something
changes (a state, a heartbeat, an alert), at most once a second, and at least every
KEEPALIVE seconds. The dashboard reads it with fetch() (so it can send a token) and falls
back to polling /api/status."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from supervisor.api._auth import Need, authorize
from supervisor.api._common import daemon_of

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

MIN_GAP = 1.0  # seconds between two documents on one stream
KEEPALIVE = 10.0  # seconds without a change before the document is sent again anyway
SHARED_FOR = 0.5  # seconds one serialised document is shared by every open stream


class Snapshots:
    """The compact status document, built at most once per SHARED_FOR for all streams."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._data = b""
        self._at = float("-inf")

    def get(self) -> bytes:
        now = time.monotonic()
        if now - self._at >= SHARED_FOR:
            self._data = self.daemon.document().model_dump_json(by_alias=True).encode()
            self._at = now
        return self._data


async def events(request: Request) -> Response:
    """GET /api/events."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.READ)
    closing: anyio.Event = request.app.state.closing
    snapshots: Snapshots = request.app.state.snapshots

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        while not closing.is_set():
            seen = daemon.changes
            yield b"event: status\ndata: " + snapshots.get() + b"\n\n"
            with anyio.move_on_after(MIN_GAP):
                await closing.wait()
            try:  # a change during the gap counts: the predicate is checked first
                await daemon.wait_until(lambda: daemon.changes != seen or closing.is_set(), KEEPALIVE)
            except TimeoutError:
                pass

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
