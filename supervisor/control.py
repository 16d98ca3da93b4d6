"""The control channel: the HTTP API (supervisor.api) on the daemon's Unix socket, which only
the owner can use (state_dir is 0700 and the socket 0600), and the CLI's client for it
(httpx over the Unix socket, so the CLI needs no token).

    serve_control(daemon)   started by the daemon in its task group; reports its sockets (a
                            Listener), and loads the server when the first client connects
    check_not_running(path) refuses a second daemon on the same state_dir
    request(path, cmd, ...) one operator command, as the CLI sends it
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from supervisor.api._listen import Listener
    from supervisor.daemon import Daemon

__all__ = ["ControlError", "check_not_running", "command_route", "request", "serve_control"]

log = logging.getLogger(__name__)

_BASE = "http://proofwatch"  # any host: the transport goes to the socket


class ControlError(Exception):
    """Raised when the daemon cannot be reached, or another daemon already serves its state_dir."""


async def serve_control(daemon: Daemon, *, task_status: TaskStatus[Listener]) -> None:
    """Serve the API until cancelled: bind its sockets and report them (a start that cannot
    is refused before any job runs), then load and run the server once the daemon's first
    jobs are spawned and a client has connected (a daemon nobody queries never loads it);
    that client waits in the backlog meanwhile."""
    from supervisor.api._listen import listen

    check_not_running(daemon.config.socket_path)
    listener = listen(daemon)
    served = False
    try:
        task_status.started(listener)
        if listener.url:
            log.info("API, dashboard and /metrics on %s (and %s)", listener.url, listener.socket_path)
        await daemon.spawned.wait()
        await listener.first_connection()
        loading = time.monotonic()
        from supervisor.api._server import ApiServer

        served = True
        await ApiServer(daemon, listener).serve(loading=loading)  # closes the sockets when it ends
    finally:
        if not served:
            listener.close()


def check_not_running(path: Path) -> None:
    """Raise ControlError when another daemon serves this socket; remove a stale one."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise ControlError(f"{path}: another proofwatch daemon is already serving this state_dir")


def command_route(cmd: str, arg: str | None, extra: dict[str, Any] | None = None) -> tuple[str, str, Any]:
    """(method, path, JSON body) of an operator command: start/stop/restart JOB, ack KEY,
    reload, silence TARGET (extra: duration, reason), unsilence TARGET, ping."""
    extra = extra or {}
    if cmd in ("start", "stop", "restart"):
        return "POST", f"/api/jobs/{quote(arg or '', safe='')}/{cmd}", None
    if cmd == "ack":
        return "POST", f"/api/alerts/{quote(arg or '', safe='')}/ack", None
    if cmd == "reload":
        return "POST", "/api/reload", None
    if cmd == "silence":
        return "POST", "/api/silence", {"target": arg or "", "duration": str(extra.get("duration", "")),
                                        "reason": str(extra.get("reason", ""))}
    if cmd == "unsilence":
        return "POST", "/api/unsilence", {"target": arg or ""}
    if cmd == "ping":
        return "GET", "/healthz", None
    raise ValueError(f"unknown command {cmd!r}")


def request(
    path: Path, cmd: str, arg: str | None = None, timeout: float = 10.0, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send one command to the daemon over its socket (blocking; for the CLI). Returns the
    answer: `{"ok": true, "message": ...}` or `{"ok": false, "error": ...}`."""
    import httpx

    method, url, body = command_route(cmd, arg, extra)
    if not path.exists():  # the usual case when the daemon is down: say so without a connect
        raise ControlError(f"the daemon is not running (no one listens on {path})")
    transport = httpx.HTTPTransport(uds=str(path))
    try:
        with httpx.Client(transport=transport, base_url=_BASE, timeout=timeout) as client:
            response = client.request(method, url, json=body)
    except httpx.TimeoutException:
        raise ControlError(f"the daemon did not answer within {timeout:g}s") from None
    except httpx.TransportError as exc:
        raise _unreachable(path, exc) from None
    try:
        reply: Any = response.json()
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ControlError(f"the daemon answered {response.status_code} without a proper body "
                           f"({response.text[:200]!r})")
    return reply


def _unreachable(path: Path, exc: BaseException) -> ControlError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, PermissionError):
            return ControlError(f"{path}: permission denied (the socket belongs to another user)")
        if isinstance(cause, (FileNotFoundError, ConnectionRefusedError)):
            return ControlError(f"the daemon is not running (no one listens on {path})")
        cause = cause.__cause__ or cause.__context__
    return ControlError(f"cannot reach the daemon on {path}: {exc}")
