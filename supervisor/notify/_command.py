"""The command notifier: runs a program with the payload JSON on stdin.

The program runs in its own session; on timeout (or when the dispatcher stops) its whole
process group is killed. A non-zero exit is a failed attempt, reported with its stderr tail.
Environment: the daemon's, plus PROOFWATCH_NOTIFICATION_ID, PROOFWATCH_SEVERITY and
PROOFWATCH_TITLE.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import anyio
from anyio.abc import Process

from supervisor.notify.errors import DeliveryError

_STDERR_CAP = 4096


class CommandSender:
    """Runs one program per notification."""

    def __init__(self, name: str, argv: list[str], timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.argv = argv

    async def send(self, payload: dict[str, Any]) -> None:
        """Run the program once; raise DeliveryError unless it exits 0 within the timeout."""
        env = {**os.environ, "PROOFWATCH_NOTIFICATION_ID": str(payload.get("id", "")),
               "PROOFWATCH_SEVERITY": str(payload.get("severity", "")),
               "PROOFWATCH_TITLE": str(payload.get("title", ""))}
        try:
            proc = await anyio.open_process(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise DeliveryError(f"cannot run {self.argv[0]}: {exc.strerror or exc}",
                                permanent=True) from None
        stdin = (json.dumps(payload, ensure_ascii=False) + "\n").encode()
        stderr = bytearray()
        eof = anyio.Event()
        try:
            with anyio.move_on_after(self.timeout) as deadline:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_feed, proc, stdin)
                    tg.start_soon(_drain, proc, stderr, eof)
                    await proc.wait()
                    with anyio.move_on_after(1.0):
                        await eof.wait()
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await _reap(proc)
        if deadline.cancelled_caught:
            raise DeliveryError(f"timed out after {self.timeout:g}s "
                                f"(killed {self.argv[0]}, pid {proc.pid})")
        if proc.returncode != 0:
            code = proc.returncode or 0
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            tail = bytes(stderr).decode(errors="replace").strip().splitlines()[-5:]
            raise DeliveryError(how + (": " + " | ".join(tail) if tail else ""))

    async def aclose(self) -> None:
        """Nothing to release."""


async def _feed(proc: Process, body: bytes) -> None:
    assert proc.stdin is not None
    try:
        await proc.stdin.send(body)
        await proc.stdin.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # the program did not read its stdin; its exit code decides


async def _drain(proc: Process, into: bytearray, eof: anyio.Event) -> None:
    assert proc.stderr is not None
    try:
        async for chunk in proc.stderr:
            into.extend(chunk)
            del into[:-_STDERR_CAP]
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    eof.set()


async def _reap(proc: Process) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    await proc.wait()
    await proc.aclose()
