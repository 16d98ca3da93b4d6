"""Bounded de-duplication by trade id, per instrument.

A window holds the last `size` trade ids admitted plus a floor: the newest ts among the ids it
has forgotten. A trade is a duplicate when its id is in the window, or when it is older than the
floor (anything that old was admitted before, or lies in a gap already recorded). The window is
much larger than the REST recovery window (100 trades), so a replayed trade is always still
remembered; memory stays at `size` ids however long the ingestor runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from workers.ingestor.messages import Trade


class TradeWindow:
    """The trade ids seen recently for one instrument, and the newest trade (the watermark)."""

    __slots__ = ("size", "_ids", "_order", "floor_ts", "last_ts", "last_id")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"dedup window size must be >= 1, got {size}")
        self.size = size
        self._ids: set[str] = set()
        self._order: deque[tuple[int, str]] = deque()
        self.floor_ts = -1  # trades with ts < floor_ts are treated as already seen
        self.last_ts = -1
        self.last_id = ""

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, trade_id: object) -> bool:
        return trade_id in self._ids

    def admit(self, trade_id: str, ts: int) -> bool:
        """Remember the trade and return True unless it was seen (or is older than the floor)."""
        if trade_id in self._ids or ts < self.floor_ts:
            return False
        self._ids.add(trade_id)
        self._order.append((ts, trade_id))
        if ts >= self.last_ts:
            self.last_ts, self.last_id = ts, trade_id
        if len(self._order) > self.size:
            old_ts, old_id = self._order.popleft()
            self._ids.discard(old_id)
            if old_ts > self.floor_ts:
                self.floor_ts = old_ts
        return True

    def admit_many(self, trades: list[Trade]) -> list[Trade]:
        """The trades not seen before (each remembered), in order; `admit` for a whole push."""
        ids, order, size = self._ids, self._order, self.size
        floor, last_ts, last_id = self.floor_ts, self.last_ts, self.last_id
        fresh = []
        for t in trades:
            tid, ts = t.trade_id, t.ts
            if tid in ids or ts < floor:
                continue
            ids.add(tid)
            order.append((ts, tid))
            fresh.append(t)
            if ts >= last_ts:
                last_ts, last_id = ts, tid
        while len(order) > size:
            old_ts, old_id = order.popleft()
            ids.discard(old_id)
            if old_ts > floor:
                floor = old_ts
        self.floor_ts, self.last_ts, self.last_id = floor, last_ts, last_id
        return fresh

    def restore(self, trades: Iterable[tuple[int, str]], last_ts: int, last_id: str,
                floor_ts: int = -1) -> None:
        """Reload state after a restart from (ts, trade_id) pairs oldest first (the last files)."""
        for ts, trade_id in trades:
            self.admit(trade_id, ts)
        if last_ts > self.last_ts:
            self.last_ts, self.last_id = last_ts, last_id
        self.floor_ts = max(self.floor_ts, floor_ts)


class BarWindow:
    """Bar open times (ms) already stored for one instrument, bounded like TradeWindow."""

    __slots__ = ("size", "_ts", "_order", "floor_ts")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ts: set[int] = set()
        self._order: deque[int] = deque()
        self.floor_ts = -1

    def __contains__(self, ts: object) -> bool:
        return ts in self._ts or (isinstance(ts, int) and ts < self.floor_ts)

    def __len__(self) -> int:
        return len(self._ts)

    def add(self, ts: int) -> bool:
        """Remember a stored bar; False when it was stored already."""
        if ts in self:
            return False
        self._ts.add(ts)
        self._order.append(ts)
        if len(self._order) > self.size:
            old = self._order.popleft()
            self._ts.discard(old)
            self.floor_ts = max(self.floor_ts, old)
        return True
