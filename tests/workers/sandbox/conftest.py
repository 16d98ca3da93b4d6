"""Shared sandboxes and WebSocket helpers for the sandbox tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect

from workers.sandbox.server import SandboxHandle, running_sandbox

INSTS = ["BTC-USDT", "ETH-USDT", "SHIB-USDT"]


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxHandle]:
    """One sandbox per test module (rate 200/s per instrument); faults cleared per test."""
    with running_sandbox(seed=7, rate=200.0, instruments=INSTS) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sb" in request.fixturenames:
        request.getfixturevalue("sb").faults.clear()


def ws_connect(url: str) -> connect:
    """A client that buffers pushes without limit: with the default max_queue, a client that
    stops reading also stops reading the socket, so its close() waits close_timeout (10 s)
    for a close frame stuck behind unread pushes."""
    return connect(url, max_queue=None, close_timeout=2)


def fast_clock(speed: float) -> Callable[[], int]:
    """A sandbox clock running `speed` times faster than the wall clock."""
    t0 = time.time_ns() // 1_000_000
    m0 = time.monotonic()
    return lambda: t0 + int((time.monotonic() - m0) * 1000.0 * speed)


async def subscribe(ws: ClientConnection, *args: tuple[str, str], op: str = "subscribe") -> None:
    """Send one (un)subscribe request and await one ack per arg."""
    want = [{"channel": c, "instId": i} for c, i in args]
    await ws.send(json.dumps({"op": op, "args": want}))
    acks = []
    with anyio.fail_after(5):
        while len(acks) < len(want):
            msg = json.loads(await ws.recv())
            if msg.get("event") == op:
                acks.append(msg["arg"])
            elif "event" in msg:
                raise AssertionError(f"expected {op} acks, got {msg}")
    assert acks == want


async def next_push(ws: ClientConnection, channel: str, timeout: float = 5.0) -> Any:
    """The next data push of `channel` (skipping others)."""
    with anyio.fail_after(timeout):
        while True:
            raw = await ws.recv()
            msg = json.loads(raw)
            if msg.get("arg", {}).get("channel") == channel and "data" in msg:
                return msg


async def collect_trades(ws: ClientConnection, n: int,
                         timeout: float = 10.0) -> list[dict[str, str]]:
    """At least n trades from trades pushes, in arrival order."""
    out: list[dict[str, str]] = []
    with anyio.fail_after(timeout):
        while len(out) < n:
            out.extend((await next_push(ws, "trades", timeout))["data"])
    return out
