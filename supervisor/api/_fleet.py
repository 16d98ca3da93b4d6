"""GET /api/fleet: every host sharing the store (a shared store only), read off the loop."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from supervisor.api._auth import Need, authorize
from supervisor.api._common import answer, daemon_of
from supervisor.api.errors import ApiError
from supervisor.fleetview import FleetReadError, read_view


async def fleet(request: Request) -> Response:
    """GET /api/fleet: each host's state, last report, health and jobs, by the store's clock."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.READ)
    cfg = daemon.config
    if not cfg.shared_store:
        raise ApiError(404, "no fleet: this daemon's history is its own; the fleet view needs a "
                            'shared store ([store] url = "postgresql+psycopg://...")')
    try:  # judged by the store's clock (None), read in the same exchange
        view = await anyio.to_thread.run_sync(
            read_view, daemon.history.engine, None, cfg.fleet.host_stale_after, daemon.hostname)
    except FleetReadError as exc:
        raise ApiError(503, exc.message) from None
    return answer(view)
