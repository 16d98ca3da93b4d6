"""Heartbeats for proofwatch: progress per flush, liveness while connected, blockers.

Called only from the work loops (the stream loop, the writer after a flush, the REST loop),
never from a background thread: when the work hangs, the heartbeats stop saying it progresses.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from workers.ingestor.store import iso_ms
from workers.sdk import Run

log = logging.getLogger(__name__)

LIVENESS_EVERY = 1.0
RATE_WINDOW = 10.0


class Reporter:
    """Builds the heartbeat from the ingestor's counters."""

    def __init__(self, run: Run, instruments: int) -> None:
        self.run = run
        self.instruments = instruments
        self.phase = "connecting"
        self.ticks = 0
        self.candles = 0
        self.batches = 0
        self.malformed = 0
        self.gaps = 0
        self.last_trade: tuple[int, str] | None = None  # (ts, inst) of the newest stored trade
        self.blockers: dict[str, str] = {}
        self._samples: deque[tuple[float, int]] = deque()
        self._last_live = float("-inf")

    def rate(self) -> float:
        """Ticks stored per second over the last ~10 s."""
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def message(self) -> str:
        last = (f"last trade {iso_ms(self.last_trade[0])} ({self.last_trade[1]})"
                if self.last_trade else "no trade yet")
        text = (f"{self.phase}: {self.rate():.1f} ticks/s, {last}, {self.ticks} ticks stored, "
                f"{self.gaps} gaps, {self.malformed} malformed")
        if self.blockers:
            text = f"BLOCKED {' | '.join(self.blockers.values())} -- {text}"
        return text

    def _sample(self) -> None:
        now = time.monotonic()
        self._samples.append((now, self.ticks))
        while len(self._samples) > 2 and self._samples[1][0] <= now - RATE_WINDOW:
            self._samples.popleft()

    def set_phase(self, phase: str) -> None:
        if phase != self.phase:
            log.info("phase %s -> %s", self.phase, phase)
            self.phase = phase
            self.run.beat(phase=phase, message=self.message())

    def flushed(self) -> None:
        """After a flush: progress."""
        self._sample()
        self.run.beat({"ticks": self.ticks, "batches": self.batches, "candles": self.candles},
                      phase=self.phase, message=self.message())

    def alive(self) -> None:
        """Liveness without progress (throttled here: cheap to call per message)."""
        now = time.monotonic()
        if now - self._last_live >= LIVENESS_EVERY:
            self._last_live = now
            self._sample()
            self.run.beat(phase=self.phase, message=self.message())

    def block(self, key: str, words: str) -> None:
        """Report something the ingestor cannot get past, in the exchange's own words."""
        if self.blockers.get(key) == words:
            return
        log.error("blocked: %s", words)
        self.blockers[key] = words
        self.run.blocked(" | ".join(self.blockers.values()))

    def unblock(self, key: str) -> None:
        if self.blockers.pop(key, None) is None:
            return
        log.info("no longer blocked: %s", key)
        if self.blockers:
            self.run.blocked(" | ".join(self.blockers.values()))
        else:
            self.run.unblocked()
