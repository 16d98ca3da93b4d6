"""The fleet's pure rules: whether a host is up, stale or stopped, what one episode of
staleness is called (the key every daemon claims, so one of them raises the alert), whether a
daemon should try to claim it, when the claimed work is done, what the alert says, whether a
host name is already held by another live daemon, and how a job's latest run on another host
counts for `after`.

Clocks: a host's `last_seen`/`stopped_at`, every claim time and the `now` they are judged at are
the shared store's clock (the database server's), never one host's against another's: the
hosts' clocks need not agree. The caller reads the store's now and passes it in."""

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
    """A host's state from its last report, as seen at `now` (all three: the store's clock)."""
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
    the work was done (the owner died mid-send). Never once done: the alert went out.
    `lease_until` and `now`: the store's clock."""
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


def duplicate_alert_key(host: str) -> str:
    """The alert a daemon raises when another daemon writes this host's report too (two daemons
    given the same `[supervisor] host`)."""
    return f"fleet:{host}:duplicate"


def held_by_another(last_seen: datetime, stopped_at: datetime | None, now: datetime, stale_after: float,
                    *, same_machine: bool | None, alive_here: bool) -> bool:
    """Whether the daemon that last wrote a host's report (found by a daemon starting as that
    host) may still be running, so the starting daemon must not take the name over. Not when
    the report is stale or says its daemon stopped (by the store's clock, `now`). A fresh report
    from another machine: yes. From this machine (`same_machine`, by machine id), or from an
    unknown one (None: an older proofwatch's report, or no machine id): only if its daemon is
    still alive here (`alive_here`: its pid is a live process started no later than that daemon,
    and not the caller's own); otherwise it is the starting daemon's own previous incarnation,
    killed (kill -9) or gone leaving its jobs, which must start again at once."""
    if host_state(last_seen, stopped_at, now, stale_after) != HostState.UP:
        return False
    if same_machine is False:
        return True
    return alive_here


def _who(pid: int | None, machine: str, started_at: datetime) -> str:
    where = f" on machine {machine[:12]}" if machine else ""
    return f"pid {pid if pid is not None else '?'}{where}, running since {started_at:%Y-%m-%d %H:%M:%S} UTC"


def host_taken_text(host: str, pid: int | None, machine: str, started_at: datetime, last_seen: datetime,
                    now: datetime, stale_after: float) -> str:
    """The one line a daemon refuses to start with when another live daemon reports as `host`."""
    return (f"host {host}: another proofwatch daemon already reports as this host ({_who(pid, machine, started_at)}; "
            f"last report {duration_text((now - last_seen).total_seconds())} ago); two daemons must not share one "
            "[supervisor] host: give this one its own host name, or stop the other (if it is gone, start this "
            f"one again once its last report is over {duration_text(stale_after)} old)")


def duplicate_alert_text(host: str, pid: int | None, machine: str, started_at: datetime) -> tuple[str, str]:
    """(title, detail) of the alert for another daemon writing this host's report."""
    title = f"host {host}: another proofwatch daemon reports as this host too ({_who(pid, machine, started_at)})"
    detail = (f"Two daemons are configured with [supervisor] host = \"{host}\": they overwrite each other's "
              "fleet report, the fleet shows whichever wrote last, and the history mixes their runs "
              "(a restart of either may close the other's runs as lost). Give each daemon its own host "
              "name, or stop one of them.")
    return title, detail


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
