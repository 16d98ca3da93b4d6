"""BloFin public market data (feed module): REST under /api/v1/market and WS /ws/public.

Shapes follow BloFin: envelope {"code":"0","msg":"success","data":[...]}, every value a
string, newest first; errors are HTTP 200 with a non-"0" string code, except rate limiting
(HTTP 429 {"code":"429","msg":"Too Many Requests"}).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from workers.sandbox._blofin_ws import Hub
from workers.sandbox._context import Context, Feed
from workers.sandbox._instruments import plain
from workers.sandbox._limits import RestLimiter
from workers.sandbox.errors import BadParameter, UnknownInstrument

log = logging.getLogger(__name__)

PREFIX = "/api/v1/market"
TRADES_MAX = 100
CANDLES_MAX, CANDLES_DEFAULT = 1440, 500
DAY_MS = 86_400_000

Handler = Callable[[QueryParams], Awaitable[Any]]
T = TypeVar("T")


def feed(ctx: Context) -> Feed:
    """The BloFin routes and the WebSocket pump."""
    hub = Hub(ctx)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-blofin")
    rest = _Rest(ctx, pool)
    routes = [
        Route(f"{PREFIX}/instruments", rest.wrap(rest.instruments)),
        Route(f"{PREFIX}/trades", rest.wrap(rest.trades)),
        Route(f"{PREFIX}/candles", rest.wrap(rest.candles)),
        Route(f"{PREFIX}/tickers", rest.wrap(rest.tickers)),
        WebSocketRoute("/ws/public", hub.endpoint),
    ]
    return Feed("blofin", routes, [hub.pump], [lambda: pool.shutdown(wait=True)])


def envelope(data: list[Any]) -> Response:
    return JSONResponse({"code": "0", "msg": "success", "data": data})


def error(code: str, msg: str, status: int = 200) -> Response:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


class _Rest:
    def __init__(self, ctx: Context, pool: ThreadPoolExecutor) -> None:
        self.ctx = ctx
        self.pool = pool  # candle and ticker pages can take a second: off the event loop
        self.market = ctx.market
        self.limiter = RestLimiter(ctx.settings.rest_per_min)

    def wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Count the request, apply limits and injected faults, map errors to BloFin codes."""
        ctx = self.ctx

        async def endpoint(request: Request) -> Response:
            ctx.counters.requests += 1
            ip = request.client.host if request.client else "?"
            if ctx.faults.take_rate_limit() or not self.limiter.allow(ip):
                ctx.counters.rate_limited += 1
                return error("429", "Too Many Requests", 429)
            injected = ctx.faults.take_error(request.url.path)
            if injected is not None:
                ctx.counters.rest_errors_injected += 1
                return error(*injected)
            try:
                return envelope(await handler(request.query_params))
            except UnknownInstrument:
                return error("152014", "Instrument ID does not exist")
            except BadParameter as exc:
                log.info("%s: %s", request.url.path, exc)
                return error("152002", f"Parameter {exc.param} error.")

        return endpoint

    async def instruments(self, q: QueryParams) -> list[dict[str, str]]:
        insts = [self._inst(q)] if q.get("instId") else list(self.market.instruments)
        return [self.market.spec(i).to_blofin(self.market.start_ms) for i in insts]

    async def trades(self, q: QueryParams) -> list[dict[str, str]]:
        inst = self._inst(q)
        limit = _int(q, "limit", TRADES_MAX, TRADES_MAX)
        trades = self.market.trades_upto(inst, self.ctx.now_ms(), limit)
        return [t.to_blofin() for t in trades]

    async def candles(self, q: QueryParams) -> list[list[str]]:
        inst = self._inst(q)
        bar = q.get("bar") or "1m"
        after = _int(q, "after", None)
        before = _int(q, "before", None)
        limit = _int(q, "limit", CANDLES_DEFAULT, CANDLES_MAX)
        now = self.ctx.now_ms()

        def page() -> list[list[str]]:
            rows = self.market.candles(inst, bar, now_ms=now, after=after, before=before,
                                       limit=limit)
            return [c.to_blofin() for c in rows]

        return await self._off_loop(page)

    async def tickers(self, q: QueryParams) -> list[dict[str, str]]:
        insts = [self._inst(q)] if q.get("instId") else list(self.market.instruments)
        now = self.ctx.now_ms()
        return await self._off_loop(lambda: [self._ticker(i, now) for i in insts])

    async def _off_loop(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, work)

    def _ticker(self, inst: str, now: int) -> dict[str, str]:
        spec = self.market.spec(inst)
        last = self.market.trades_upto(inst, now, 1)
        start = now - now % 60_000 - DAY_MS
        agg = self.market.aggregate(inst, start, now + 1)
        o, h, lo, _c, vol, _q = agg if agg is not None else (0, 0, 0, 0, 0, 0)
        price = last[0].price if last else spec.format_price(spec.price_ticks())
        ticks = round(float(price) / float(spec.tick))
        salt = int(last[0].trade_id) if last else 0
        return {
            "instId": inst,
            "last": price,
            "lastSize": last[0].size if last else "0",
            "askPrice": spec.format_price(ticks + 1),
            "askSize": str(1 + salt % 97),
            "bidPrice": spec.format_price(ticks),
            "bidSize": str(1 + salt % 89),
            "high24h": spec.format_price(h),
            "open24h": spec.format_price(o),
            "low24h": spec.format_price(lo),
            "volCurrency24h": plain(vol * Decimal(spec.contract_value)),
            "vol24h": str(vol),
            "ts": str(last[0].ts if last else now),
        }

    def _inst(self, q: QueryParams) -> str:
        inst = q.get("instId")
        if not inst:
            raise BadParameter("instId", "is required")
        self.market.spec(inst)
        return inst


def _int(q: QueryParams, name: str, default: int | None, maximum: int | None = None) -> Any:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{raw!r} is not an integer") from None
    if value < (1 if maximum is not None else 0):
        raise BadParameter(name, f"{raw!r} is out of range")
    return min(value, maximum) if maximum is not None else value
