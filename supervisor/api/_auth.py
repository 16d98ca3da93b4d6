"""Who may call what.

The Unix socket is the owner's (0600 in a 0700 state dir): the kernel has already checked who
connects, so every request over it is trusted and needs no token. Over TCP:

    need        allowed when
    PUBLIC      always (/healthz, the dashboard's static files, /openapi.json)
    READ        `[api] token` is unset (and the Host header names this machine), or the
                request carries `Authorization: Bearer <api token>`
    WRITE       the request carries the API token; with no token configured, writes over
                TCP are refused (403) rather than left open
    HEARTBEAT   the request carries the job's own `heartbeat_token` (the API token does
                not stand in for it: a worker machine holds one job's key, not the keys
                to every job)

Tokens are `${VAR}` expanded from the daemon's environment when a request arrives (so a
reload that changes them applies at once), compared in constant time, registered with the
notifier's redaction, and never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from enum import Enum
from typing import TYPE_CHECKING

from pydantic import SecretStr

from supervisor.api.errors import ApiError
from supervisor.config import EnvError, expand_env, is_loopback
from supervisor.notify import register_secret

if TYPE_CHECKING:
    from starlette.requests import Request
    from supervisor.daemon import Daemon
    from supervisor.runs import JobRuntime

log = logging.getLogger(__name__)

TRUSTED = "proofwatch.trusted"  # ASGI scope key: the request came over the Unix socket
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="proofwatch"'}
_REFUSAL_LOG_EVERY = 60.0  # seconds between two log lines about refused requests from one client


class Need(Enum):
    """What a request needs to be allowed."""

    PUBLIC = "public"
    READ = "read"
    WRITE = "write"
    HEARTBEAT = "heartbeat"


class TokenUnset(Exception):
    """Raised when a configured token refers to an environment variable that is not set."""

    def __init__(self, key: str, var: str) -> None:
        self.key = key
        self.var = var
        super().__init__(f"{key}: ${{{var}}} is not set in the daemon's environment")


def resolve_token(secret: SecretStr | None, key: str) -> str | None:
    """The token `secret` stands for (None when unset or empty); raise TokenUnset."""
    if secret is None:
        return None
    try:
        value = expand_env({"v": secret.get_secret_value()}, os.environ)["v"]
    except EnvError as exc:
        raise TokenUnset(key, exc.var) from None
    if not value:
        return None
    register_secret(value)
    return value


def is_trusted(request: Request) -> bool:
    """Whether the request came over the owner-only Unix socket."""
    return bool(request.scope.get(TRUSTED))


def authorize(request: Request, daemon: Daemon, need: Need, job: JobRuntime | None = None) -> None:
    """Return when the request may do what it asks; else raise ApiError (401/403)."""
    if need is Need.PUBLIC or is_trusted(request):
        return
    given = _bearer(request)
    if need is Need.HEARTBEAT:
        assert job is not None
        expected = _token(f"jobs.{job.name}.heartbeat_token", job.settings.heartbeat_token)
        if expected is None:
            raise _refuse(request, 403, f"job {job.name!r} has no heartbeat_token: remote heartbeats "
                                        f"for it are refused (set jobs.{job.name}.heartbeat_token)")
        _match(request, given, expected, "the job's heartbeat token")
        return
    api_token = _token("api.token", daemon.config.api.token)
    if api_token is not None:
        _match(request, given, api_token, "the API token")
        return
    local = _local_address(request)
    if not is_loopback(local):  # e.g. a reload dropped the token while TCP stays on 0.0.0.0
        raise _refuse(request, 403, f"this API listens on {local}, beyond this machine, and api.token "
                                    "is not set: nothing is served here without a token")
    if need is Need.WRITE:
        raise _refuse(request, 403, "writes over TCP need a token: set api.token in the config "
                                    "(or use the Unix socket, e.g. the proofwatch CLI)")
    _check_host(request, daemon)


def _token(key: str, secret: SecretStr | None) -> str | None:
    try:
        return resolve_token(secret, key)
    except TokenUnset as exc:
        raise ApiError(403, f"{exc}: refusing every request that needs it") from None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""  # present but not a bearer token: refused like a wrong one
    return value.strip()


def _match(request: Request, given: str | None, expected: str, what: str) -> None:
    if given is None:
        raise _refuse(request, 401, f"missing Authorization: Bearer <token> ({what})", _CHALLENGE)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise _refuse(request, 401, f"wrong bearer token (expected {what})", _CHALLENGE)


def _check_host(request: Request, daemon: Daemon) -> None:
    """Without a token, reads over TCP are for this machine only: a Host header naming some
    other site is a DNS-rebinding attempt by a web page, not the operator."""
    host = request.headers.get("host", "")
    name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    allowed = {*LOCAL_HOSTS, _local_address(request), *(a.lower() for a in daemon.config.api.allowed_hosts)}
    if name.lower() not in allowed:
        raise _refuse(request, 403, f"Host {host!r} is not allowed without a token "
                                    "(add it to api.allowed_hosts, or set api.token)")


def _local_address(request: Request) -> str:
    """The address this TCP connection came in on (whatever the config says now)."""
    server = request.scope.get("server")
    host = server[0] if isinstance(server, (tuple, list)) and server else None
    return str(host) if host else "0.0.0.0"


_last_logged: dict[str, float] = {}


def _refuse(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> ApiError:
    """An ApiError for a refused request, logged at most once a minute per client (never with
    the token that was sent)."""
    client = request.client.host if request.client else "?"
    now = time.monotonic()
    if now - _last_logged.get(client, -_REFUSAL_LOG_EVERY) >= _REFUSAL_LOG_EVERY:
        _last_logged[client] = now
        if len(_last_logged) > 1000:
            _last_logged.clear()
        log.warning("api: refused %s %s from %s: %s (further refusals from it are not logged "
                    "for %ds)", request.method, request.url.path, client, message, _REFUSAL_LOG_EVERY)
    return ApiError(status, message, headers=headers)
