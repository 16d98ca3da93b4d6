"""The deterministic market: trades and candles as a pure function of (seed, instrument, rate,
start). No I/O and no clock: callers pass `now_ms`.

    m = Market(seed=7, instruments=["BTC-USDT"], start_ms=t0, rate=50.0)
    m.trades_between("BTC-USDT", a, b)       # ground truth, ts in [a, b), oldest first
    m.trades_upto("BTC-USDT", now, 100)      # the last 100 trades with ts <= now, newest first
    m.candles("BTC-USDT", "1m", now_ms=now)  # newest first, confirm "0" for the forming bar

tradeIds are increasing integers (as strings) per instrument; ts is in ms, non-decreasing.
`start_ms` is rounded down to a whole minute. See `_skeleton.py` and `_blocks.py` for the model.
"""

from __future__ import annotations

import threading
import zlib
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from workers.sandbox import _bars
from workers.sandbox._bars import Candle
from workers.sandbox._blocks import Agg, Block, draw_agg, draw_block
from workers.sandbox._instruments import InstrumentSpec, price_formatter, spec_for
from workers.sandbox._skeleton import MINUTE_MS, Skeleton, block_ms_for
from workers.sandbox.errors import BadParameter, UnknownInstrument

BLOCK_CACHE = 16  # blocks kept per instrument


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade."""

    trade_id: str
    inst: str
    price: str
    size: str
    side: str  # "buy" | "sell" (taker side)
    ts: int  # ms

    def to_blofin(self) -> dict[str, str]:
        """The BloFin trade object (all values strings)."""
        return {"instId": self.inst, "tradeId": self.trade_id, "price": self.price,
                "size": self.size, "side": self.side, "ts": str(self.ts)}


class Market:
    """Seeded trades and candles for a few instruments (thread-safe, cached)."""

    def __init__(self, seed: int, instruments: Iterable[str], start_ms: int, rate: float,
                 *, block_ms: int | None = None) -> None:
        insts = tuple(instruments)
        if not insts:
            raise BadParameter("instruments", "at least one instrument is needed")
        if len(set(insts)) != len(insts):
            raise BadParameter("instruments", f"duplicates in {', '.join(insts)}")
        if not rate > 0:
            raise BadParameter("rate", f"{rate!r}: must be > 0 trades per second")
        self.seed = seed
        self.rate = rate
        self.start_ms = start_ms - start_ms % MINUTE_MS
        self.block_ms = block_ms or block_ms_for(rate)
        if MINUTE_MS % self.block_ms:
            raise BadParameter("block_ms", f"{self.block_ms} does not divide a minute")
        self._specs = {i: spec_for(i) for i in insts}
        self._sk = {i: Skeleton(seed, s, self.block_ms, rate) for i, s in self._specs.items()}
        self._id_base = {i: 1_000_000_000 + zlib.crc32(f"{seed}/{i}".encode()) % 900_000_000
                         for i in insts}
        self._blocks: dict[str, OrderedDict[int, Block]] = {i: OrderedDict() for i in insts}
        self._aggs: dict[str, dict[int, Agg | None]] = {i: {} for i in insts}
        self._lock = threading.Lock()

    @property
    def instruments(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def spec(self, inst: str) -> InstrumentSpec:
        """The instrument's profile; UnknownInstrument when the sandbox does not serve it."""
        try:
            return self._specs[inst]
        except KeyError:
            raise UnknownInstrument(inst, self.instruments) from None

    # -- trades -----------------------------------------------------------------------------

    def block(self, inst: str, b: int) -> Block:
        """Block b of an instrument (cached)."""
        self.spec(inst)
        cache = self._blocks[inst]
        with self._lock:
            hit = cache.get(b)
            if hit is not None:
                cache.move_to_end(b)
                return hit
        sk = self._sk[inst]
        sk.ensure(b)
        blk = draw_block(self.seed, sk, b, self.start_ms + b * self.block_ms, self._id_base[inst])
        with self._lock:
            cache[b] = blk
            while len(cache) > BLOCK_CACHE:
                cache.popitem(last=False)
        return blk

    def block_of(self, ms: int) -> int:
        """The index of the block containing time ms (negative before the start)."""
        return (ms - self.start_ms) // self.block_ms

    def slices(self, inst: str, start_ms: int, end_ms: int) -> Iterator[tuple[Block, int, int]]:
        """(block, i0, i1): the trades with ts in [start_ms, end_ms), oldest first."""
        self.spec(inst)
        first = max(0, self.block_of(start_ms))
        last = self.block_of(end_ms - 1)
        for b in range(first, last + 1):
            blk = self.block(inst, b)
            i0 = bisect_left(blk.ts, start_ms) if start_ms > blk.start_ms else 0
            i1 = bisect_left(blk.ts, end_ms) if end_ms < blk.start_ms + self.block_ms else blk.n
            if i1 > i0:
                yield blk, i0, i1

    def trades_between(self, inst: str, start_ms: int, end_ms: int) -> list[Trade]:
        """Every trade with start_ms <= ts < end_ms, oldest first (the ground truth)."""
        out: list[Trade] = []
        for blk, i0, i1 in self.slices(inst, start_ms, end_ms):
            out.extend(self._trades(blk, i0, i1))
        return out

    def trades_upto(self, inst: str, now_ms: int, limit: int) -> list[Trade]:
        """The last `limit` trades with ts <= now_ms, newest first."""
        self.spec(inst)
        out: list[Trade] = []
        b = self.block_of(now_ms)
        while b >= 0 and len(out) < limit:
            blk = self.block(inst, b)
            i1 = bisect_right(blk.ts, now_ms)
            i0 = max(0, i1 - (limit - len(out)))
            out.extend(reversed(self._trades(blk, i0, i1)))
            b -= 1
        return out

    def _trades(self, blk: Block, i0: int, i1: int) -> list[Trade]:
        fmt = price_formatter(self._specs[blk.inst])
        inst = blk.inst
        return [Trade(i, inst, fmt(p), str(s), "buy" if b else "sell", t)
                for i, p, s, b, t in zip(blk.ids()[i0:i1], blk.px[i0:i1], blk.sz[i0:i1],
                                         blk.buy[i0:i1], blk.ts[i0:i1])]

    # -- candles ----------------------------------------------------------------------------

    def candles(self, inst: str, bar: str = "1m", *, now_ms: int, after: int | None = None,
                before: int | None = None, limit: int = 500) -> list[Candle]:
        """Bars with trades, newest first: ts < after, ts > before, open by now_ms."""
        spec = self.spec(inst)
        bar_ms = _bars.bar_ms(bar)
        if now_ms < self.start_ms:
            return []
        top = now_ms - now_ms % bar_ms
        if after is not None:
            top = min(top, (after - 1) - (after - 1) % bar_ms)
        bottom = self.start_ms - self.start_ms % bar_ms
        if before is not None:
            bottom = max(bottom, _bars.ceil_to(before + 1, bar_ms))
        out: list[Candle] = []
        t = top
        while t >= bottom and len(out) < limit:
            agg = self._bar_agg(inst, t, bar_ms, now_ms)
            if agg is not None:
                out.append(_bars.candle(spec, t, agg, confirm=now_ms >= t + bar_ms))
            t -= bar_ms
        return out

    def candle_at(self, inst: str, bar: str, ts: int, now_ms: int) -> Candle | None:
        """The bar opening at ts as of now_ms (None when it has no trades yet)."""
        spec = self.spec(inst)
        bar_ms = _bars.bar_ms(bar)
        agg = self._bar_agg(inst, ts, bar_ms, now_ms)
        return None if agg is None else _bars.candle(spec, ts, agg, confirm=now_ms >= ts + bar_ms)

    def aggregate(self, inst: str, start_ms: int, end_ms: int) -> Agg | None:
        """OHLC (ticks), volume and sum(ticks*size) of the trades in [start_ms, end_ms)."""
        self.spec(inst)
        lo = max(start_ms, self.start_ms)
        aggs: list[Agg | None] = []
        while lo < end_ms:
            minute = lo - (lo - self.start_ms) % MINUTE_MS
            top = minute + MINUTE_MS
            if lo == minute and top <= end_ms:
                aggs.append(self._minute_agg(inst, (minute - self.start_ms) // MINUTE_MS))
            else:
                for blk, i0, i1 in self.slices(inst, lo, min(top, end_ms)):
                    aggs.append(blk.agg(i0, i1))
            lo = top
        return _bars.merge(aggs)

    def _bar_agg(self, inst: str, t: int, bar_ms: int, now_ms: int) -> Agg | None:
        return self.aggregate(inst, t, min(t + bar_ms, now_ms + 1))

    def _minute_agg(self, inst: str, m: int) -> Agg | None:
        cache = self._aggs[inst]
        if m in cache:
            return cache[m]
        per = MINUTE_MS // self.block_ms
        sk = self._sk[inst]
        sk.ensure((m + 1) * per - 1)
        aggs: list[Agg | None] = []
        for b in range(m * per, (m + 1) * per):
            hit = self._blocks[inst].get(b)
            aggs.append(hit.agg() if hit is not None else draw_agg(self.seed, sk, b))
        agg = _bars.merge(aggs)
        cache[m] = agg
        return agg
