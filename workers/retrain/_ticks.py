"""Ticks, reduced to 5-minute aggregates one Parquet part at a time, with a cache.

A retrain needs, per 5-minute bar, the trade count and the taker buy and sell volume; never
the raw trades. So each tick part is read once (ts, trade_id, size, side), reduced to one row
per bar it touches -- (ts, trades, buy_vol, sell_vol, first_ms, last_ms) -- and the result is
cached next to the model registry, under the part's own path. Parts are immutable (compaction
writes new parts under new names, never rewrites one), so a cached reduction stays valid for as
long as its part exists; reductions of parts that are gone are deleted. Memory is bounded by
one part (the ingestor caps them at --max-file-rows), not by the history: a day of the sandbox's
150 trades/s is 13 million ticks, a month 390 million.

The ingestor de-duplicates trades by id, and the store's consistent view holds each trade in
exactly one part; a part that still holds a repeated trade id is de-duplicated here (counted).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workers.retrain.config import BAR_MS

log = logging.getLogger(__name__)

VERSION = b"1"
AGG_SCHEMA = pa.schema([("ts", pa.int64()), ("trades", pa.int64()), ("buy_vol", pa.float64()),
                        ("sell_vol", pa.float64()), ("first_ms", pa.int64()), ("last_ms", pa.int64())],
                       metadata={b"proofwatch.retrain.ticks_5m": VERSION})
COLUMNS = ["ts", "trade_id", "size", "side"]


def reduce(ts: np.ndarray, size: np.ndarray, buy: np.ndarray) -> pa.Table:
    """Per 5-minute bar: trades, taker buy and sell volume, first and last trade time."""
    if len(ts) == 0:
        return AGG_SCHEMA.empty_table()
    if np.any(np.diff(ts) < 0):
        order = np.argsort(ts, kind="stable")
        ts, size, buy = ts[order], size[order], buy[order]
    bucket = ts - ts % BAR_MS
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    return pa.table({
        "ts": bucket[starts], "trades": (ends - starts).astype(np.int64),
        "buy_vol": np.add.reduceat(np.where(buy, size, 0.0), starts),
        "sell_vol": np.add.reduceat(np.where(buy, 0.0, size), starts),
        "first_ms": ts[starts], "last_ms": ts[ends - 1],
    }, schema=AGG_SCHEMA)


def reduce_part(path: Path) -> tuple[pa.Table, int]:
    """Read one tick part and reduce it; also how many repeated trade ids it held."""
    table = pq.read_table(path, columns=COLUMNS)
    dups = table.num_rows - pc.count_distinct(table.column("trade_id")).as_py()
    if dups:
        frame = pd.DataFrame({"id": table.column("trade_id").to_numpy(zero_copy_only=False)})
        keep = ~frame["id"].duplicated().to_numpy()
        table = table.filter(pa.array(keep))
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    buy = pc.equal(table.column("side"), "buy").to_numpy(zero_copy_only=False)
    return reduce(ts, table.column("size").to_numpy(), buy), dups


class Reducer:
    """Reduces tick parts through the cache under `cache_dir` (None: no cache)."""

    def __init__(self, data_dir: Path, cache_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.hits = self.misses = self.duplicates = 0
        self._warned = False

    def __call__(self, rel: str) -> pa.Table:
        cached = self.cache_dir / rel if self.cache_dir is not None else None
        if cached is not None:
            try:
                table = pq.read_table(cached)
                if (table.schema.metadata or {}).get(b"proofwatch.retrain.ticks_5m") == VERSION:
                    self.hits += 1
                    return table
            except (OSError, pa.ArrowException):
                pass  # missing or unreadable: reduce again
        table, dups = reduce_part(self.data_dir / rel)
        self.misses += 1
        self.duplicates += dups
        if cached is not None:
            self._store(cached, table)
        return table

    def _store(self, cached: Path, table: pa.Table) -> None:
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, tmp)
            os.replace(tmp, cached)
        except (OSError, pa.ArrowException) as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            if not self._warned:
                log.warning("cannot cache tick reductions in %s (%s): every run re-reads the ticks",
                            self.cache_dir, getattr(exc, "strerror", None) or exc)
                self._warned = True

    def prune(self, inst: str) -> int:
        """Delete the cached reductions of `inst`'s parts that no longer exist; how many."""
        if self.cache_dir is None:
            return 0
        gone = 0
        for cached in (self.cache_dir / "ticks" / f"inst={inst}").glob("date=*/part-*.parquet"):
            rel = cached.relative_to(self.cache_dir)
            if not (self.data_dir / rel).exists():
                cached.unlink(missing_ok=True)
                gone += 1
        return gone


def combine(tables: list[pa.Table], after_ms: int) -> tuple[pd.DataFrame | None, tuple[int, int] | None]:
    """One row per bar over all parts (a bar can straddle two parts), bars after `after_ms`;
    and the (first, last) trade time."""
    if not tables:
        return None, None
    frame = pa.concat_tables(tables).to_pandas()
    frame = frame[frame["ts"] + BAR_MS > after_ms]
    if frame.empty:
        return None, None
    span = (int(frame["first_ms"].min()), int(frame["last_ms"].max()))
    agg = frame.groupby("ts", sort=True).agg(trades=("trades", "sum"), buy_vol=("buy_vol", "sum"),
                                            sell_vol=("sell_vol", "sum"))
    return agg.reset_index(), span
