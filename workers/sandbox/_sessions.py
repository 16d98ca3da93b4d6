"""A WebSocket session (one connection) and the pushes queued on it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

from starlette.websockets import WebSocket

from workers.sandbox._wsproto import transport_of


class Push:
    """One serialised data message, shared by every session it is queued on."""

    __slots__ = ("text", "inst", "lo", "hi", "sent")

    def __init__(self, text: str, inst: str, lo: int = 0, hi: int = 0) -> None:
        self.text = text
        self.inst = inst
        self.lo = lo  # numeric tradeIds [lo, hi) carried (trades pushes only)
        self.hi = hi
        self.sent = False


class Session:
    """One accepted WebSocket connection."""

    def __init__(self, ws: WebSocket, ip: str, number: int) -> None:
        self.ws = ws
        self.transport = transport_of(ws.scope)
        self.ip = ip
        self.number = number
        self.subs: set[tuple[str, str]] = set()
        self.queue: deque[Push | str] = deque()
        self.wake = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.unsubscribed_since = time.monotonic()

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    def put(self, item: Push | str) -> None:
        self.queue.append(item)
        self.wake.set()


async def until_error(s: Session, work: Coroutine[Any, Any, None]) -> None:
    """Run a session task; an error ends the session (the peer is usually gone)."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure ends only this connection
        s.end(f"{type(exc).__name__}: {exc}")
