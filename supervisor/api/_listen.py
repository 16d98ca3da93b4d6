"""The API's sockets, bound before any job starts: the Unix socket owner-only, TCP only when
`[api] listen` asks for it (with a token, or on loopback). Binding is all a start needs to be
refused cleanly (another daemon, a port taken, a token that cannot be read); the server itself
(uvicorn, starlette, the routes: ~75 ms of imports and ~5 MiB of resident memory) is loaded
when the first client connects, as socket activation does, and that client waits in the
listen backlog meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from supervisor.api._auth import TokenUnset, resolve_token
from supervisor.api.errors import ApiStartError
from supervisor.config import is_loopback

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)


class Listener:
    """The daemon's listening sockets, and where they are."""

    def __init__(self, socket_path: Path, sockets: list[socket.socket],
                 tcp_address: tuple[str, int] | None) -> None:
        self.socket_path = socket_path
        self.sockets = sockets
        self.tcp_address = tcp_address  # where TCP is served (the real port), or None

    @property
    def url(self) -> str | None:
        """The TCP base URL (http://127.0.0.1:8765), or None when TCP is off."""
        if self.tcp_address is None:
            return None
        host, port = self.tcp_address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def first_connection(self) -> None:
        """Return once a client is waiting on any of the sockets (it stays in the backlog,
        for the server to accept)."""
        async with anyio.create_task_group() as tg:
            async def wait(sock: socket.socket) -> None:
                await anyio.wait_readable(sock)
                tg.cancel_scope.cancel()

            for sock in self.sockets:
                tg.start_soon(wait, sock)

    def close(self) -> None:
        """Close the sockets and remove the Unix one."""
        for sock in self.sockets:
            sock.close()
        self.socket_path.unlink(missing_ok=True)


def listen(daemon: Daemon) -> Listener:
    """Bind the daemon's sockets; ApiStartError (one line) when it cannot."""
    api = daemon.config.api
    address = api.address
    if address is not None:
        _check_token(daemon, address[0])
    path = daemon.config.socket_path
    try:
        unix = _unix_listener(path)
    except OSError as exc:
        raise ApiStartError(f"{path}: cannot create the control socket "
                            f"({(exc.strerror or str(exc)).lower()})") from None
    if address is None:
        return Listener(path, [unix], None)
    try:
        tcp = _tcp_listener(*address)
    except OSError as exc:
        unix.close()
        path.unlink(missing_ok=True)
        raise ApiStartError(f"api.listen {address[0]}:{address[1]}: cannot listen there "
                            f"({(exc.strerror or str(exc)).lower()})") from None
    host, port = tcp.getsockname()[:2]
    return Listener(path, [unix, tcp], (host, port))


def _check_token(daemon: Daemon, host: str) -> None:
    api = daemon.config.api
    try:
        token = resolve_token(api.token, "api.token")
    except TokenUnset as exc:
        raise ApiStartError(f"{exc}: set it, or remove api.token (the API is not served on "
                            "TCP with a token that cannot be read)") from None
    if token is None and not is_loopback(host):
        raise ApiStartError(f"api.listen {host}: not a loopback address, and api.token is empty")
    for name, job in daemon.config.jobs.items():
        try:
            resolve_token(job.heartbeat_token, f"jobs.{name}.heartbeat_token")
        except TokenUnset as exc:
            log.warning("%s: remote heartbeats for %s are refused until it is set", exc, name)


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
