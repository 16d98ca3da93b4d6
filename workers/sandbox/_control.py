"""Loopback-only control routes under /_sandbox/: faults, served tradeIds, state."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.sandbox._context import Context, Feed
from workers.sandbox.errors import BadParameter, UnknownInstrument


def feed(ctx: Context) -> Feed:
    """POST /_sandbox/faults, GET /_sandbox/served?instId=, GET /_sandbox/state."""

    async def faults(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            items = body if isinstance(body, list) else [body]
            for item in items:
                if not isinstance(item, dict):
                    raise BadParameter("body", "each fault must be a JSON object")
                ctx.faults.apply(item)
        except ValueError:
            return _bad("body: not JSON (e.g. {\"fault\": \"stall\", \"seconds\": 2})")
        except BadParameter as exc:
            return _bad(str(exc))
        return JSONResponse({"ok": True, "faults": ctx.faults.pending()})

    async def served(request: Request) -> Response:
        inst = request.query_params.get("instId", "")
        try:
            ctx.market.spec(inst)
        except UnknownInstrument as exc:
            return _bad(str(exc))
        ids = ctx.served.ids(inst)
        return JSONResponse({"instId": inst, "count": len(ids), "tradeIds": ids})

    async def state(request: Request) -> Response:
        return JSONResponse(ctx.state())

    routes = [
        Route("/_sandbox/faults", _loopback(faults), methods=["POST"]),
        Route("/_sandbox/served", _loopback(served)),
        Route("/_sandbox/state", _loopback(state)),
    ]
    return Feed("control", list(routes))


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        host = request.client.host if request.client else ""
        if not is_loopback(host):
            return JSONResponse({"error": f"/_sandbox/ is loopback-only (client {host})"},
                                status_code=403)
        return await handler(request)

    return endpoint


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)
