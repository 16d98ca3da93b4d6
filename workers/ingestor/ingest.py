"""The ingest core (no I/O): de-duplicate trades and bars, buffer them for the next flush.

Runs on the event loop thread only. A flush takes the buffers (`take`) and hands them to the
writer; the buffers are plain column lists, so the per-trade cost is a set lookup and five
appends, and memory is bounded by the flush size plus the de-dup windows.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from workers.ingestor.dedup import BarWindow, TradeWindow
from workers.ingestor.gaps import BarTracker, PendingGap, bar_of
from workers.ingestor.messages import Candle, Trade

BUY, SELL = "buy", "sell"


@dataclass
class Columns:
    """Pending trades of one instrument, column-wise (what the Parquet writer wants).

    Numbers live in typed arrays (8 bytes each, handed to Arrow without conversion), sides
    as one shared str per value: about 100 bytes a trade, a third of plain lists.
    """

    ts: array[int] = field(default_factory=lambda: array("q"))
    trade_id: list[str] = field(default_factory=list)
    price: array[float] = field(default_factory=lambda: array("d"))
    size: array[float] = field(default_factory=lambda: array("d"))
    side: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Book:
    """Everything the ingestor tracks for one instrument between flushes."""

    inst: str
    window: TradeWindow
    bars: BarWindow
    tracker: BarTracker = field(default_factory=BarTracker)
    pending: Columns = field(default_factory=Columns)
    candles: list[tuple[Candle, str]] = field(default_factory=list)
    gap: PendingGap | None = None
    duplicates: int = 0
    live: bool = True  # False once the exchange says the instrument does not exist


@dataclass
class Batch:
    """What one flush writes: per instrument, trade columns and (candle, source) rows."""

    trades: dict[str, Columns]
    candles: dict[str, list[tuple[Candle, str]]]
    rows: int


class Ingest:
    """De-dup + buffering for every instrument."""

    def __init__(self, instruments: Iterable[str], *, window: int, bar_window: int = 20_160,
                 history_bars: int = 0) -> None:
        self.books = {i: Book(i, TradeWindow(window), BarWindow(bar_window), BarTracker(history_bars=history_bars))
                      for i in instruments}
        self.pending_rows = 0  # trades + bars waiting for the next flush
        self.pending_since: float | None = None
        self.admitted = 0  # trades admitted since start (stored or about to be)
        self.started_ms = int(time.time() * 1000)

    def add_trades(self, inst: str, trades: list[Trade], *, pushed: bool) -> int:
        """Admit new trades; `pushed` for the stream (its first trade closes a pending gap)."""
        book = self.books.get(inst)
        if book is None:
            return 0
        fresh = book.window.admit_many(trades)
        book.duplicates += len(trades) - len(fresh)
        if pushed and trades:
            gap = book.gap
            if gap is not None and gap.first_ws_ts is None:
                gap.first_ws_ts = min(t.ts for t in trades)
            book.tracker.saw(bar_of(max(t.ts for t in trades)), time.monotonic())
        if not fresh:
            return 0
        cols = book.pending
        cols.ts.extend([t.ts for t in fresh])
        cols.trade_id.extend([t.trade_id for t in fresh])
        cols.price.extend([t.price for t in fresh])
        cols.size.extend([t.size for t in fresh])
        cols.side.extend([BUY if t.side == BUY else SELL for t in fresh])
        added = len(fresh)
        self.admitted += added
        self._grew(added)
        return added

    def add_candles(self, inst: str, candles: Iterable[Candle], source: str) -> int:
        """Buffer confirmed bars not stored before; unconfirmed ones only advance the tracker."""
        book = self.books.get(inst)
        if book is None:
            return 0
        added = 0
        now = time.monotonic()
        for c in candles:
            if source == "ws":
                book.tracker.saw(c.ts, now)
            if c.confirm and book.bars.add(c.ts):
                book.candles.append((c, source))
                added += 1
        if added:
            self._grew(added)
        return added

    def _grew(self, rows: int) -> None:
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        self.pending_rows += rows

    def take(self) -> Batch:
        """Hand over everything pending (the buffers restart empty)."""
        trades: dict[str, Columns] = {}
        candles: dict[str, list[tuple[Candle, str]]] = {}
        for inst, book in self.books.items():
            if book.pending:
                trades[inst], book.pending = book.pending, Columns()
            if book.candles:
                candles[inst], book.candles = book.candles, []
        batch = Batch(trades, candles, self.pending_rows)
        self.pending_rows = 0
        self.pending_since = None
        return batch

    def open_gap(self, inst: str, reason: str) -> None:
        """Trades of `inst` after the newest one seen may be missing (REST will be asked)."""
        book = self.books.get(inst)
        if book is None or not book.live:
            return
        if book.gap is not None:
            book.gap.reopen(reason)
        elif book.window.last_ts >= 0:
            book.gap = PendingGap(book.window.last_ts, book.window.last_id, reason)
        else:  # nothing seen yet: whatever was missed is newer than our start
            book.gap = PendingGap(self.started_ms, "", reason)
