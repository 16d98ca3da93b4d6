"""Running the sandbox: `running_sandbox(...)` for tests and benches, `serve(...)` for the CLI.

    with running_sandbox(seed=7, rate=200.0, instruments=["BTC-USDT"]) as sb:
        httpx.get(sb.http_url + "/api/v1/market/trades", params={"instId": "BTC-USDT"})
        async with websockets.connect(sb.ws_url) as ws: ...
        sb.faults.drop(); sb.served("BTC-USDT"); sb.market.trades_between(...)

uvicorn runs in a background thread on a socket bound before it starts; `running_sandbox`
returns once uvicorn has finished its startup (lifespan done, listening), and on exit asks it
to stop and joins the thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from workers.sandbox._context import Context, Settings, wall_clock_ms
from workers.sandbox._control import is_loopback
from workers.sandbox._wsproto import SandboxWSProtocol
from workers.sandbox.app import build_app
from workers.sandbox.errors import RemoteHostRefused, SandboxStartError
from workers.sandbox.faults import Faults
from workers.sandbox.market import Market
from workers.sdk import Run

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 30.0


@dataclass
class SandboxHandle:
    """A running sandbox, as seen by a test."""

    ctx: Context
    host: str
    port: int

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/public"

    @property
    def market(self) -> Market:
        return self.ctx.market

    @property
    def faults(self) -> Faults:
        return self.ctx.faults

    def served(self, inst: str) -> list[str]:
        """The tradeIds pushed over WS so far (any connection), ascending."""
        return self.ctx.served.ids(inst)

    def now_ms(self) -> int:
        """The sandbox clock."""
        return self.ctx.now_ms()

    def state(self) -> dict[str, Any]:
        """Counters, settings and pending faults (as GET /_sandbox/state)."""
        return self.ctx.state()


def check_host(host: str, allow_remote: bool) -> None:
    """RemoteHostRefused unless host is loopback or allow_remote is set."""
    if not allow_remote and not is_loopback(host):
        raise RemoteHostRefused(host)


def uvicorn_config(ctx: Context, **kwargs: Any) -> uvicorn.Config:
    """uvicorn settings for the sandbox: no logging setup of its own, no protocol pings
    (BloFin clients keep alive with a plain-text ping)."""
    return uvicorn.Config(
        build_app(ctx),
        log_config=None,
        access_log=False,
        lifespan="on",
        ws=SandboxWSProtocol,
        ws_ping_interval=None,
        timeout_graceful_shutdown=2,
        **kwargs,
    )


class _Server(uvicorn.Server):
    """uvicorn that reports when its startup is over (listening or failed)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.startup_done.set()


@contextmanager
def running_sandbox(
    seed: int = 7,
    rate: float = 200.0,
    instruments: Iterable[str] = ("BTC-USDT",),
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    chaos: float = 0.0,
    batch: int = 1,
    conn_per_sec: float = 0.0,
    rest_per_min: int = 500,
    idle_timeout: float = 30.0,
    history_minutes: int | None = 60,
    start_ms: int | None = None,
    candle_interval: float = 1.0,
    clock: Callable[[], int] = wall_clock_ms,
    allow_remote: bool = False,
    run: Run | None = None,
) -> Iterator[SandboxHandle]:
    """Serve the sandbox in a background thread; yields once it accepts connections."""
    check_host(host, allow_remote)
    settings = Settings(seed=seed, rate=rate, instruments=tuple(instruments), chaos=chaos,
                        batch=batch, conn_per_sec=conn_per_sec, rest_per_min=rest_per_min,
                        idle_timeout=idle_timeout, history_minutes=history_minutes,
                        start_ms=start_ms, candle_interval=candle_interval)
    ctx = Context.create(settings, clock=clock, run=run)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SandboxStartError(f"sandbox: cannot listen on {host}:{port}: {exc}") from exc
    server = _Server(uvicorn_config(ctx))
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting thread
            failure.append(exc)
        finally:
            server.startup_done.set()

    thread = threading.Thread(target=target, name=f"sandbox-{sock.getsockname()[1]}",
                              daemon=True)
    thread.start()
    try:
        if not server.startup_done.wait(STARTUP_TIMEOUT) or not server.started:
            raise SandboxStartError(
                f"sandbox on {host}:{sock.getsockname()[1]} did not start: "
                f"{failure[0] if failure else 'startup timed out'}")
        yield SandboxHandle(ctx, host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def serve(settings: Settings, host: str, port: int, *, allow_remote: bool = False,
          run: Run | None = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (the CLI)."""
    check_host(host, allow_remote)
    ctx = Context.create(settings, run=run)
    log.info("sandbox: seed=%d rate=%s instruments=%s on http://%s:%d (market from %d)",
             settings.seed, settings.rate, ",".join(settings.instruments), host, port,
             ctx.market.start_ms)
    uvicorn.Server(uvicorn_config(ctx, host=host, port=port)).run()
