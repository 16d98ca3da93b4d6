"""The sender interface and the factory from `[[alerts.sinks]]` entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
import os
from pathlib import Path
from typing import Any, Protocol


from supervisor.config import AlertSink, EnvError, expand_env, resolve_command
from supervisor.notify._apprise import AppriseSender
from supervisor.notify._command import CommandSender
from supervisor.notify._file import FileSender
from supervisor.notify._redact import register_secret
from supervisor.notify._webhook import WebhookSender

if TYPE_CHECKING:
    import httpx


log = logging.getLogger(__name__)


class Sender(Protocol):
    """Delivers payloads to one sink; `send` raises DeliveryError on failure."""

    name: str
    timeout: float

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def aclose(self) -> None: ...


def _expand(value: str) -> str:
    """${VAR} / ${VAR:-default} from the daemon's environment, so secrets stay out of the
    config file; an unset variable is left as written (delivery then fails and says so)."""
    try:
        return expand_env({"v": value}, os.environ)["v"]
    except EnvError as exc:
        log.error("alerts.sinks: ${%s} is not set in the supervisor's environment", exc.var)
        return value


def make_sender(sink: AlertSink, base_dir: Path | None = None,
                transport: httpx.AsyncBaseTransport | None = None) -> Sender:
    """The sender for one configured sink; registers its URL and secret for redaction."""
    url = _expand(sink.url.get_secret_value()) if sink.url is not None else ""
    secret = _expand(sink.secret.get_secret_value()) if sink.secret is not None else None
    register_secret(url, url=True)
    register_secret(secret)
    if sink.kind == "webhook":
        return WebhookSender(sink.name, url, secret, sink.timeout, transport)
    if sink.kind == "command":
        return CommandSender(sink.name, resolve_command(list(sink.command or [])), sink.timeout)
    if sink.kind == "file":
        path = (sink.path or Path("notifications.jsonl")).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return FileSender(sink.name, path, sink.timeout)
    return AppriseSender(sink.name, url, sink.timeout)
