"""The public WebSocket (api-reference A.5): connect, subscribe, keepalive.

- At most one new connection per `connect_interval` (BloFin: 1 per second per IP); failed
  attempts back off exponentially with jitter (tenacity), up to `max_backoff`.
- Subscriptions go in requests whose `args` serialise to <= 4096 bytes, and are re-sent after
  every reconnect.
- Keepalive: after `ping_interval` seconds (< 30) without any message, send the text `ping`;
  if nothing (the `pong` or data) arrives within `pong_timeout`, the stream is stalled: raise
  StreamError so the caller reconnects. The library's own protocol pings are off: BloFin
  speaks text ping/pong.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from workers.ingestor.errors import StreamError
from workers.ingestor.messages import CANDLE_1M, TRADES

log = logging.getLogger(__name__)

MAX_ARGS_BYTES = 4096
STABLE_AFTER = 30.0  # a connection that lived this long resets the reconnect backoff
MAX_MESSAGE_BYTES = 8 * 2**20


def channel_args(instruments: list[str]) -> list[dict[str, str]]:
    """The trades and candle1m subscriptions for each instrument."""
    return [{"channel": ch, "instId": inst} for inst in instruments for ch in (TRADES, CANDLE_1M)]


def subscribe_frames(args: list[dict[str, str]], op: str = "subscribe",
                     max_bytes: int = MAX_ARGS_BYTES) -> list[str]:
    """Requests whose serialised `args` each stay within max_bytes."""
    frames: list[str] = []
    chunk: list[dict[str, str]] = []
    for arg in args:
        if len(json.dumps([arg])) > max_bytes:
            raise ValueError(f"subscription {arg} alone exceeds {max_bytes} bytes")
        if chunk and len(json.dumps([*chunk, arg])) > max_bytes:
            frames.append(json.dumps({"op": op, "args": chunk}))
            chunk = []
        chunk.append(arg)
    if chunk:
        frames.append(json.dumps({"op": op, "args": chunk}))
    return frames


class Subscriptions:
    """What one connection asked for and what the server acknowledged.

    The server answers each request in order: one ack per arg, or one error event for the
    whole request. Matching errors to requests tells which args were refused.
    """

    def __init__(self) -> None:
        self.acked: set[tuple[str, str]] = set()
        self._waiting: deque[list[tuple[str, str]]] = deque()  # unanswered requests, in order

    def frames(self, args: list[dict[str, str]], op: str = "subscribe") -> list[str]:
        out = subscribe_frames(args, op)
        for frame in out:
            self._waiting.append([(a["channel"], a["instId"]) for a in json.loads(frame)["args"]])
        return out

    def on_ack(self, channel: str, inst: str, op: str = "subscribe") -> None:
        key = (channel, inst)
        if op == "subscribe":
            self.acked.add(key)
        else:
            self.acked.discard(key)
        for request in self._waiting:
            if key in request:
                request.remove(key)
                break
        while self._waiting and not self._waiting[0]:
            self._waiting.popleft()

    def on_error(self) -> list[tuple[str, str]]:
        """The args of the request an error event answered (empty if none was waiting)."""
        return self._waiting.popleft() if self._waiting else []


def handshake_status(exc: BaseException) -> int | None:
    """The HTTP status of a refused WebSocket upgrade (403 = BloFin firewall ban)."""
    if isinstance(exc, InvalidStatus):
        return exc.response.status_code
    return None


class Connector:
    """Opens connections no faster than `connect_interval`, backing off on failures."""

    def __init__(self, url: str, *, connect_interval: float = 1.0, max_backoff: float = 60.0,
                 open_timeout: float = 10.0,
                 on_retry: Callable[[BaseException, float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.url = url
        self.connect_interval = connect_interval
        self.max_backoff = max_backoff
        self.open_timeout = open_timeout
        self.on_retry = on_retry
        self.attempts = 0
        self.flaps = 0  # consecutive sessions shorter than STABLE_AFTER
        self._clock = clock
        self._sleep = sleep
        self._last_attempt = float("-inf")

    def session_ended(self, lasted: float) -> None:
        """Report how long the last connection lived: short ones back off like failures."""
        self.flaps = 0 if lasted >= STABLE_AFTER else self.flaps + 1

    def flap_delay(self) -> float:
        """Extra wait before reconnecting after short-lived sessions (0 after a stable one)."""
        if self.flaps <= 1:
            return 0.0
        return float(min(self.max_backoff, max(self.connect_interval, 0.1) * 2 ** (self.flaps - 1)))

    async def _pace(self) -> None:
        wait = self._last_attempt + self.connect_interval - self._clock()
        if wait > 0:
            await self._sleep(wait)
        self._last_attempt = self._clock()

    async def _open(self) -> ClientConnection:
        await self._pace()
        self.attempts += 1
        try:
            return await connect(self.url, ping_interval=None, open_timeout=self.open_timeout,
                                 close_timeout=2, max_size=MAX_MESSAGE_BYTES, max_queue=64,
                                 compression=None)
        except InvalidStatus:
            raise
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise StreamError(f"connect {self.url}: {type(exc).__name__}: {exc}") from exc

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        log.warning("WebSocket connect failed (attempt %d), retrying in %.1fs: %s",
                    state.attempt_number, delay, exc)
        if self.on_retry is not None and exc is not None:
            self.on_retry(exc, delay)

    async def connect(self) -> ClientConnection:
        """A new connection; retries forever with exponential backoff (the caller can cancel)."""
        delay = self.flap_delay()
        if delay:
            log.warning("%d short-lived connections in a row: waiting %.1fs before the next",
                        self.flaps, delay)
            await self._sleep(delay)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((StreamError, InvalidStatus)),
            wait=wait_exponential_jitter(multiplier=max(self.connect_interval, 0.1),
                                         max=self.max_backoff,
                                         jitter=max(self.connect_interval, 0.1)),
            sleep=self._sleep, reraise=True, before_sleep=self._before_sleep)
        async for attempt in retrying:
            with attempt:
                return await self._open()
        raise AssertionError("unreachable: retries forever")  # pragma: no cover


class Stream:
    """One live connection with the keepalive; `recv` raises StreamError when it ends."""

    def __init__(self, conn: ClientConnection, *, ping_interval: float, pong_timeout: float) -> None:
        self.conn = conn
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.pings = 0

    async def send(self, frame: str) -> None:
        try:
            await self.conn.send(frame)
        except ConnectionClosed as exc:
            raise StreamError(f"connection closed while sending: {exc}") from exc

    async def subscribe(self, args: list[dict[str, str]], op: str = "subscribe") -> None:
        for frame in subscribe_frames(args, op):
            await self.send(frame)

    async def recv(self) -> Any:
        """The next message (str or bytes); pings when idle, raises StreamError on a stall."""
        try:
            with anyio.move_on_after(self.ping_interval):
                return await self.conn.recv()
            self.pings += 1
            await self.conn.send("ping")
            with anyio.move_on_after(self.pong_timeout):
                return await self.conn.recv()
        except ConnectionClosed as exc:
            raise StreamError(f"connection closed: {exc}") from exc
        raise StreamError(f"stalled: nothing received for {self.ping_interval:g}s and no pong "
                          f"{self.pong_timeout:g}s after a ping")

    async def close(self, *, abort: bool = False) -> None:
        """Close politely (bounded), or drop the TCP connection at once (a stalled peer
        would not answer the close handshake either)."""
        if abort:
            self.conn.transport.abort()
        with anyio.move_on_after(0.1 if abort else 2.0, shield=True):
            await self.conn.close()
