"""Serving the app inside the daemon's event loop: uvicorn's protocol and server machinery on
sockets the daemon creates itself (the Unix socket owner-only, TCP only when configured).

uvicorn's own `serve()` is not used: it would install its own SIGINT/SIGTERM handlers (the
daemon has its own) and wake ten times a second for its housekeeping. `Server.startup()` with
our sockets, then sleeping until the daemon's task group is cancelled, then a bounded, shielded
drain of the connections costs nothing while idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supervisor.api._app import build_app
from supervisor.api._auth import TRUSTED
from supervisor.api._listen import Listener

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)

DRAIN_GRACE = 1.0  # seconds open requests get to finish when the daemon stops
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]


class ApiServer:
    """The API for one daemon, on the sockets its Listener bound (the Unix socket, and TCP
    when `[api]` asks for it)."""

    def __init__(self, daemon: Daemon, listener: Listener) -> None:
        self.daemon = daemon
        self.listener = listener
        self.socket_path: Path = listener.socket_path
        self.closing = anyio.Event()

    async def serve(self, loading: float) -> None:
        """Serve until cancelled, then drain and close the sockets (removing the Unix one).
        `loading`: when (time.monotonic()) the first client's connection began loading it."""
        app = _Gate(build_app(self.daemon, self.closing), str(self.socket_path))
        config = uvicorn.Config(app, http="h11", ws="none", lifespan="off", interface="asgi3",
                                log_config=None, access_log=False, server_header=False,
                                date_header=False, proxy_headers=False)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=self.listener.sockets)
            log.info("API server loaded for its first client in %.0f ms", (time.monotonic() - loading) * 1000)
            self.daemon.settle_heap("API server loaded")
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await self._drain(server)
                self.listener.close()

    async def _drain(self, server: uvicorn.Server) -> None:
        """Stop accepting, end the event streams, give open requests DRAIN_GRACE seconds."""
        self.closing.set()
        self.daemon.notify_change()  # wakes the event streams so they see `closing`
        for listener in getattr(server, "servers", []):
            listener.close()
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        tasks = set(state.tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=DRAIN_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=DRAIN_GRACE)
        for listener in getattr(server, "servers", []):
            await listener.wait_closed()
        await asyncio.sleep(0)  # let closed transports run their connection_lost callbacks


class _Gate:
    """Marks requests that came over the Unix socket as trusted (fail-closed: anything else is
    not) and adds the security headers every answer carries."""

    def __init__(self, app: ASGIApp, unix_path: str) -> None:
        self.app = app
        self.unix_path = unix_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        scope[TRUSTED] = (isinstance(server, (tuple, list)) and len(server) == 2
                          and server[1] is None and server[0] == self.unix_path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
