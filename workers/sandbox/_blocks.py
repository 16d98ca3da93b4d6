"""Drawing the trades of one block, vectorised with pyarrow (several million trades a second).

Each block has its own RNG streams, seeded from (seed, instrument, block, stream), so a block
can be drawn alone and always comes out the same:
- prices: a bridge from the previous close to the block's close (fat-tailed steps, rounded to
  ticks), so the skeleton's closes are hit exactly;
- sizes: a lognormal table with a whale tail, in contracts;
- times: uniform over the block plus a few bursts (hundreds of trades a second), sorted;
- sides: the taker side follows the tick direction; a coin decides unchanged prices.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from statistics import NormalDist

import pyarrow as pa
import pyarrow.compute as pc

from workers.sandbox._instruments import InstrumentSpec, price_formatter
from workers.sandbox._skeleton import Skeleton

_TABLE = 4096
_ND = NormalDist()
_Z = [_ND.inv_cdf((k + 0.5) / _TABLE) for k in range(_TABLE)]
_STEPS = pa.array([z * 1.6 if abs(z) > 2.2 else z for z in _Z], pa.float64())
_ARANGE: list[pa.Array] = [pa.array([], pa.float64())]

Agg = tuple[int, int, int, int, int, int]  # open, high, low, close (ticks), vol, sum(ticks*size)


@dataclass(slots=True)
class Block:
    """The trades of one block, as parallel Python lists (index order == time order)."""

    inst: str
    index: int
    start_ms: int
    first_id: int  # numeric tradeId of the first trade
    ts: list[int]
    px: list[int]
    sz: list[int]
    buy: list[bool]
    _wire: list[str] | None = field(default=None, repr=False)
    _ids: list[str] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.ts)

    def ids(self) -> list[str]:
        """The tradeIds as strings (cached)."""
        if self._ids is None:
            self._ids = [str(i) for i in range(self.first_id, self.first_id + len(self.ts))]
        return self._ids

    def wire(self, spec: InstrumentSpec) -> list[str]:
        """Each trade as the BloFin JSON object, pre-serialised once (cached)."""
        if self._wire is None:
            fmt = price_formatter(spec)
            head = '{"instId":"' + self.inst + '","tradeId":"'
            self._wire = [
                f'{head}{i}","price":"{fmt(p)}","size":"{s}","side":"{"buy" if b else "sell"}",'
                f'"ts":"{t}"}}'
                for i, p, s, b, t in zip(self.ids(), self.px, self.sz, self.buy, self.ts)
            ]
        return self._wire

    def agg(self, i0: int = 0, i1: int | None = None) -> Agg | None:
        """OHLC/volume of trades [i0, i1) (all by default); None when there are none."""
        n = len(self.px)
        i1 = n if i1 is None else i1
        if i1 <= i0:
            return None
        px = self.px if (i0, i1) == (0, n) else self.px[i0:i1]
        sz = self.sz if (i0, i1) == (0, n) else self.sz[i0:i1]
        return (px[0], max(px), min(px), px[-1], sum(sz), sum(map(int.__mul__, px, sz)))


def draw_prices_sizes(seed: int, sk: Skeleton, b: int) -> tuple[pa.Array, pa.Array]:
    """Prices (ticks) and sizes (contracts) of block b's trades, in order."""
    n = sk.count[b]
    rng = random.Random(f"{seed}/{sk.spec.inst_id}/{b}/px")
    o, c = sk.open_of(b), sk.close[b]
    walk = pc.cumulative_sum(pc.multiply(pc.take(_STEPS, _u12(rng, n)), sk.step[b]))
    last = walk[n - 1].as_py()
    frac = pc.divide(_arange(n), float(n))
    path = pc.add(pc.add(pc.multiply(frac, float(c - o) - last), walk), float(o))
    px = pc.max_element_wise(pc.cast(pc.round(path), pa.int64()), 1)
    sz = pc.take(_size_table(sk.spec), _u12(rng, n))
    return px, sz


