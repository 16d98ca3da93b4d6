"""Notifiers: the outbox dispatcher and the webhook, command, file and Apprise senders.

The daemon owns one `Dispatcher`; it calls `update(alerts)` when alerts change and at the time
it returns, and runs `serve()` in its task group. Decisions come from policies.alerting; rows
go to status.outbox first (persist before acting). May import: policies, status,
supervisor.config. Nothing here imports the daemon.
"""

from supervisor.notify._message import render, to_payload
from supervisor.notify._redact import redact, register_secret
from supervisor.notify._senders import Sender, make_sender
from supervisor.notify._webhook import DELIVERY_HEADER, SIGNATURE_HEADER, body_of, sign
from supervisor.notify.dispatcher import Clock, Dispatcher, RetryPolicy
from supervisor.notify.errors import DeliveryError

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
