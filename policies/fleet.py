"""The fleet's pure rules: whether a host is up, stale or stopped, and what one episode of
staleness is called (the key every daemon claims, so one of them raises the alert)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class HostState(StrEnum):
    UP = "up"  # reported within host_stale_after
    STALE = "stale"  # has not reported for host_stale_after, and did not say it stopped
    STOPPED = "stopped"  # its daemon stopped cleanly (said so in its last report)


def host_state(last_seen: datetime, stopped_at: datetime | None, now: datetime,
               stale_after: float) -> HostState:
    """A host's state from its last report, as seen at `now`."""
    if stopped_at is not None and stopped_at >= last_seen:
        return HostState.STOPPED
    if (now - last_seen).total_seconds() > stale_after:
        return HostState.STALE
    return HostState.UP


def stale_alert_key(host: str) -> str:
    """The alert a daemon raises for a stale host (one per host)."""
    return f"host:{host}:stale"


def stale_claim_key(host: str, last_seen: datetime) -> str:
    """One episode of `host` being stale: the report it went silent after. Every daemon that
    sees the episode claims this key; the one that wins raises the alert."""
    return f"stale:{host}:{last_seen.isoformat(timespec='microseconds')}"
