"""Flushes: turn a batch into Parquet parts, compact, rewrite the manifest.

Every crash is recoverable without duplicates or losses: parts are written (atomically)
before the manifest lists them; a merged part names the parts it replaces in its metadata and
is visible before they are unlinked, so at start-up resume.py adopts parts the manifest
missed, removes replaced ones still there, and forgets listed ones already gone.
The heavy work (building tables, compressing, fsync) runs in a worker thread; the in-memory
manifest is only touched on the event loop thread.
"""

from __future__ import annotations

import logging
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio
import pyarrow as pa

from workers.ingestor import compact
from workers.ingestor.config import Settings
from workers.ingestor.ingest import Batch, Columns, Ingest
from workers.ingestor.messages import Candle
from workers.ingestor.report import Reporter
from workers.ingestor.resume import Stores
from workers.ingestor.store import TS_TYPE, PartFile, PartStore

log = logging.getLogger(__name__)


def _numbers(values: array[Any], type_: pa.DataType) -> pa.Array:
    """A typed array's bytes as an Arrow array (no per-value conversion)."""
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(values)])


def tick_table(inst: str, cols: Columns) -> pa.Table:
    """The tick schema's columns from the buffered columns."""
    n = len(cols)
    return pa.table({
        "ts": _numbers(cols.ts, pa.int64()).cast(TS_TYPE),
        "inst": pa.array([inst] * n, pa.string()),
        "trade_id": pa.array(cols.trade_id, pa.string()),
        "price": _numbers(cols.price, pa.float64()),
        "size": _numbers(cols.size, pa.float64()),
        "side": pa.array(cols.side, pa.string()),
    })


def candle_table(inst: str, rows: list[tuple[Candle, str]]) -> pa.Table:
    return pa.table({
        "ts": pa.array([c.ts for c, _ in rows], TS_TYPE),
        "inst": pa.array([inst] * len(rows), pa.string()),
        "open": pa.array([c.open for c, _ in rows], pa.float64()),
        "high": pa.array([c.high for c, _ in rows], pa.float64()),
        "low": pa.array([c.low for c, _ in rows], pa.float64()),
        "close": pa.array([c.close for c, _ in rows], pa.float64()),
        "vol": pa.array([c.vol for c, _ in rows], pa.float64()),
        "vol_currency": pa.array([c.vol_currency for c, _ in rows], pa.float64()),
        "vol_currency_quote": pa.array([c.vol_currency_quote for c, _ in rows], pa.float64()),
        "source": pa.array([s for _, s in rows], pa.string()),
    })


@dataclass
class Written:
    ticks: dict[str, list[PartFile]] = field(default_factory=dict)
    candles: dict[str, list[PartFile]] = field(default_factory=dict)


def write_batch(stores: Stores, batch: Batch) -> Written:
    """Write every instrument's rows of the batch (worker thread)."""
    out = Written()
    for inst, cols in batch.trades.items():
        out.ticks[inst] = stores.ticks.write(inst, tick_table(inst, cols))
    for inst, rows in batch.candles.items():
        out.candles[inst] = stores.candles.write(inst, candle_table(inst, rows))
    return out


def merge_groups(store: PartStore, groups: list[list[PartFile]]) -> list[tuple[list[PartFile], PartFile]]:
    """Merge each group and unlink its parts at once (worker thread): a reader globbing the
    directory sees both the merged part and the old ones only for that instant."""
    done = []
    for group in groups:
        merged = compact.merge(store, group)
        store.unlink([p.path for p in group])
        done.append((group, merged))
    return done


class Writer:
    """Owns flushing; one flush at a time (the writer task's loop)."""

    def __init__(self, settings: Settings, stores: Stores, ingest: Ingest, reporter: Reporter) -> None:
        self.s = settings
        self.stores = stores
        self.ingest = ingest
        self.reporter = reporter
        self.manifest_dirty = True

    def due(self, now: float) -> bool:
        ing = self.ingest
        if ing.pending_rows >= self.s.flush_rows:
            return True
        return ing.pending_since is not None and now - ing.pending_since >= self.s.flush_seconds

    async def flush(self) -> None:
        """Write what is pending (if anything), compact, save the manifest."""
        manifest = self.stores.manifest
        batch = self.ingest.take()
        marks = {inst: (b.window.last_ts, b.window.last_id) for inst, b in self.ingest.books.items()}
        if batch.rows:
            written = await anyio.to_thread.run_sync(write_batch, self.stores, batch)
            for inst, parts in written.ticks.items():
                rec = manifest.inst(inst)
                rec.files.update((p.path, p) for p in parts)
                rec.last_ts_ms, rec.last_trade_id = marks[inst]
                newest = max(p.last_ts for p in parts)
                if self.reporter.last_trade is None or newest >= self.reporter.last_trade[0]:
                    self.reporter.last_trade = (newest, inst)
            for inst, parts in written.candles.items():
                manifest.inst(inst).candles.files.update((p.path, p) for p in parts)
            manifest.batches += 1
            self.manifest_dirty = True
        await self._compact()
        for inst, book in self.ingest.books.items():
            rec = manifest.inst(inst)
            if rec.duplicates != book.duplicates:  # book starts from the manifest's count
                rec.duplicates = book.duplicates
                self.manifest_dirty = True
        if self.manifest_dirty:
            data = manifest.dumps()
            await anyio.to_thread.run_sync(manifest.save, data)
            self.manifest_dirty = False
        if batch.rows:
            rep = self.reporter
            rep.ticks = manifest.ticks
            rep.candles = sum(p.rows for r in manifest.instruments.values()
                              for p in r.candles.files.values())
            rep.batches = manifest.batches
            rep.flushed()

    async def _compact(self) -> None:
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        manifest = self.stores.manifest
        for store, files_of in ((self.stores.ticks, lambda r: r.files),
                                (self.stores.candles, lambda r: r.candles.files)):
            for inst, rec in manifest.instruments.items():
                files = files_of(rec)
                groups = compact.plan_all(files.values(), fanout=self.s.compact_fanout,
                                          max_rows=self.s.max_file_rows, today=today)
                if not groups:
                    continue
                merged = await anyio.to_thread.run_sync(merge_groups, store, groups)
                for group, part in merged:
                    for old in group:
                        files.pop(old.path, None)
                    files[part.path] = part
                self.manifest_dirty = True
                log.debug("%s %s: %d parts after compaction", store.name, inst, len(files))
