"""The fleet's pure rules: whether a host is up, stale or stopped, what one episode of
staleness is called (the key every daemon claims, so one of them raises the alert), whether a
daemon should try to claim it, when the claimed work is done, what the alert says, and how a
job's latest run on another host counts for `after`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from policies.triggers import DepRun
from status.models import JobState


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
    """The alert a daemon raises for a stale host (one per host). Not "host:...": those keys
    are this daemon's own host conditions (the health hysteresis clears them when its own
    samples are fine, and a critical one holds back this host's job alerts as their cause)."""
    return f"fleet:{host}:stale"


def stale_claim_key(host: str, last_seen: datetime) -> str:
    """One episode of `host` being stale: the report it went silent after. Every daemon that
    sees the episode claims this key; the one that wins raises the alert."""
    return f"stale:{host}:{last_seen.isoformat(timespec='microseconds')}"


def may_judge_stale(watching_since: datetime | None, now: datetime, stale_after: float) -> bool:
    """Whether a daemon has watched the store long enough to call another host stale: for
    `stale_after` without a failure of its own (`watching_since`: its first good exchange since
    it started or its store last failed; None: none yet). After an outage of the store every
    host's last report is old because no host could report, not because its daemon died: the
    others get a full `stale_after` to report again before anyone is alerted."""
    return watching_since is not None and (now - watching_since).total_seconds() >= stale_after


def should_claim(owner: str | None, lease_until: datetime | None, done: bool, me: str,
                 now: datetime) -> bool:
    """Whether daemon `me` should try to claim a stale-host episode whose claim row is as
    given (`owner` None: nobody has claimed it yet). Try when it is unclaimed, already ours
    and not done (renew it, e.g. after our own restart), or its owner's lease ran out before
    the work was done (the owner died mid-send). Never once done: the alert went out."""
    if owner is None:
        return True
    if done:
        return False
    return owner == me or (lease_until is not None and lease_until < now)


def claim_done(accepting_sinks: Collection[str], delivered_sinks: Collection[str],
               alert_active: bool, acknowledged: bool) -> bool:
    """Whether the owner of a stale-host claim has finished its work: the alert was delivered
    to every sink that takes it (at once when no sink does), or it is no longer for anyone to
    send (resolved, or acknowledged by the operator before it went out)."""
    if not alert_active or acknowledged:
        return True
    return set(accepting_sinks) <= set(delivered_sinks)


def duration_text(seconds: float) -> str:
    """Short text for an age: "45s", "1m 12s", "2h 5m", "3d 4h"."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return " ".join(shown[:2]) if shown else "0s"


_LIVE = frozenset(s.value for s in JobState if s.is_active)


def stale_alert_text(host: str, last_seen: datetime, now: datetime,
                     jobs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(title, detail) of the alert for a host whose daemon stopped reporting: how long ago,
    since when (UTC), and what it was running as it last reported."""
    live = [j for j in jobs if str(j.get("state", "")) in _LIVE]
    title = (f"host {host}: no report for {duration_text((now - last_seen).total_seconds())} "
             f"(daemon silent since {last_seen:%H:%M:%S} UTC; last seen with {len(live)} "
             f"job{'' if len(live) == 1 else 's'} running)")
    lines = [f"the proofwatch daemon on {host} last reported at {last_seen.isoformat(timespec='seconds')}; "
             "it was killed, hung, or lost its host or its network. Its jobs as it last reported them:"]
    for j in sorted(jobs, key=lambda j: str(j.get("name", ""))):
        pid = f" pid {j['pid']}" if j.get("pid") else ""
        what = j.get("error") or j.get("message") or j.get("waiting") or ""
        lines.append(f"  {j.get('name', '?')}: {j.get('state', '?')}{pid}" + (f" ({what})" if what else ""))
    if not jobs:
        lines.append("  (no jobs)")
    return title, "\n".join(lines)


def remote_dep(state: str, ended_at: datetime | None, proofs: Sequence[Mapping[str, Any]]) -> DepRun:
    """A job's latest run on another host as `after` sees it: SUCCEEDED only when every proof
    it recorded is ok (a success whose proofs are not all verified counts as FAILED); a state
    this version does not know is not a success (PENDING)."""
    try:
        known = JobState(state)
    except ValueError:
        known = JobState.PENDING
    if known == JobState.SUCCEEDED and not all(p.get("ok") is True for p in proofs):
        known = JobState.FAILED
    return DepRun(known, ended_at)
