"""The ingestor service: one root task group running the stream, the writer and REST loops.

    stream loop   connect (paced, backoff) -> subscribe -> receive/keepalive -> ingest;
                  on a disconnect or stall: open gaps for every instrument, reconnect
    writer loop   flush by rows or seconds -> Parquet parts -> compaction -> manifest
    REST loop     instrument check, gap recovery (trades), 1m bar backfill (recovery.py)
    signals       SIGTERM/SIGINT cancel the group; the last batch is flushed after it

Everything runs on one event loop thread (file writes go to worker threads), so the ingest
state needs no locks. Heartbeats come from these loops, never from a background thread.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio import CancelScope

from workers.ingestor.config import Settings
from workers.ingestor.errors import StreamError
from workers.ingestor.ingest import Ingest
from workers.ingestor.messages import TRADES, WsMessage, parse_ws
from workers.ingestor.recovery import Recovery
from workers.ingestor.report import Reporter
from workers.ingestor.rest import RestClient
from workers.ingestor.resume import Stores, lock_data_dir, open_stores, restore_books
from workers.ingestor.writer import Writer
from workers.ingestor.ws import Connector, Stream, Subscriptions, channel_args, handshake_status
from workers.sdk import Run

log = logging.getLogger(__name__)

QUIET_AFTER = 5.0  # a stream silent this long may have lost trades: check over REST
BACKPRESSURE = 4  # stop reading when this many flushes' worth of rows are pending


class Service:
    """One ingestor process."""

    def __init__(self, settings: Settings, run: Run) -> None:
        self.s = settings
        self.run_handle = run
        self.reporter = Reporter(run, len(settings.instruments))
        self.ingest = Ingest(settings.instruments, window=settings.dedup_window,
                             history_bars=settings.history_minutes)
        self.rest = RestClient(settings.rest_url, rate=settings.rest_rate)
        self.connector = Connector(settings.ws_url, connect_interval=settings.connect_interval,
                                   max_backoff=settings.max_backoff, on_retry=self._connect_failed)
        self.stores: Stores | None = None
        self.writer: Writer | None = None
        self.recovery: Recovery | None = None
        self.stream: Stream | None = None
        self.subs = Subscriptions()
        self.flush_wanted = anyio.Event()
        self.flushed = anyio.Event()
        self.exit_code = 0
        self._ws_banned_since: float | None = None
        self._lock_fd: int | None = None

    # -- start and stop ---------------------------------------------------------------------

    def _open(self) -> None:
        self._lock_fd = lock_data_dir(self.s.ticks_dir)
        self.stores = open_stores(self.s)
        restore_books(self.ingest, self.stores)
        manifest = self.stores.manifest
        for inst, book in self.ingest.books.items():
            rec = manifest.inst(inst)
            book.duplicates = rec.duplicates
        rep = self.reporter
        rep.ticks = manifest.ticks
        rep.batches = manifest.batches
        rep.malformed = manifest.malformed
        rep.gaps = sum(r.gaps_total for r in manifest.instruments.values())
        self.writer = Writer(self.s, self.stores, self.ingest, rep)
        self.recovery = Recovery(self.s, self.rest, self.ingest, manifest, rep)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code. The signals are taken before the
        store is opened: a SIGTERM while it opens (adopting parts, restoring books) waits in
        the receiver and stops the run cleanly once the open is done, instead of killing the
        process halfway through it."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            await anyio.to_thread.run_sync(self._open)
            assert self.writer is not None and self.recovery is not None
            self.reporter.run.beat({"ticks": self.reporter.ticks, "batches": self.reporter.batches},
                                   phase="connecting", message=self.reporter.message(), force=True)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._signals, signals, tg.cancel_scope)
                    tg.start_soon(self._stream_loop)
                    tg.start_soon(self._writer_loop)
                    tg.start_soon(self.recovery.run, self._drop_instrument)
            finally:
                with anyio.CancelScope(shield=True):
                    await self._shutdown()
        return self.exit_code

    async def _signals(self, signals: AsyncIterator[int], scope: CancelScope) -> None:
        async for signum in signals:
            log.info("%s: flushing and stopping", signal.Signals(signum).name)
            self.exit_code = 0 if signum == signal.SIGTERM else 130
            scope.cancel()
            return

    async def _shutdown(self) -> None:
        if self.stream is not None:
            await self.stream.close()
        if self.recovery is not None:
            self.recovery.record_unresolved()
        if self.writer is not None:
            if self.recovery is not None and self.recovery.changed:
                self.writer.manifest_dirty = True
            await self.writer.flush()
            self.reporter.run.beat(phase="stopped", message=f"stopped: {self.reporter.message()}",
                                   force=True)
        await self.rest.aclose()
        log.info("stopped: %d ticks stored, %d batches", self.reporter.ticks, self.reporter.batches)

    # -- the writer -------------------------------------------------------------------------

    async def _writer_loop(self) -> None:
        writer, recovery = self.writer, self.recovery
        assert writer is not None and recovery is not None
        while True:
            since = self.ingest.pending_since
            wait = self.s.flush_seconds if since is None else max(
                0.0, since + self.s.flush_seconds - time.monotonic())
            with anyio.move_on_after(wait):
                await self.flush_wanted.wait()
            self.flush_wanted = anyio.Event()
            if recovery.changed:
                writer.manifest_dirty = True
                recovery.changed = False
            if writer.due(time.monotonic()) or writer.manifest_dirty:
                await writer.flush()
                self.flushed.set()
                self.flushed = anyio.Event()

    # -- the stream -------------------------------------------------------------------------

    def _live(self) -> list[str]:
        return [inst for inst, book in self.ingest.books.items() if book.live]

    def _connect_failed(self, exc: BaseException, delay: float) -> None:
        status = handshake_status(exc)
        if status in (401, 403):
            now = time.monotonic()
            if self._ws_banned_since is None:
                self._ws_banned_since = now
            elif now - self._ws_banned_since >= self.s.ban_block_after:
                self.reporter.block("ws-ban", f"{self.s.ws_url}: HTTP {status} on connect")
        self.reporter.alive()

    async def _stream_loop(self) -> None:
        while True:
            live = self._live()
            if not live:
                self.reporter.set_phase("connecting")  # nothing to stream; the blocker says why
                await anyio.sleep(5.0)
                self.reporter.alive()
                continue
            self.reporter.set_phase("connecting")
            conn = await self.connector.connect()
            if self._ws_banned_since is not None:
                self._ws_banned_since = None
                self.reporter.unblock("ws-ban")
            stream = Stream(conn, ping_interval=self.s.ping_interval, pong_timeout=self.s.pong_timeout)
            self.stream, self.subs = stream, Subscriptions()
            opened = time.monotonic()
            reason = ""
            try:
                for frame in self.subs.frames(channel_args(live)):
                    await stream.send(frame)
                await self._consume(stream)
            except StreamError as exc:
                reason = "stall" if exc.reason.startswith("stalled") else "disconnect"
                log.warning("stream %s: %s; reconnecting", reason, exc.reason)
            finally:
                self.stream = None
                await stream.close(abort=reason == "stall")
            self.connector.session_ended(time.monotonic() - opened)
            reason = reason or "disconnect"
            for inst in self._live():
                self.manifest_inst(inst).reconnects += 1
                self.ingest.open_gap(inst, reason)

    def manifest_inst(self, inst: str) -> Any:
        assert self.stores is not None
        return self.stores.manifest.inst(inst)

    async def _consume(self, stream: Stream) -> None:
        ingest, reporter = self.ingest, self.reporter
        flush_rows = self.s.flush_rows
        streaming = False
        last = time.monotonic()
        while True:
            raw = await stream.recv()
            now = time.monotonic()
            if now - last >= QUIET_AFTER:
                self._suspect(None, f"stream quiet {now - last:.1f}s")
            last = now
            msg = parse_ws(raw)
            kind = msg.kind
            if kind == "trades":
                ingest.add_trades(msg.inst, msg.trades, pushed=True)
                book = ingest.books.get(msg.inst)
                if book is not None and book.gap is not None and not book.gap.armed:
                    self._arm(msg.inst)  # a push proves the subscription, ack or not
                if msg.problems:
                    self._malformed(msg)
            elif kind == "candles":
                ingest.add_candles(msg.inst, msg.candles, "ws")
                if msg.problems:
                    self._malformed(msg)
            elif kind == "malformed":
                self._malformed(msg)
            elif kind == "ack":
                self._ack(msg)
            elif kind == "error":
                await self._ws_error(msg)
            if not streaming and kind in ("trades", "candles"):
                streaming = True
            if streaming:
                busy = self.recovery is not None and self.recovery.busy
                reporter.set_phase("backfilling" if busy else "streaming")
            if ingest.pending_rows >= flush_rows:
                self.flush_wanted.set()
                if ingest.pending_rows >= BACKPRESSURE * flush_rows:
                    await self.flushed.wait()  # the writer is behind: let TCP push back
                    last = time.monotonic()
            reporter.alive()

    def _ack(self, msg: WsMessage) -> None:
        self.subs.on_ack(msg.channel, msg.inst, msg.msg)
        if msg.channel == TRADES and msg.msg == "subscribe":
            self._arm(msg.inst)

    def _arm(self, inst: str) -> None:
        """The stream is live for `inst` again: its pending gap can now be closed over REST."""
        book = self.ingest.books.get(inst)
        if book is not None and book.gap is not None:
            book.gap.armed = True
            if self.recovery is not None:
                self.recovery.poke()

    def _suspect(self, inst: str | None, reason: str) -> None:
        """Trades may have been lost on a live connection: open gaps, ask REST now."""
        targets = [inst] if inst in self.ingest.books else self._live()
        for name in targets:
            self.ingest.open_gap(name, reason)
            book = self.ingest.books[name]
            if book.gap is not None and (TRADES, name) in self.subs.acked:
                book.gap.armed = True
        if self.recovery is not None:
            self.recovery.poke()

    def _malformed(self, msg: WsMessage) -> None:
        assert self.stores is not None
        manifest = self.stores.manifest
        inst = msg.inst if msg.inst in self.ingest.books else None
        if inst is None:
            manifest.malformed_unattributed += 1
        else:
            manifest.inst(inst).malformed += 1
        self.reporter.malformed += 1
        log.warning("malformed %s push%s skipped: %s", msg.channel or "?",
                    f" for {inst}" if inst else "", "; ".join(msg.problems)[:300])
        if msg.channel in (TRADES, ""):  # trades may have been in it: ask REST for them
            self._suspect(inst, "malformed push")
        if self.writer is not None:
            self.writer.manifest_dirty = True

    async def _ws_error(self, msg: WsMessage) -> None:
        refused = self.subs.on_error()
        words = f"{self.s.ws_url}: code {msg.code}: {msg.msg}"
        insts = sorted({inst for _, inst in refused})
        log.error("WebSocket error event: %s (request for %s)", words, ", ".join(insts) or "?")
        if len(insts) == 1:
            self.reporter.block(f"inst:{insts[0]}", words)
            await self._drop_instrument(insts[0])
        elif insts and self.stream is not None:  # find the culprit: one request per instrument
            for inst in insts:
                for frame in self.subs.frames(channel_args([inst])):
                    await self.stream.send(frame)

    async def _drop_instrument(self, inst: str) -> None:
        """The exchange says `inst` does not exist: stop asking for it (the blocker stays)."""
        book = self.ingest.books.get(inst)
        if book is None or not book.live:
            return
        book.live = False
        book.gap = None
        self.manifest_inst(inst).blocked = self.reporter.blockers.get(f"inst:{inst}")
        if self.writer is not None:
            self.writer.manifest_dirty = True
        log.error("%s: dropped; the exchange does not serve it", inst)
        stream = self.stream
        if stream is not None and any(k[1] == inst for k in self.subs.acked):
            try:
                for frame in self.subs.frames(channel_args([inst]), "unsubscribe"):
                    await stream.send(frame)
            except StreamError:
                pass
        if not self._live() and stream is not None:
            await stream.close()
