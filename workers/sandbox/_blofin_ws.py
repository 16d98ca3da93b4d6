"""BloFin's public WebSocket (/ws/public): subscriptions, real-time pushes, faults.

One pump task per server walks the market clock: every tick it takes the trades whose ts
fell due since the last tick, serialises each push once and queues it on every subscribed
session; each session has a sender task (so a slow client delays only itself; one that
falls `max_queue` pushes behind is dropped) and a reader task (subscribe, unsubscribe,
plain-text ping). Trades due while nobody is subscribed, or while stalled, are never sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from workers.sandbox import _bars
from workers.sandbox._context import Context
from workers.sandbox._limits import ConnLimiter
from workers.sandbox._malformed import malform
from workers.sandbox._sessions import Push, Session, until_error
from workers.sandbox.errors import BadParameter, UnknownInstrument

log = logging.getLogger(__name__)

TICK = 0.01  # seconds between pump rounds
CANDLE_CHANNELS = {"candle" + bar for bar in _bars.BAR_MS}
ABRUPT = ("drop", "chaos", "slow consumer")  # end reasons that abort the TCP connection


class Hub:
    """All WebSocket sessions of one server, and the pump that feeds them."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sessions: set[Session] = set()
        self.subs: dict[tuple[str, str], set[Session]] = {}
        self._limiter = ConnLimiter(ctx.settings.conn_per_sec)
        self._chaos = random.Random(f"{ctx.settings.seed}/chaos")
        self._candle_bar: dict[tuple[str, str], int] = {}
        self._numbers = 0

    # -- connections ------------------------------------------------------------------------

    async def endpoint(self, ws: WebSocket) -> None:
        """The /ws/public handler."""
        ip = ws.client.host if ws.client else "?"
        counters = self.ctx.counters
        if not self._limiter.allow(ip):
            counters.ws_rejected += 1
            log.info("ws %s: rejected, over %s new connections/s", ip,
                     self.ctx.settings.conn_per_sec)
            await ws.send_denial_response(
                JSONResponse({"code": "429", "msg": "Too Many Requests"}, status_code=429))
            return
        await ws.accept()
        self._numbers += 1
        s = Session(ws, ip, self._numbers)
        self.sessions.add(s)
        counters.ws_accepted += 1
        counters.ws_open += 1
        if self.ctx.faults.stalled_for() > 0 and s.transport is not None:
            s.transport.pause_reading()
        try:
            reader = asyncio.create_task(until_error(s, self._reader(s)))
            sender = asyncio.create_task(until_error(s, self._sender(s)))
            await s.ended.wait()
            reader.cancel()
            sender.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)
        finally:
            self._forget(s)
            counters.ws_open -= 1
        log.info("ws %s #%d: ended (%s)", ip, s.number, s.end_reason)
        if s.end_reason == "idle":
            try:
                await ws.close(1000, "no subscription")
            except Exception:  # noqa: BLE001 - the peer may be gone already
                pass
        elif s.end_reason in ABRUPT and s.transport is not None:
            s.transport.abort()
        # Otherwise return without a close frame; uvicorn closes the TCP connection.

    def drop_all(self, reason: str = "drop") -> None:
        """End every session abruptly (call in the server's event loop)."""
        for s in list(self.sessions):
            s.end(reason)
            self.ctx.counters.fault_drops += 1

    def stall_all(self) -> None:
        """Stop reading every socket until the stall is over (call in the event loop)."""
        left = self.ctx.faults.stalled_for()
        if left <= 0:  # cleared
            self._stall_over()
            return
        for s in self.sessions:
            if s.transport is not None and not s.transport.is_closing():
                s.transport.pause_reading()
        asyncio.get_running_loop().call_later(left, self._stall_over)

    def _stall_over(self) -> None:
        left = self.ctx.faults.stalled_for()
        if left > 0:  # extended meanwhile
            asyncio.get_running_loop().call_later(left, self._stall_over)
            return
        for s in self.sessions:
            if s.transport is not None and not s.transport.is_closing():
                s.transport.resume_reading()

    def _forget(self, s: Session) -> None:
        self.sessions.discard(s)
        for key in s.subs:
            subs = self.subs.get(key)
            if subs is not None:
                subs.discard(s)
        s.subs.clear()

    async def _reader(self, s: Session) -> None:
        faults = self.ctx.faults
        while True:
            while (left := faults.stalled_for()) > 0:
                await asyncio.sleep(min(left, 0.05))
            message = await s.ws.receive()
            if message["type"] == "websocket.disconnect":
                s.end("disconnected")
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            while (left := faults.stalled_for()) > 0:  # answer only once the stall is over
                await asyncio.sleep(min(left, 0.05))
            if text == "ping":
                s.put("pong")
            else:
                self._request(s, text)

    async def _sender(self, s: Session) -> None:
        ctx = self.ctx
        faults, counters, served = ctx.faults, ctx.counters, ctx.served
        send = s.ws.send_text
        while True:
            if not s.queue:
                s.wake.clear()
                await s.wake.wait()
                continue
            left = faults.stalled_for()
            if left > 0:
                await asyncio.sleep(min(left, 0.05))
                continue
            item = s.queue.popleft()
            if isinstance(item, str):
                await send(item)
                continue
            bad = faults.take_malformed()
            if bad is not None:
                counters.malformed_sent += 1
                await send(malform(item.text, bad))
                continue
            await send(item.text)
            counters.pushes += 1
            if item.hi > item.lo and not item.sent:
                item.sent = True
                served.add(item.inst, item.lo, item.hi)
                counters.trades_served += item.hi - item.lo

    # -- requests ---------------------------------------------------------------------------

    def _request(self, s: Session, text: str) -> None:
        try:
            op, args = self._parse(text)
        except BadParameter as exc:
            s.put(_event_error(f"Invalid request: {text[:300]} ({exc.detail})"))
            return
        for channel, inst in args:
            key = (channel, inst)
            s.put(json.dumps({"event": op, "arg": {"channel": channel, "instId": inst}},
                             separators=(",", ":")))
            if op == "subscribe":
                s.subs.add(key)
                self.subs.setdefault(key, set()).add(s)
            else:
                s.subs.discard(key)
                self.subs.get(key, set()).discard(s)
        if not s.subs:
            s.unsubscribed_since = time.monotonic()

    def _parse(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        try:
            req = json.loads(text)
        except ValueError:
            raise BadParameter("request", "not JSON") from None
        if not isinstance(req, dict) or req.get("op") not in ("subscribe", "unsubscribe"):
            raise BadParameter("op", "must be subscribe or unsubscribe")
        raw = req.get("args")
        if not isinstance(raw, list) or not raw:
            raise BadParameter("args", "must be a non-empty list")
        if len(json.dumps(raw)) > 4096:
            raise BadParameter("args", "exceed 4096 bytes")
        args: list[tuple[str, str]] = []
        for arg in raw:
            if not isinstance(arg, dict):
                raise BadParameter("args", "each arg must be an object")
            channel, inst = arg.get("channel"), arg.get("instId")
            if channel != "trades" and channel not in CANDLE_CHANNELS:
                raise BadParameter("channel", f"{channel!r} is not served")
            try:
                self.ctx.market.spec(str(inst))
            except UnknownInstrument as exc:
                raise BadParameter("instId", str(exc)) from None
            args.append((str(channel), str(inst)))
        return str(req["op"]), args

    # -- the pump ---------------------------------------------------------------------------

    async def pump(self) -> None:
        """Push trades and candles as the clock passes them; runs until cancelled."""
        ctx = self.ctx
        settings, faults = ctx.settings, ctx.faults
        cursor = {inst: ctx.now_ms() + 1 for inst in ctx.market.instruments}
        next_candles = next_second = time.monotonic()
        loop = asyncio.get_running_loop()
        unregister = [
            faults.on_drop(lambda: loop.call_soon_threadsafe(self.drop_all)),
            faults.on_stall(lambda: loop.call_soon_threadsafe(self.stall_all)),
        ]
        try:
            await self._pump(cursor, next_candles, next_second)
        finally:
            for remove in unregister:
                remove()

    async def _pump(self, cursor: dict[str, int], next_candles: float,
                    next_second: float) -> None:
        ctx = self.ctx
        settings, faults = ctx.settings, ctx.faults
        while True:
            now = ctx.now_ms()
            stalled = faults.stalled_for() > 0
            for inst, start in cursor.items():
                if now + 1 <= start:
                    continue
                cursor[inst] = now + 1
                subs = self.subs.get(("trades", inst))
                if subs and not stalled:
                    self._push_trades(inst, start, now + 1, subs)
            mono = time.monotonic()
            if mono >= next_candles:
                next_candles = mono + settings.candle_interval
                self._push_candles(now, stalled)
            if mono >= next_second:
                next_second = mono + 1.0
                self._chaos_round()
            self._idle_round(mono)
            ctx.beat()
            await asyncio.sleep(TICK)

    def _push_trades(self, inst: str, start: int, end: int, subs: set[Session]) -> None:
        market = self.ctx.market
        spec = market.spec(inst)
        batch = self.ctx.settings.batch
        max_queue = self.ctx.settings.max_queue
        head = '{"arg":{"channel":"trades","instId":"' + inst + '"},"data":['
        targets = list(subs)
        for blk, i0, i1 in market.slices(inst, start, end):
            wire = blk.wire(spec)
            base = blk.first_id
            for k in range(i0, i1, batch):
                k2 = min(k + batch, i1)
                push = Push(head + ",".join(wire[k:k2]) + "]}", inst, base + k, base + k2)
                for s in targets:
                    s.queue.append(push)
        for s in targets:
            s.wake.set()
            if len(s.queue) > max_queue:
                log.warning("ws %s #%d: dropped, %d pushes behind (slow consumer)", s.ip,
                            s.number, len(s.queue))
                self.ctx.counters.slow_drops += 1
                self._forget(s)
                s.end("slow consumer")

    def _push_candles(self, now: int, stalled: bool) -> None:
        market = self.ctx.market
        for key, subs in list(self.subs.items()):
            channel, inst = key
            if channel == "trades":
                continue
            if not subs:
                self._candle_bar.pop(key, None)
                continue
            bar = channel[len("candle"):]
            bar_ms = _bars.bar_ms(bar)
            current = now - now % bar_ms
            previous = self._candle_bar.get(key)
            self._candle_bar[key] = current
            if stalled:
                continue
            rows = []
            if previous is not None and previous < current:
                closed = market.candle_at(inst, bar, previous, now)
                if closed is not None:
                    rows.append(closed)
            forming = market.candle_at(inst, bar, current, now)
            if forming is not None:
                rows.append(forming)
            for c in rows:
                text = json.dumps({"arg": {"channel": channel, "instId": inst},
                                   "data": [c.to_blofin()]}, separators=(",", ":"))
                push = Push(text, inst)
                for s in subs:
                    s.put(push)

    def _chaos_round(self) -> None:
        chaos = self.ctx.settings.chaos
        if chaos <= 0:
            return
        for s in sorted(self.sessions, key=lambda x: x.number):
            if self._chaos.random() < chaos:
                self.ctx.counters.chaos_drops += 1
                s.end("chaos")

    def _idle_round(self, mono: float) -> None:
        timeout = self.ctx.settings.idle_timeout
        for s in list(self.sessions):
            if not s.subs and mono - s.unsubscribed_since > timeout:
                self.ctx.counters.idle_closes += 1
                s.end("idle")


def _event_error(msg: str) -> str:
    return json.dumps({"event": "error", "code": "60012", "msg": msg}, separators=(",", ":"))
