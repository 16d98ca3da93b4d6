"""Gap bookkeeping: what may have been missed, and what REST could and could not recover.

A PendingGap opens when trades may have been missed (disconnect, stall, restart, a malformed
trades push): it starts at the newest trade seen so far. It is resolved by one REST "last 100
trades" call made after the stream is live again. The stream (from the first trade pushed after
it resumed) and the REST window (its oldest trade up to the call) together cover everything
from the older of the two onward; if that reaches back past the start, nothing was lost,
otherwise [start_ms, end_ms] (inclusive) is recorded as a gap in the manifest.

BarTracker follows 1-minute bars: every closed bar must end up stored as a confirmed row,
from the stream or, failing that, from the paged REST candles endpoint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from workers.ingestor.messages import BAR_MS, Trade


@dataclass
class PendingGap:
    """Trades newer than the one seen at (start_ms, start_id) may be missing."""

    start_ms: int
    start_id: str
    reason: str
    first_ws_ts: int | None = None  # first trade pushed since the stream resumed
    armed: bool = False  # the stream is live again, so a REST call now closes the window
    attempts: int = 0
    not_before: float = 0.0  # monotonic time before which REST is not asked again
    last_error: str = ""
    generation: int = 0  # bumped by reopen: a REST answer asked for before it is stale

    def reopen(self, reason: str) -> None:
        """Another interruption before this gap was resolved: keep the start, widen the end."""
        if reason not in self.reason.split("; "):
            self.reason = f"{self.reason}; {reason}"
        self.first_ws_ts = None
        self.armed = False
        self.generation += 1


@dataclass(frozen=True)
class Outcome:
    """What a REST window says about a pending gap.

    settled: False when nothing is known yet (REST empty and nothing pushed since): wait.
    lost: None when nothing was lost, else the inclusive (start_ms, end_ms) to record.
    """

    settled: bool
    lost: tuple[int, int] | None


def reaches_back(gap: PendingGap, rest: Sequence[Trade]) -> bool:
    """True when the REST window overlaps what was seen before the interruption."""
    return any(t.ts < gap.start_ms or t.trade_id == gap.start_id for t in rest)


def resolve(gap: PendingGap, rest: Sequence[Trade]) -> Outcome:
    """Decide a pending gap from a REST trades window fetched after the stream resumed."""
    if reaches_back(gap, rest):
        return Outcome(True, None)
    ends = [t.ts for t in rest]
    if gap.first_ws_ts is not None:
        ends.append(gap.first_ws_ts)
    if not ends:
        return Outcome(False, None)
    return Outcome(True, (gap.start_ms, max(gap.start_ms, min(ends))))


def resolve_without_rest(gap: PendingGap) -> Outcome:
    """REST is unavailable: everything up to the first pushed trade may be lost."""
    if gap.first_ws_ts is None:
        return Outcome(False, None)
    return Outcome(True, (gap.start_ms, max(gap.start_ms, gap.first_ws_ts)))


def bar_of(ts_ms: int) -> int:
    """Open time of the 1-minute bar holding ts_ms."""
    return ts_ms - ts_ms % BAR_MS


@dataclass
class BarTracker:
    """Closed bars of one instrument not yet stored as confirmed rows."""

    complete_through: int | None = None  # every bar <= this is stored or known absent
    history_bars: int = 0  # on a first run, bars before the first one seen to fetch over REST
    open_bar: int | None = None  # newest bar seen (from candle pushes or trade times)
    # (open_bar, monotonic time it was first seen): every bar before it was closed by then
    advances: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=8))

    def saw(self, bar_ts: int, now: float) -> None:
        """A candle or trade in bar `bar_ts` was seen: every older bar is closed."""
        if self.open_bar is None or bar_ts > self.open_bar:
            self.open_bar = bar_ts
            self.advances.append((bar_ts, now))
        if self.complete_through is None:
            # a first run: history before it is fetched only as far back as asked
            self.complete_through = bar_ts - BAR_MS * (1 + self.history_bars)

    def advance(self, stored: Container[int]) -> None:
        """Move complete_through over bars already stored."""
        if self.complete_through is None or self.open_bar is None:
            return
        bar = self.complete_through + BAR_MS
        while bar < self.open_bar and bar in stored:
            bar += BAR_MS
        self.complete_through = bar - BAR_MS

    def due(self, stored: Container[int], now: float, grace: float,
            max_bars: int) -> tuple[int, int] | None:
        """The closed bar range to fetch from REST now, if any (inclusive bar open times)."""
        self.advance(stored)
        if self.complete_through is None or self.open_bar is None:
            return None
        # the newest bar closed for at least `grace` (its confirmation had time to arrive)
        settled = next((bar for bar, since in reversed(self.advances) if now - since >= grace),
                       None)
        if settled is None:
            return None
        first = self.complete_through + BAR_MS
        last = settled - BAR_MS
        if first > last:
            return None
        return max(first, last - (max_bars - 1) * BAR_MS), last

    def settle(self, lo: int, hi: int, stored: Container[int], unconfirmed: Container[int]) -> int:
        """After a REST fetch of [lo, hi]: advance past stored bars and bars REST does not
        have (returned as absent, counted); stop at a bar REST still shows unconfirmed."""
        absent = 0
        bar = lo
        while bar <= hi and bar not in unconfirmed:
            if bar not in stored:
                absent += 1
            bar += BAR_MS
        if self.complete_through is None or bar - BAR_MS > self.complete_through:
            self.complete_through = bar - BAR_MS
        return absent
