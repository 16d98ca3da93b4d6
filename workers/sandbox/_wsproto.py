"""uvicorn's websockets-sansio protocol, lending the app its transport.

The app finds the asyncio transport in `scope["extensions"]["sandbox.transport"]`, so the
fault switches can act below the WebSocket layer: drop() aborts the TCP connection, stall()
stops reading the socket (so protocol pings go unanswered too, as with a hung server).
Without it (another server), the app falls back to returning without a close frame.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

TRANSPORT_KEY = "sandbox.transport"


class SandboxWSProtocol(WebSocketsSansIOProtocol):
    """WebSocketsSansIOProtocol + the transport in the scope's extensions."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][TRANSPORT_KEY] = self.transport  # type: ignore[index]


def transport_of(scope: object) -> asyncio.Transport | None:
    """The connection's transport when served through SandboxWSProtocol."""
    if isinstance(scope, dict):
        found = scope.get("extensions", {}).get(TRANSPORT_KEY)
        if isinstance(found, asyncio.Transport):
            return found
    return None
