"""The block-level path of one instrument: regimes, volatility clusters, trade counts.

Time is cut into blocks of `block_ms` (a divisor of one minute). For each block the skeleton
fixes the close price (ticks), the number of trades and the per-trade noise; the trades inside
a block are drawn later (`_blocks.py`) as a bridge from the previous close to this close, so
any block can be generated alone once the skeleton reaches it. The skeleton itself is
sequential (one seeded RNG per instrument) and cheap: a few microseconds per block.

Model per block: a Markov regime (chop / trend up / trend down, mean length 20 minutes), a
GARCH-like variance in variance-targeting form (shocks raise it, it decays to the base), rare
jumps, and a trade intensity that rises with volatility (bursty activity).
"""

from __future__ import annotations

import math
import random
import threading
from array import array

from workers.sandbox._instruments import InstrumentSpec

MINUTE_MS = 60_000
BLOCK_CHOICES_MS = (60_000, 30_000, 20_000, 15_000, 10_000, 6_000, 5_000, 3_000, 2_000,
                    1_000, 500, 250, 200, 100)
TARGET_TRADES_PER_BLOCK = 4_000


def block_ms_for(rate: float) -> int:
    """The longest block (a divisor of a minute) holding about TARGET_TRADES_PER_BLOCK trades."""
    for ms in BLOCK_CHOICES_MS:
        if rate * ms / 1000.0 <= TARGET_TRADES_PER_BLOCK:
            return ms
    return BLOCK_CHOICES_MS[-1]


class Skeleton:
    """Per-block close (ticks), trade count, first trade index and noise for one instrument."""

    def __init__(self, seed: int, spec: InstrumentSpec, block_ms: int, rate: float) -> None:
        self.spec = spec
        self.block_ms = block_ms
        self._rng = random.Random(f"{seed}/{spec.inst_id}/skeleton")
        self._lock = threading.Lock()
        self.close = array("q")
        self.count = array("q")
        self.first = array("q")  # index of the block's first trade since the market start
        self.step = array("d")  # stdev of one trade-to-trade move, in ticks
        self._tick = float(spec.tick)
        self._dt = block_ms / MINUTE_MS
        self._base_var = spec.vol_per_min**2 * self._dt
        self._phi = 0.985**self._dt
        self._shock = 0.10 * min(1.0, self._dt)
        self._switch = 1.0 - math.exp(-self._dt / 20.0)
        self._jump = 0.002 * self._dt
        self._lam = rate * block_ms / 1000.0
        self._var = self._base_var
        self._regime = 0
        self._logp = math.log(spec.price) + self._rng.uniform(-0.03, 0.03)
        self._anchor = self._logp
        self.open0 = max(1, round(math.exp(self._logp) / self._tick))
        self._total = 0

    def open_of(self, b: int) -> int:
        """The price before block b's first trade (the previous block's close)."""
        return self.close[b - 1] if b > 0 else self.open0

    def ensure(self, b: int) -> None:
        """Extend the skeleton so that block b exists."""
        if b < len(self.close):
            return
        with self._lock:
            while len(self.close) <= b:
                self._advance()

    def _advance(self) -> None:
        rng = self._rng
        if rng.random() < self._switch:
            r = rng.random()
            self._regime = 0 if r < 0.5 else (1 if r < 0.75 else -1)
            self._anchor = self._logp
        sd = math.sqrt(self._var)
        base_sd = math.sqrt(self._base_var)
        if self._regime:
            mu = self._regime * 0.4 * base_sd
        else:
            mu = -0.15 * self._dt * (self._logp - self._anchor)
        noise = sd * rng.gauss(0.0, 1.0)
        if rng.random() < self._jump:
            noise += rng.choice((-1.0, 1.0)) * 4.0 * base_sd
        self._logp += mu + noise
        var = self._base_var + self._phi * (self._var - self._base_var)
        var += self._shock * (noise * noise - self._var)
        self._var = min(max(var, 0.1 * self._base_var), 25.0 * self._base_var)
        activity = (sd / base_sd) ** 1.2 * math.exp(0.4 * rng.gauss(0.0, 1.0) - 0.08)
        n = _poisson(rng, self._lam * min(max(activity, 0.1), 10.0))
        close = max(1, round(math.exp(self._logp) / self._tick))
        self.close.append(close)
        self.count.append(n)
        self.first.append(self._total)
        self.step.append(max(0.2, sd * close / math.sqrt(max(n, 1))))
        self._total += n


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0.0:
        return 0
    if lam > 50.0:
        return max(0, round(lam + math.sqrt(lam) * rng.gauss(0.0, 1.0)))
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
