"""What every feed module shares: settings, the market, faults, counters, the clock, the
served log and the proofwatch run handle."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from workers.sandbox._skeleton import MINUTE_MS, block_ms_for
from workers.sandbox.errors import BadParameter
from workers.sandbox.faults import Faults
from workers.sandbox.market import Market

if TYPE_CHECKING:
    from workers.sdk import Run

DEFAULT_INSTRUMENTS = ("BTC-USDT", "ETH-USDT", "SHIB-USDT")
MAX_HISTORY_MINUTES = 7 * 1440
MAX_HISTORY_BLOCKS = 200_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Settings:
    """How the sandbox behaves; see the package docstring for each knob."""

    seed: int = 7
    rate: float = 50.0
    instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    chaos: float = 0.0  # per connection and second: probability of an abrupt drop
    batch: int = 1  # max trades per WS push
    conn_per_sec: float = 1.0  # new WS connections per second per IP (<= 0: unlimited)
    rest_per_min: int = 500  # REST requests per minute per IP (<= 0: unlimited)
    idle_timeout: float = 30.0  # close a WS with no subscription after this long
    history_minutes: int | None = None  # market history before now (None: up to 7 days)
    start_ms: int | None = None  # market start (None: now - history)
    candle_interval: float = 1.0  # seconds between candle pushes of a forming bar
    max_queue: int = 50_000  # pushes buffered per connection before dropping it as too slow

    def __post_init__(self) -> None:
        if not self.instruments:
            raise BadParameter("instruments", "at least one instrument is needed")
        if not self.rate > 0:
            raise BadParameter("rate", f"{self.rate!r}: must be > 0 trades per second")
        if not 0.0 <= self.chaos <= 1.0:
            raise BadParameter("chaos", f"{self.chaos!r}: must be within 0.0..1.0")
        if self.batch < 1:
            raise BadParameter("batch", f"{self.batch!r}: must be >= 1")
        if not self.idle_timeout > 0:
            raise BadParameter("idle_timeout", f"{self.idle_timeout!r}: must be > 0 seconds")
        if not self.candle_interval > 0:
            raise BadParameter("candle_interval",
                               f"{self.candle_interval!r}: must be > 0 seconds")
        if self.history_minutes is not None and self.history_minutes < 0:
            raise BadParameter("history_minutes", f"{self.history_minutes!r}: must be >= 0")

    def history(self) -> int:
        """Minutes of history: as given, else 7 days capped so the skeleton stays small."""
        if self.history_minutes is not None:
            return self.history_minutes
        per_minute = MINUTE_MS // block_ms_for(self.rate)
        return min(MAX_HISTORY_MINUTES, MAX_HISTORY_BLOCKS // per_minute)


@dataclass
class Counters:
    """Monotonic counters, reported by /_sandbox/state and in heartbeats."""

    requests: int = 0
    rest_errors_injected: int = 0
    rate_limited: int = 0
    ws_accepted: int = 0
    ws_rejected: int = 0
    ws_open: int = 0
    pushes: int = 0
    trades_served: int = 0
    malformed_sent: int = 0
    fault_drops: int = 0
    chaos_drops: int = 0
    slow_drops: int = 0
    idle_closes: int = 0


class ServedLog:
    """The tradeIds pushed over WS so far, per instrument, as merged [lo, hi) ranges."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranges: dict[str, list[tuple[int, int]]] = {}

    def add(self, inst: str, lo: int, hi: int) -> None:
        with self._lock:
            ranges = self._ranges.setdefault(inst, [])
            if ranges and ranges[-1][1] == lo:
                ranges[-1] = (ranges[-1][0], hi)
            else:
                ranges.append((lo, hi))

    def ranges(self, inst: str) -> list[tuple[int, int]]:
        """Sorted, merged ranges."""
        with self._lock:
            ranges = sorted(self._ranges.get(inst, ()))
        merged: list[tuple[int, int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return merged

    def ids(self, inst: str) -> list[str]:
        """Every served tradeId of `inst`, ascending."""
        return [str(i) for lo, hi in self.ranges(inst) for i in range(lo, hi)]


@dataclass
class Context:
    """The shared state of one sandbox server."""

    settings: Settings
    market: Market
    faults: Faults = field(default_factory=Faults)
    counters: Counters = field(default_factory=Counters)
    served: ServedLog = field(default_factory=ServedLog)
    clock: Callable[[], int] = wall_clock_ms
    run: Run | None = None

    @classmethod
    def create(cls, settings: Settings, *, clock: Callable[[], int] = wall_clock_ms,
               run: Run | None = None) -> Context:
        """A context with a market that starts `history` minutes before now."""
        start = settings.start_ms
        if start is None:
            start = clock() - settings.history() * MINUTE_MS
        market = Market(settings.seed, settings.instruments, start, settings.rate)
        return cls(settings, market, clock=clock, run=run)

    def now_ms(self) -> int:
        return self.clock()

    def beat(self) -> None:
        """Heartbeat progress (throttled by the sdk); call from the serving loop only."""
        if self.run is not None:
            c = self.counters
            self.run.beat({"requests": c.requests, "trades_served": c.trades_served},
                          phase="serving",
                          message=f"{c.ws_open} ws open, {c.trades_served} trades served, "
                                  f"{c.requests} requests")

    def state(self) -> dict[str, Any]:
        """Counters, settings and pending faults (for /_sandbox/state)."""
        return {
            "now_ms": self.now_ms(),
            "start_ms": self.market.start_ms,
            "block_ms": self.market.block_ms,
            "settings": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in asdict(self.settings).items()},
            "counters": asdict(self.counters),
            "faults": self.faults.pending(),
        }


@dataclass
class Feed:
    """What a feed module (blofin.py, later odds.py, sportsbook.py) adds to the app: routes,
    services (coroutines run for the server's lifetime, cancelled at shutdown) and closers
    (called once the services have stopped)."""

    name: str
    routes: list[BaseRoute]
    services: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
