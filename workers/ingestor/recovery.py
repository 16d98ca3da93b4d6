"""The REST loop: check instruments, close pending gaps, keep 1-minute bars complete.

One task makes every REST call, so the rate limit holds for the whole process. It runs
beside the stream (never blocking it) and is woken when a gap becomes answerable (the stream
resumed) or every second for bars whose confirmation did not arrive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from workers.ingestor.config import Settings
from workers.ingestor.errors import ExchangeError
from workers.ingestor.gaps import Outcome, PendingGap, resolve, resolve_without_rest
from workers.ingestor.ingest import Book, Ingest
from workers.ingestor.manifest import InstRecord, Manifest, gap_record, now_iso
from workers.ingestor.messages import BAR_MS
from workers.ingestor.report import Reporter
from workers.ingestor.rest import TRADES_PATH, RestClient

log = logging.getLogger(__name__)

GAP_REST_ATTEMPTS = 3
RETRY_AFTER = (1.0, 5.0, 30.0)
MAX_BACKFILL_RECORDS = 500


class Recovery:
    """Everything done over REST, from one task."""

    def __init__(self, settings: Settings, rest: RestClient, ingest: Ingest, manifest: Manifest,
                 reporter: Reporter) -> None:
        self.s = settings
        self.rest = rest
        self.ingest = ingest
        self.manifest = manifest
        self.reporter = reporter
        self.wake = anyio.Event()
        self.validated: set[str] = set()
        self.dead: dict[str, str] = {}  # instruments the exchange says do not exist -> words
        self.changed = False  # the manifest has news (gaps, backfills) to save
        self._banned_since: float | None = None
        self._candle_retry: dict[str, float] = {}
        self._on_dead: Callable[[str], Awaitable[None]] | None = None
        self._validate_after = 0.0

    @property
    def busy(self) -> bool:
        """True while a gap is being recovered (the phase is then "backfilling")."""
        return any(b.gap is not None and b.gap.armed and b.live for b in self.ingest.books.values())

    def poke(self) -> None:
        self.wake.set()

    async def run(self, on_dead: Callable[[str], Awaitable[None]]) -> None:
        """Loop forever (cancelled at shutdown); `on_dead(inst)` drops an unknown instrument."""
        self._on_dead = on_dead
        while True:
            try:
                await self._gaps()
                await self._validate()
                await self._candles()
            except ExchangeError as exc:
                self._failed(exc)
            with anyio.move_on_after(1.0):
                await self.wake.wait()
            self.wake = anyio.Event()

    # -- exchange errors ------------------------------------------------------------------------

    def _ok(self) -> None:
        if self._banned_since is not None:
            self._banned_since = None
            self.reporter.unblock("rest-ban")

    def _failed(self, exc: ExchangeError) -> None:
        log.warning("REST: %s", exc.words)
        if exc.banned:
            now = time.monotonic()
            if self._banned_since is None:
                self._banned_since = now
            elif now - self._banned_since >= self.s.ban_block_after:
                self.reporter.block("rest-ban", exc.words)

    async def _dead(self, inst: str, exc: ExchangeError) -> None:
        self.dead[inst] = exc.words
        self.validated.add(inst)
        self.reporter.block(f"inst:{inst}", exc.words)
        self.manifest.inst(inst).blocked = exc.words
        self.changed = True
        if self._on_dead is not None:
            await self._on_dead(inst)

    async def _validate(self) -> None:
        """Ask once per instrument whether the exchange knows it (a gap's REST call also tells)."""
        if time.monotonic() < self._validate_after:
            return
        for inst, book in self.ingest.books.items():
            # an instrument the stream refused is checked too: REST says it in code 152014
            if inst in self.validated or (book.live and book.gap is not None):
                continue
            try:
                await self.rest.get(TRADES_PATH, {"instId": inst, "limit": "1"})
            except ExchangeError as exc:
                if not exc.permanent:
                    self._validate_after = time.monotonic() + RETRY_AFTER[2]
                    raise
                await self._dead(inst, exc)
                continue
            self._ok()
            self.validated.add(inst)

    # -- trade gaps -------------------------------------------------------------------------

    async def _gaps(self) -> None:
        for inst, book in self.ingest.books.items():
            gap = book.gap
            if gap is None or not gap.armed or not book.live or time.monotonic() < gap.not_before:
                continue
            self.reporter.set_phase("backfilling")
            generation = gap.generation
            try:
                trades, problems = await self.rest.trades(inst)
            except ExchangeError as exc:
                if exc.permanent:
                    await self._dead(inst, exc)
                    continue
                if book.gap is not gap or gap.generation != generation:
                    continue  # interrupted again meanwhile: the gap waits for the new stream
                gap.attempts += 1
                gap.last_error = exc.words
                gap.not_before = time.monotonic() + RETRY_AFTER[min(gap.attempts, 3) - 1]
                self._failed(exc)
                if gap.attempts >= GAP_REST_ATTEMPTS:
                    self._settle(inst, book, gap, resolve_without_rest(gap), 0,
                                 f"; REST unavailable: {exc.words}")
                continue
            self._ok()
            self.validated.add(inst)
            rec = self.manifest.inst(inst)
            if problems:
                rec.malformed += len(problems)
                self.reporter.malformed += len(problems)
                log.warning("%s: %d malformed REST trades skipped: %s", inst, len(problems), problems[0])
            # Store only what the gap is about (ts >= its start). Older REST trades were seen,
            # lie in a recorded gap, or predate the first trade ever streamed: the last-100
            # window may cut that millisecond in two, and storing its newer half would leave
            # the older half neither stored nor in a gap at the start of the data.
            newer = [t for t in trades if t.ts >= gap.start_ms]
            added = self.ingest.add_trades(inst, newer, pushed=False)
            if book.gap is not gap or gap.generation != generation:
                continue  # interrupted again while REST answered: wait for the new stream
            outcome = resolve(gap, trades)
            if not outcome.settled:
                gap.not_before = time.monotonic() + RETRY_AFTER[0]
                continue
            self._settle(inst, book, gap, outcome, added, "")

    def record_unresolved(self) -> None:
        """Shutting down: record the gaps REST has not resolved yet, as far as they reach into
        the stored data. A restart only looks after the newest stored trade, so a gap left
        pending (say a malformed push's, its REST call still waiting for the rate limiter)
        would otherwise lose its trades without a record."""
        for inst, book in self.ingest.books.items():
            gap = book.gap
            if gap is None or not book.live:
                continue
            if gap.first_ws_ts is not None:  # the stream resumed: lost at most up to there
                end = max(gap.start_ms, gap.first_ws_ts)
            elif book.window.last_ts > gap.start_ms:  # only a stale REST answer came since
                end = book.window.last_ts
            else:  # nothing stored after its start: the next run's restart gap starts there
                continue
            rec = self.manifest.inst(inst)
            rec.add_gap(gap_record(gap.start_ms, end, gap.reason + "; unresolved at shutdown",
                                   recovered=0, start_trade_id=gap.start_id))
            self.reporter.gaps += 1
            log.warning("%s: gap %d..%d after %s recorded unresolved at shutdown", inst,
                        gap.start_ms, end, gap.reason)
            book.gap = None
            self.changed = True

    def _settle(self, inst: str, book: Book, gap: PendingGap, outcome: Outcome, added: int,
                note: str) -> None:
        if book.gap is not gap or not outcome.settled:
            return
        rec = self.manifest.inst(inst)
        rec.recoveries += 1
        rec.recovered_trades += added
        if outcome.lost is not None:
            start, end = outcome.lost
            rec.add_gap(gap_record(start, end, gap.reason + note, recovered=added,
                                   start_trade_id=gap.start_id))
            self.reporter.gaps += 1
            log.warning("%s: gap %d..%d (%.1fs) after %s; %d trades recovered over REST",
                        inst, start, end, (end - start) / 1000, gap.reason + note, added)
        else:
            log.info("%s: %s recovered over REST, nothing lost (%d trades)", inst, gap.reason, added)
        book.gap = None
        self.changed = True

    # -- candles ----------------------------------------------------------------------------

    async def _candles(self) -> None:
        now = time.monotonic()
        for inst, book in self.ingest.books.items():
            if not book.live or now < self._candle_retry.get(inst, 0.0):
                continue
            due = book.tracker.due(book.bars, now, self.s.candle_grace, self.s.max_backfill_bars)
            rec = self.manifest.inst(inst)
            if due is not None:
                await self._backfill(inst, book, rec, due)
            self._mark_gap_candles(book, rec)
            if book.tracker.complete_through != rec.candles.complete_through_ms:
                rec.candles.complete_through_ms = book.tracker.complete_through
                self.changed = True

    async def _backfill(self, inst: str, book: Book, rec: InstRecord, due: tuple[int, int]) -> None:
        lo, hi = due
        through = book.tracker.complete_through
        skipped = (lo - through) // BAR_MS - 1 if through is not None else 0
        if hi > lo:
            self.reporter.set_phase("backfilling")
        try:
            candles, problems = await self.rest.candles_range(inst, lo, hi)
        except ExchangeError as exc:
            if exc.permanent:
                await self._dead(inst, exc)
                return
            self._candle_retry[inst] = time.monotonic() + RETRY_AFTER[1]
            self._failed(exc)
            return
        self._ok()
        if problems:
            rec.malformed += len(problems)
            self.reporter.malformed += len(problems)
        added = self.ingest.add_candles(inst, candles, "rest")
        unconfirmed = {c.ts for c in candles if not c.confirm}
        absent = book.tracker.settle(lo, hi, book.bars, unconfirmed)
        if unconfirmed:
            self._candle_retry[inst] = time.monotonic() + RETRY_AFTER[0]
        rec.candles.absent_bars += absent
        if added or absent or skipped:
            entry: dict[str, Any] = {"start_ms": lo, "end_ms": hi, "bars": added, "absent": absent,
                                     "reason": self._why(rec, lo, hi), "at": now_iso()}
            if skipped:
                entry["skipped_bars"] = skipped
            rec.candles.backfilled.append(entry)
            del rec.candles.backfilled[:-MAX_BACKFILL_RECORDS]
            rec.candles.backfilled_total += added
            self.changed = True
            log.info("%s: %d bars %d..%d from REST (%d absent, %d skipped)", inst, added, lo, hi,
                     absent, skipped)

    @staticmethod
    def _why(rec: InstRecord, lo: int, hi: int) -> str:
        for gap in reversed(rec.gaps):
            c = gap.get("candles") or {}
            if c.get("start_ms", 0) <= hi and lo <= c.get("end_ms", -1):
                return "gap"
        return "unconfirmed" if hi == lo else "interruption"

    def _mark_gap_candles(self, book: Book, rec: InstRecord) -> None:
        through = book.tracker.complete_through
        if through is None:
            return
        for gap in reversed(rec.gaps):
            c = gap.get("candles")
            if not c or c.get("complete"):
                break
            if c["end_ms"] <= through:
                c["bars"] = sum(1 for t in range(c["start_ms"], c["end_ms"] + 1, BAR_MS)
                                if t in book.bars)
                c["complete"] = True
                self.changed = True
