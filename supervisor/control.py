"""The control channel: one JSON request per line over a Unix socket that only the owner can
use (state_dir is 0700 and the socket 0600)."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketStream, TaskStatus

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)
MAX_REQUEST = 65536


class ControlError(Exception):
    """Raised when the daemon cannot be reached or refuses a request."""


async def serve_control(daemon: Daemon, *, task_status: TaskStatus[None]) -> None:
    """Serve control requests until cancelled."""
    path = daemon.config.socket_path
    check_not_running(path)
    old = os.umask(0o177)
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    task_status.started()
    try:
        async with listener:
            await listener.serve(lambda s: _handle(daemon, s))
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


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


async def _handle(daemon: Daemon, stream: SocketStream) -> None:
    async with stream:
        buf = b""
        with anyio.move_on_after(10):
            while b"\n" not in buf and len(buf) < MAX_REQUEST:
                try:
                    chunk = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                buf += chunk
        try:
            req = json.loads(buf.split(b"\n", 1)[0])
            reply = await daemon.control_async(str(req["cmd"]), req.get("arg"), req.get("extra") or {})
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        except Exception as exc:
            log.exception("control request failed")
            reply = {"ok": False, "error": f"internal error: {exc}"}
        try:
            await stream.send((json.dumps(reply, default=str) + "\n").encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


def request(
    path: Path, cmd: str, arg: str | None = None, timeout: float = 10.0, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send one request to the daemon (blocking; for the CLI)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise ControlError(f"the daemon is not running (no one listens on {path})") from None
    except PermissionError:
        sock.close()
        raise ControlError(f"{path}: permission denied (the socket belongs to another user)") from None
    try:
        sock.sendall((json.dumps({"cmd": cmd, "arg": arg, "extra": extra or {}}) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise ControlError(f"the daemon did not answer within {timeout:g}s") from None
    finally:
        sock.close()
    if not data:
        raise ControlError("the daemon closed the connection without answering")
    reply: dict[str, Any] = json.loads(data)
    return reply
