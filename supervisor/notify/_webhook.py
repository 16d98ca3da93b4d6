"""The webhook notifier: the payload as a JSON POST (httpx), signed with HMAC-SHA256 when the
sink has a `secret`: `X-Proofwatch-Signature: sha256=<hex of HMAC-SHA256(secret, body)>`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hashlib
import hmac
import json
from typing import Any


from supervisor.notify.errors import DeliveryError

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-Proofwatch-Signature"
DELIVERY_HEADER = "X-Proofwatch-Delivery"
_RETRYABLE_4XX = frozenset({408, 425, 429})


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes posted (and signed) for a payload."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, secret: str) -> str:
    """The signature header value for `body`: "sha256=" + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """POSTs payloads to one URL."""

    def __init__(self, name: str, url: str, secret: str | None, timeout: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self._url = url
        self._secret = secret
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        """Deliver one payload; raise DeliveryError on any failure."""
        import httpx  # lazily (cached after the first send): keeps the daemon light

        body = body_of(payload)
        headers = {"Content-Type": "application/json", "User-Agent": "proofwatch",
                   DELIVERY_HEADER: str(payload.get("id", ""))}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timed out after {self.timeout:g}s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            code = response.status_code
            permanent = 300 <= code < 500 and code not in _RETRYABLE_4XX
            text = response.text.strip().replace("\n", " ")[:200]
            raise DeliveryError(f"HTTP {code} {response.reason_phrase}" + (f": {text}" if text else ""),
                                permanent=permanent)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