def draw_agg(seed: int, sk: Skeleton, b: int) -> Agg | None:
    """Block b's OHLC/volume without drawing times and sides."""
    if sk.count[b] == 0:
        return None
    px, sz = draw_prices_sizes(seed, sk, b)
    mm = pc.min_max(px).as_py()  # type: ignore[attr-defined]
    n = len(px)
    return (px[0].as_py(), mm["max"], mm["min"], px[n - 1].as_py(), pc.sum(sz).as_py(),
            pc.sum(pc.multiply(px, sz)).as_py())


def draw_block(seed: int, sk: Skeleton, b: int, start_ms: int, id_base: int) -> Block:
    """All trades of block b."""
    n = sk.count[b]
    first_id = id_base + sk.first[b]
    if n == 0:
        return Block(sk.spec.inst_id, b, start_ms, first_id, [], [], [], [])
    px, sz = draw_prices_sizes(seed, sk, b)
    rng = random.Random(f"{seed}/{sk.spec.inst_id}/{b}/ts")
    ts = _times(rng, n, sk.block_ms, start_ms)
    prev = pa.concat_arrays([pa.array([sk.open_of(b)], pa.int64()), px.slice(0, n - 1)])
    diff = pc.subtract(px, prev)
    coin = pc.equal(pc.bit_wise_and(_u12(rng, n), 1), 1)
    buy = pc.or_(pc.greater(diff, 0), pc.and_(pc.equal(diff, 0), coin))
    return Block(sk.spec.inst_id, b, start_ms, first_id, ts.to_pylist(), px.to_pylist(),
                 sz.to_pylist(), buy.to_pylist())


def _times(rng: random.Random, n: int, block_ms: int, start_ms: int) -> pa.Array:
    u = pc.divide(pc.cast(_u32(rng, n), pa.float64()), 4294967296.0)
    parts: list[pa.Array] = []
    k = 0
    bursts = rng.choices((0, 1, 2, 3), weights=(40, 35, 15, 10))[0]
    if bursts and n >= 20:
        k = int(n * rng.uniform(0.15, 0.6))
        cuts = sorted(rng.randrange(k + 1) for _ in range(bursts - 1))
        edges = [0, *cuts, k]
        for lo_i, hi_i in zip(edges, edges[1:]):
            width = min(float(block_ms), rng.uniform(150.0, 1500.0))
            lo = rng.uniform(0.0, block_ms - width)
            parts.append(pc.add(pc.multiply(u.slice(lo_i, hi_i - lo_i), width), lo))
    parts.append(pc.multiply(u.slice(k), float(block_ms)))
    offsets = pa.concat_arrays(parts)
    offsets = pc.take(offsets, pc.array_sort_indices(offsets))
    ms = pc.min_element_wise(pc.cast(pc.floor(offsets), pa.int64()), block_ms - 1)
    return pc.add(ms, start_ms)


def _u12(rng: random.Random, n: int) -> pa.Array:
    raw = pa.Array.from_buffers(pa.uint16(), n, [None, pa.py_buffer(rng.randbytes(2 * n))])
    return pc.bit_wise_and(raw, _TABLE - 1)


def _u32(rng: random.Random, n: int) -> pa.Array:
    return pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(rng.randbytes(4 * n))])


def _arange(n: int) -> pa.Array:
    """1.0, 2.0, ..., n (a slice of a shared, growing array)."""
    if len(_ARANGE[0]) < n:
        _ARANGE[0] = pa.array(range(1, max(n, 2 * len(_ARANGE[0])) + 1), pa.float64())
    return _ARANGE[0].slice(0, n)


@functools.lru_cache(maxsize=64)
def _size_table(spec: InstrumentSpec) -> pa.Array:
    sizes = []
    for z in _Z:
        s = spec.size_median * pow(2.718281828, 1.1 * z)
        if z > 2.6:  # the whale tail
            s *= 4.0
        sizes.append(max(1, round(s)))
    return pa.array(sizes, pa.int64())
