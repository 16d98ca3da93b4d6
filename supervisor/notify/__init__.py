"""Notifiers: the outbox dispatcher and the webhook, command, file and Apprise senders.

The daemon owns one `Dispatcher`; it calls `update(alerts)` when alerts change and at the time
it returns, and runs `serve()` in its task group. Decisions come from policies.alerting; rows
go to status.outbox first (persist before acting). May import: policies, status,
supervisor.config. Nothing here imports the daemon.
"""

from typing import Any

from supervisor.notify._redact import redact, register_secret

_LAZY = {  # the rest on first use (PEP 562): the daemon masks secrets long before it notifies
    "render": "_message", "to_payload": "_message", "Sender": "_senders", "make_sender": "_senders",
    "DELIVERY_HEADER": "_webhook", "SIGNATURE_HEADER": "_webhook", "body_of": "_webhook", "sign": "_webhook",
    "Clock": "dispatcher", "Dispatcher": "dispatcher", "RetryPolicy": "dispatcher", "DeliveryError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"supervisor.notify.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Clock",
    "DELIVERY_HEADER",
    "DeliveryError",
    "Dispatcher",
    "RetryPolicy",
    "SIGNATURE_HEADER",
    "Sender",
    "body_of",
    "make_sender",
    "redact",
    "register_secret",
    "render",
    "sign",
    "to_payload",
]
