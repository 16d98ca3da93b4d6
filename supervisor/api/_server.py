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
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supervisor.api._app import build_app
from supervisor.api._auth import TRUSTED, TokenUnset, resolve_token
from supervisor.api.errors import ApiStartError
from supervisor.config import is_loopback

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)

DRAIN_GRACE = 1.0  # seconds open requests get to finish when the daemon stops
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]


class ApiServer:
    """The API for one daemon: on its Unix socket, and on TCP when `[api]` asks for it."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.socket_path: Path = daemon.config.socket_path
        self.tcp_address: tuple[str, int] | None = None  # where TCP is served (the real port)
        self.closing = anyio.Event()

    @property
    def url(self) -> str | None:
        """The TCP base URL (http://127.0.0.1:8765), or None when TCP is off."""
        if self.tcp_address is None:
            return None
        host, port = self.tcp_address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def serve(self, *, task_status: TaskStatus[ApiServer]) -> None:
        """Listen, report started, serve until cancelled, then drain and remove the socket."""
        app = _Gate(build_app(self.daemon, self.closing), str(self.socket_path))
        config = uvicorn.Config(app, http="h11", ws="none", lifespan="off", interface="asgi3",
                                log_config=None, access_log=False, server_header=False,
                                date_header=False, proxy_headers=False)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        sockets = self._listen()
        try:
            await server.startup(sockets=sockets)
            if self.url:
                log.info("API, dashboard and /metrics on %s (and %s)", self.url, self.socket_path)
            task_status.started(self)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await self._drain(server)
                for sock in sockets:
                    sock.close()
                self.socket_path.unlink(missing_ok=True)

    def _listen(self) -> list[socket.socket]:
        api = self.daemon.config.api
        address = api.address
        if address is not None:
            self._check_token(address[0])
        try:
            unix = _unix_listener(self.socket_path)
        except OSError as exc:
            raise ApiStartError(f"{self.socket_path}: cannot create the control socket "
                                f"({(exc.strerror or str(exc)).lower()})") from None
        if address is None:
            return [unix]
        try:
            tcp = _tcp_listener(*address)
        except OSError as exc:
            unix.close()
            self.socket_path.unlink(missing_ok=True)
            raise ApiStartError(f"api.listen {address[0]}:{address[1]}: cannot listen there "
                                f"({(exc.strerror or str(exc)).lower()})") from None
        host, port = tcp.getsockname()[:2]
        self.tcp_address = (host, port)
        return [unix, tcp]

    def _check_token(self, host: str) -> None:
        api = self.daemon.config.api
        try:
            token = resolve_token(api.token, "api.token")
        except TokenUnset as exc:
            raise ApiStartError(f"{exc}: set it, or remove api.token (the API is not served on "
                                "TCP with a token that cannot be read)") from None
        if token is None and not is_loopback(host):
            raise ApiStartError(f"api.listen {host}: not a loopback address, and api.token is empty")
        for name, job in self.daemon.config.jobs.items():
            try:
                resolve_token(job.heartbeat_token, f"jobs.{name}.heartbeat_token")
            except TokenUnset as exc:
                log.warning("%s: remote heartbeats for %s are refused until it is set", exc, name)

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


def _unix_listener(path: Path) -> socket.socket:
    """A listening Unix socket that only the owner can connect to (created 0600, never wider)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _tcp_listener(host: str, port: int) -> socket.socket:
    if host == "localhost":
        host = "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
