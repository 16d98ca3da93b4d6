"""Assemble the one starlette app from the feed modules.

Each feed module exposes `feed(ctx) -> Feed` (routes + services). To add a feed (odds.py,
sportsbook.py), write the module and add it to FEEDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from workers.sandbox import _control, blofin, odds, sportsbook
from workers.sandbox._context import Context, Feed

log = logging.getLogger(__name__)

FEEDS: tuple[Callable[[Context], Feed], ...] = (_control.feed, blofin.feed, sportsbook.feed, odds.feed)


def build_app(ctx: Context) -> Starlette:
    """The sandbox app: every feed's routes; its services run for the app's lifetime."""
    feeds = [make(ctx) for make in FEEDS]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_service(f.name, svc)) for f in feeds for svc in f.services]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for f in feeds:
                for close in f.closers:
                    close()

    routes = [route for f in feeds for route in f.routes]
    return Starlette(routes=routes, lifespan=lifespan)


async def _service(name: str, svc: Callable[[], Awaitable[None]]) -> None:
    try:
        await svc()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("feed %s: service %s crashed", name, getattr(svc, "__qualname__", svc))
        raise
