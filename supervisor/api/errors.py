"""Errors of the HTTP API.

    ApiError(Exception)       raised by a handler to answer with an HTTP error (status, message)
    ApiStartError(Exception)  raised when the API cannot be served as configured
"""

from __future__ import annotations


class ApiError(Exception):
    """Raised by a handler to answer with an HTTP error: `status` and a one-line `message`
    (sent as `{"ok": false, "error": message}`), plus any `headers` the answer needs
    (`WWW-Authenticate` on a 401)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


class ApiStartError(Exception):
    """Raised when the API cannot be served as configured: the TCP address is in use or not
    available, or `api.token` names an environment variable that is not set. The daemon does
    not start (better than a dashboard that is silently missing, or open)."""
