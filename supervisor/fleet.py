"""The daemon's part in a fleet (a shared store only): report this host, watch the others.

Every `[fleet] report_every` the FleetWatch takes this host's report from the daemon's memory
(on the event loop: jobs, their states and heartbeat times, host health, active alerts), then,
in one worker thread (the store blocks), writes it, reads every host's report and the
stale-host claims, claims what it should, renews or finishes its own claims, and reads the
latest run of each job a local job waits for on another host (`after = ["job@host"]`). Back on
the loop it raises and resolves alerts and updates status.json's `fleet` section.

Stale hosts. A host whose daemon has not reported for `host_stale_after` (and did not say it
stopped) is stale. Every other daemon claims that episode (policies.fleet.stale_claim_key: the
host and the report it went silent after); the one that wins raises ONE alert
(`fleet:<host>:stale`, critical), the others show who raised it (`alerted_by`) and do not.
The owner renews its lease every report until the alert has been delivered by every local
sink that takes it (its outbox has a delivered row carrying the key), at once when no sink
takes it (at its next report), then marks the claim done. If the owner dies before that, the
lease runs out and another daemon's claim wins and raises and sends it again: at least once,
never lost. When the host reports again, or its daemon stops cleanly, whichever daemon has the
alert resolves it. A daemon calls no host stale before it has itself exchanged with the store
for a full `host_stale_after` (since it started, or since its store last failed): after an
outage of the store every report is old because nobody could report, and each host gets its
full grace to report again before it is alerted.

Clocks. Staleness and claim leases are judged by the store's clock (the database server's,
status.fleet.store_now), read at every exchange: this host's report is stamped with it
(`last_seen`, and `stopped_at` at a clean stop), and every claim time is one. The hosts' own
clocks need not agree: a live host whose clock lags is not stale, and a live owner's lease is
not taken over. The daemon's clock stays in use for what is local (its alerts' times,
`read_at`, how long it has watched the store). The report also says how far this host's clock
is ahead of the store's (`clock_offset`), so readers can age its jobs' heartbeats.

One daemon per host name. Each daemon process has a random `instance` id and writes it, with
its machine id and pid, in its report. Before it reads its runs at start (supervisor/
storewatch.py open_history) a daemon refuses to start when its host's report is fresh, not
stopped, and written by another daemon still running: on another machine, or alive on this
one (policies.fleet.held_by_another). A report of this machine whose pid is gone is its own
previous incarnation (kill -9, or `on_exit = "leave"`): it starts. While running, a report
of its host found written by another instance (the other overwrote ours since our last
report) raises `fleet:<host>:duplicate` (critical) and logs it once; it is resolved once no
other daemon has written the report for `host_stale_after`.

Stopping. `stopped(leaving=False)` writes a last report with `stopped_at`: a host whose daemon
was stopped on purpose, with its jobs, is not stale and raises nothing. `stopped(leaving=True)`
(`on_exit = "leave"`: the jobs keep running for the next daemon to adopt, e.g. across an
upgrade) writes a last report WITHOUT `stopped_at`: the host is expected back within
`host_stale_after`; if it is not, its jobs run unsupervised and that is exactly what the
stale-host alert must say.

Nothing here blocks supervision: a store that cannot be reached is logged once per distinct
error, shown in status.json (`fleet.error`, with the hosts as last read), and tried again at
the next report. Remote `after` keeps its last known answer meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from sqlalchemy.engine import Engine

from policies.fleet import (
    HostState,
    claim_done,
    duplicate_alert_key,
    duplicate_alert_text,
    held_by_another,
    host_taken_text,
    host_state,
    may_judge_stale,
    remote_dep,
    should_claim,
    stale_alert_key,
    stale_alert_text,
    stale_claim_key,
)
from policies.triggers import DepRun
from status.fleet import (
    ClaimRow,
    HostRow,
    finish_claim,
    last_start_reasons,
    latest_runs,
    load_claims,
    load_host,
    load_hosts,
    renew_claims,
    report_host,
    store_now,
    try_claim,
)
from status.history import RunRow
from status.outbox import Outbox
from status.models import FleetHostStatus, FleetStatus, JobState, Severity
from supervisor.adopt import create_time
from supervisor.config import split_dep
from supervisor.control import ControlError
from supervisor.recorder import error_text
from supervisor.snapshot import job_status

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)

STALE_CLAIMS = "stale:"  # the prefix of every stale-host claim key
LEASE_REPORTS = 3  # a claim's lease, in reports: two late reports do not lose it
FINAL_REPORT_WAIT = 5.0  # seconds the last report may take at shutdown
CREATED_TOLERANCE = 1.0  # s; a process's create time is dated from the boot time (whole seconds)
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")

StoreClock = Callable[[Engine], datetime]  # the store's now (status.fleet.store_now; tests inject one)


class HostNameTaken(ControlError):
    """Raised at start when another live daemon reports as this daemon's host (one line)."""


def machine_id() -> str:
    """This machine's id (systemd's /etc/machine-id), "" when there is none."""
    for path in MACHINE_ID_FILES:
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                found = f.read().strip()
        except OSError:
            continue
        if found:
            return found
    return ""


def alive_here(pid: int | None, started_at: datetime) -> bool:
    """Whether `pid` is, on this machine, a live process started no later than a daemon that
    started at `started_at` (a reused pid is a later process), and not this process."""
    if not pid or pid == os.getpid():
        return False
    created = create_time(pid)
    return created is not None and created <= started_at.timestamp() + CREATED_TOLERANCE


def held_elsewhere(row: HostRow, now: datetime, stale_after: float, machine: str) -> bool:
    """Whether the daemon that wrote `row` (this host's report) may still be running, as seen by
    a daemon on `machine` at `now` (the store's clock): policies.fleet.held_by_another."""
    same = row.machine == machine if row.machine and machine else None
    return held_by_another(row.last_seen, row.stopped_at, now, stale_after, same_machine=same,
                           alive_here=same is not False and alive_here(row.pid, row.started_at))


def check_host_name(engine: Engine, host: str, stale_after: float, store_clock: StoreClock = store_now) -> None:
    """At start, before the daemon reads its runs: raise HostNameTaken when another live daemon
    reports as `host` (its restore could close that daemon's runs as lost)."""
    now = store_clock(engine)
    row = load_host(engine, host)
    if row is not None and held_elsewhere(row, now, stale_after, machine_id()):
        raise HostNameTaken(host_taken_text(host, row.pid, row.machine, row.started_at, row.last_seen,
                                            now, stale_after))


@dataclass
class _Episode:
    """A stale-host claim this daemon won and raised the alert for, not finished yet."""

    host: str
    claim: str
    alert: str


@dataclass
class _Check:
    """What the worker thread needs to know about one of our episodes (read on the loop)."""

    alert: str
    first_seen: datetime | None  # the alert's, None when it is no longer active
    acknowledged: bool
    sinks: list[str]  # the local sinks that take this alert


@dataclass
class _Ask:
    """One report's work for the worker thread, prepared on the loop."""

    report: HostRow
    now: datetime
    lease: float
    stale_after: float
    judge: bool  # whether to claim stale hosts yet (policies.fleet.may_judge_stale)
    mine: dict[str, _Check]  # claim key -> check
    finish: list[str]  # claim keys to mark done (their host came back)
    deps: list[tuple[str, str]]  # (job, host) of remote `after` entries
    dependents: list[str] = field(default_factory=list)  # the local jobs with such entries


@dataclass
class _Seen:
    """What the worker thread found."""

    hosts: list[HostRow]
    claims: dict[str, ClaimRow]
    now: datetime  # the store's clock, read at this exchange: staleness and leases are judged by it
    won: list[tuple[HostRow, str]] = field(default_factory=list)  # (host's report, claim key)
    finished: set[str] = field(default_factory=set)  # our claims now done
    lost: set[str] = field(default_factory=set)  # our claims another daemon took over
    other: HostRow | None = None  # our host's report as another daemon wrote it (a duplicate name)
    runs: dict[tuple[str, str], RunRow | None] = field(default_factory=dict)
    started_after: dict[str, str] | None = None  # dependent -> its last start reason (read once)


_LONG_AGO = datetime(1970, 1, 1, tzinfo=timezone.utc)  # "seen before the dependent's last start"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class FleetWatch:
    """Owned by the daemon when `[store] url` is set."""

    def __init__(self, daemon: Daemon, store_clock: StoreClock | None = None) -> None:
        self.daemon = daemon
        self.store_clock: StoreClock = store_clock or store_now
        self.instance = uuid.uuid4().hex  # this daemon process, in its reports
        self.machine = machine_id()
        self._wrote = False  # (worker thread) our report has been written once
        self._dup_seen: datetime | None = None  # the last report that found another daemon's write
        self._dup_who: tuple[str, int | None, str] | None = None  # (instance, pid, machine) alerted
        self._status = FleetStatus()
        self._remote: dict[tuple[str, str], DepRun | None] = {}  # (job, host) -> its latest run there
        # (job, host, dependent) -> ((run id, state) of that latest run, when we first saw it so)
        self._observed: dict[tuple[str, str, str], tuple[tuple[str | None, JobState], datetime]] = {}
        self._started_after: dict[str, str] | None = None  # dependent -> its last start reason
        self._notes: dict[tuple[str, str], str] = {}  # (job, host) -> why it can never succeed now
        self._read_at: datetime | None = None  # when the remote runs were last read (our clock)
        self._mine: dict[str, _Episode] = {}  # claim key -> episode we raised and still own
        self._finish: set[str] = set()  # claim keys to mark done at the next report
        self._error: str | None = None  # the last store error logged (logged once per distinct error)
        self._watching_since: datetime | None = None  # first good exchange since start or the last failure
        self._lock = threading.Lock()  # the last report is the last: no tick's report after it
        self._closed = False
        self._outbox: Outbox | None = None

    # ---- the daemon's side -----------------------------------------------------------------

    def status(self) -> FleetStatus:
        """The `fleet` section of status.json."""
        return self._status

    def remote_dep(self, job: str, host: str, dependent: str) -> DepRun | None:
        """The latest run of `job` on `host` as last read from the shared history, for the local
        job `dependent` to decide on (None: none known yet).

        Its `ended_at` is when THIS daemon first saw that run in that state, by its own clock,
        never the other host's: `after_ready` compares it with the dependent's last start (ours),
        so clocks that disagree between hosts can neither start the dependent in a loop (the
        other host ahead) nor hold it back (behind). A run seen for the first time since this
        daemon started counts as already used when the dependent's last start reason names it
        ("after build@emubox succeeded (run ...)"), else as new."""
        dep = self._remote.get((job, host))
        if dep is None:
            return None
        key, ident = (job, host, dependent), (dep.run_id, dep.state)
        prev = self._observed.get(key)
        if prev is not None and prev[0] == ident:
            seen_at = prev[1]
        elif (prev is None and dep.run_id and dep.state == JobState.SUCCEEDED
              and dep.run_id in (self._started_after or {}).get(dependent, "")):
            seen_at = _LONG_AGO  # the dependent already ran after this very success
        else:
            seen_at = self._read_at or self.daemon.clock.now()  # the report that read it: not after
        self._observed[key] = (ident, seen_at)              # the reconciler pass that may start it
        return DepRun(dep.state, seen_at if dep.ended_at is not None else None, dep.run_id)

    def explain(self, entries: list[str], why: str) -> str:
        """`why` a job waits, plus what the fleet knows makes an `after` entry impossible now
        (the host has no such job; no such host has ever reported)."""
        notes = [self._notes[pair] for entry in entries
                 if (pair := split_dep(entry, self.daemon.hostname))[1] is not None
                 and (pair := (pair[0], pair[1])) in self._notes]  # type: ignore[index]
        return why + "".join(f"; {note}" for note in notes)

    async def serve(self) -> None:
        """Report and watch until cancelled: one report every `report_every`."""
        every = self.daemon.config.fleet.report_every
        while True:
            started = anyio.current_time()
            await self.tick()
            await anyio.sleep(max(0.0, every - (anyio.current_time() - started)))

    async def stopped(self, *, leaving: bool) -> None:
        """The daemon is stopping: write the last report. With its jobs stopped (`leaving`
        False) the report says so (`stopped_at`): a stopped host is not stale. Leaving the jobs
        running for the next daemon (`on_exit = "leave"`), it does not: the host is expected
        back within host_stale_after, and if it is not, its jobs are unsupervised and the stale
        alert is right. Bounded: an unreachable store does not hold up the shutdown."""
        now = self.daemon.clock.now()
        row = self.report(now)
        engine = self.daemon.history.engine

        def last() -> None:
            with self._lock:
                try:
                    if not self._closed:
                        self._stamp(row, self.store_clock(engine), now)
                        if not leaving:
                            row.stopped_at = row.last_seen  # the store's clock, as last_seen
                        report_host(engine, row)
                finally:
                    self._closed = True

        with anyio.move_on_after(FINAL_REPORT_WAIT) as scope:
            try:
                await anyio.to_thread.run_sync(last, abandon_on_cancel=True)
            except Exception as exc:
                log.warning("fleet: the last report of host %s failed (%s)", self.daemon.hostname,
                            error_text(exc))
        if scope.cancelled_caught:
            log.warning("fleet: the last report of host %s took over %gs; not waiting for it",
                        self.daemon.hostname, FINAL_REPORT_WAIT)
        if self._outbox is not None:
            self._outbox.engine.close()

    # ---- one report ------------------------------------------------------------------------

    def report(self, now: datetime) -> HostRow:
        """This host's report, from the daemon's memory (on the event loop)."""
        d = self.daemon
        jobs: list[dict[str, Any]] = []
        for job in d.jobs.values():
            st = job_status(job)
            jobs.append({
                "name": job.name, "kind": st.kind, "state": st.state.value, "run_id": st.run_id,
                "pid": st.pid, "started_at": _iso(st.started_at),
                "last_heartbeat_at": _iso(st.last_heartbeat_at),
                "last_progress_at": _iso(st.last_progress_at), "phase": st.phase,
                "message": st.message, "error": st.error, "waiting": job.waiting or None,
            })
        health = d.hostwatch.status if d.hostwatch is not None else None
        return HostRow(
            host=d.hostname, started_at=d.started_at, last_seen=now, stopped_at=None,
            pid=os.getpid(), version=_version(), report_every=d.config.fleet.report_every,
            health=health.model_dump(mode="json") if health is not None else {},
            jobs=jobs, active_alerts=len(d.alerts.active), instance=self.instance, machine=self.machine,
        )

    @staticmethod
    def _stamp(row: HostRow, store: datetime, local: datetime) -> None:
        """Date a report by the store's clock; say how far ours is ahead of it."""
        row.last_seen = store
        row.clock_offset = round((local - store).total_seconds(), 3)

    async def tick(self) -> None:
        """One report: write ours, read the fleet, act on stale hosts and remote `after`."""
        d = self.daemon
        now = d.clock.now()
        try:
            ask = self._ask(now)
            # abandoned on cancel: a hung store must not hold up the shutdown (the lock keeps
            # a late report from following the last one)
            seen = await anyio.to_thread.run_sync(self._exchange, ask, abandon_on_cancel=True)
        except Exception as exc:
            self._failed(exc, now)
            return
        if self._error is not None:
            log.info("fleet: the shared store answers again")
            self._error = None
        if self._watching_since is None:
            self._watching_since = now
        try:
            self._apply(seen, now)
        except Exception as exc:  # a bug here must not end the fleet's task: log, try next time
            log.error("fleet: handling the fleet's reports failed: %s", exc, exc_info=True)

    def _ask(self, now: datetime) -> _Ask:
        d, cfg = self.daemon, self.daemon.config
        rules = d.notifier.dispatcher.rules if d.notifier is not None else []
        mine: dict[str, _Check] = {}
        for key, ep in self._mine.items():
            alert = d.alerts.active.get(ep.alert)
            sinks = [r.name for r in rules if alert is not None and r.accepts(None, alert.severity)]
            mine[key] = _Check(ep.alert, alert.first_seen if alert else None,
                               bool(alert and alert.acknowledged_at), sinks)
        deps: list[tuple[str, str]] = []
        dependents: list[str] = []
        for job in d.jobs.values():
            for entry in job.settings.after:
                name, host = split_dep(entry, d.hostname)
                if host is not None and (name, host) not in deps:
                    deps.append((name, host))
                if host is not None and job.name not in dependents:
                    dependents.append(job.name)
        stale_after = cfg.fleet.host_stale_after
        return _Ask(self.report(now), now, LEASE_REPORTS * cfg.fleet.report_every, stale_after,
                    may_judge_stale(self._watching_since, now, stale_after), mine, sorted(self._finish), deps,
                    dependents)

    def _exchange(self, ask: _Ask) -> _Seen:
        """The store's part of a report (worker thread)."""
        engine = self.daemon.history.engine
        me = self.daemon.hostname
        now = self.store_clock(engine)  # staleness and leases: by the store's clock, never ours
        before = load_host(engine, me)
        first: bool | None = None
        with self._lock:
            if not self._closed:
                self._stamp(ask.report, now, ask.now)
                report_host(engine, ask.report)
                first, self._wrote = not self._wrote, True
        seen = _Seen(load_hosts(engine), {c.key: c for c in load_claims(engine, STALE_CLAIMS)}, now)
        if first is not None:
            seen.other = self._written_by_another(before, now, ask.stale_after, first)
        for key in ask.finish:
            finish_claim(engine, key, me, now)
            seen.finished.add(key)
        renew: list[str] = []
        for key, check in ask.mine.items():
            claim = seen.claims.get(key)
            if claim is None or claim.owner != me:
                seen.lost.add(key)
                continue
            if claim.done_at is not None:
                seen.finished.add(key)
                continue
            delivered: set[str] = set()
            if check.first_seen is not None and check.sinks and not check.acknowledged:
                delivered = self._local_outbox().delivered_sinks(check.alert, check.first_seen)
            if claim_done(check.sinks, delivered, check.first_seen is not None, check.acknowledged):
                finish_claim(engine, key, me, now)
                seen.finished.add(key)
            else:
                renew.append(key)
        renew_claims(engine, me, renew, now + timedelta(seconds=ask.lease))
        for row in seen.hosts:
            if not ask.judge or row.host == me:
                continue
            if host_state(row.last_seen, row.stopped_at, now, ask.stale_after) != HostState.STALE:
                continue
            key = stale_claim_key(row.host, row.last_seen)
            if key in ask.mine:
                continue
            claim = seen.claims.get(key)
            if should_claim(claim.owner if claim else None, claim.lease_until if claim else None,
                            bool(claim and claim.done_at), me, now):
                what = f"host {row.host} stale"
                if try_claim(engine, key, me, now, ask.lease, detail=what):
                    seen.won.append((row, key))
                    seen.claims[key] = ClaimRow(key=key, owner=me, claimed_at=now, detail=what,
                                                lease_until=now + timedelta(seconds=ask.lease))
        if ask.deps:
            seen.runs = latest_runs(engine, ask.deps)
            if self._started_after is None:  # once: what each dependent last started after
                seen.started_after = last_start_reasons(engine, me, ask.dependents)
        return seen

    def _written_by_another(self, before: HostRow | None, now: datetime, stale_after: float,
                            first: bool) -> HostRow | None:
        """Our host's report as it was before we wrote ours, if another daemon wrote it: since
        our previous report, any other instance; at our first, only a live one (else it was our
        own previous incarnation's, or a stopped or stale daemon's)."""
        if before is None or (before.instance == self.instance and before.pid == os.getpid()):
            return None
        if not first or held_elsewhere(before, now, stale_after, self.machine):
            return before
        return None

    def _local_outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self.daemon.config.outbox_db)
        return self._outbox

    def _apply(self, seen: _Seen, now: datetime) -> None:
        """Act on what the store said (on the event loop). `now`: our clock (alert times,
        read_at); `seen.now`: the store's (staleness, ages of reports)."""
        d, me = self.daemon, self.daemon.hostname
        stale_after = d.config.fleet.host_stale_after
        self._duplicate(seen.other, now, stale_after)
        self._finish.difference_update(seen.finished)
        for key in seen.finished:
            if self._mine.pop(key, None) is not None:
                log.info("fleet: claim %s done (its alert was delivered, or is resolved or acknowledged)", key)
        for key in seen.lost:
            if self._mine.pop(key, None) is not None:
                log.warning("fleet: claim %s was taken over by another daemon (our lease ran out)", key)
        for row, key in seen.won:
            if key in self._mine:
                continue
            alert = stale_alert_key(row.host)
            title, detail = stale_alert_text(row.host, row.last_seen, seen.now, row.jobs)
            log.warning("fleet: host %s stale since %s; claimed %s, raising the alert",
                        row.host, row.last_seen.isoformat(), key)
            d.alerts.fire(None, alert, severity=Severity.CRITICAL, title=title, detail=detail, now=now)
            self._mine[key] = _Episode(row.host, key, alert)
        hosts: list[FleetHostStatus] = []
        for row in seen.hosts:
            state = HostState.UP if row.host == me else host_state(row.last_seen, row.stopped_at, seen.now,
                                                                   stale_after)
            alerted_by = None
            if state == HostState.STALE:
                claim = seen.claims.get(stale_claim_key(row.host, row.last_seen))
                alerted_by = claim.owner if claim is not None else None
            elif row.host != me:
                self._host_back(row.host, state, now)
            hosts.append(FleetHostStatus(host=row.host, state=state.value, last_seen=row.last_seen,
                                         jobs=len(row.jobs), active_alerts=row.active_alerts,
                                         alerted_by=alerted_by))
        self._status = FleetStatus(read_at=now, hosts=hosts)
        if seen.started_after is not None:
            self._started_after = seen.started_after
        self._read_at = now
        remote: dict[tuple[str, str], DepRun | None] = {}
        for pair, run in seen.runs.items():
            remote[pair] = None if run is None else DepRun(
                remote_dep(run.state, run.ended_at, run.proofs).state, run.ended_at, run.run_id)
        self._note_impossible(seen, remote)
        changed = any(self._remote.get(pair) != dep for pair, dep in remote.items())
        self._remote = remote
        if changed:  # the reconciler re-evaluates `after` at once
            d.wake()
        d.status.changed()
        d.notify_change()

    def _note_impossible(self, seen: _Seen, remote: dict[tuple[str, str], DepRun | None]) -> None:
        """Remember (and log once) each remote `after` that names a job its host does not have,
        or a host that never reported: it would wait forever without saying why."""
        reported = {row.host: row for row in seen.hosts}
        notes: dict[tuple[str, str], str] = {}
        for (job, host), dep in remote.items():
            if dep is not None:
                continue
            row = reported.get(host)
            if row is None:
                notes[(job, host)] = f"no host {host} has reported to the shared store"
            elif job not in {j.get("name") for j in row.jobs}:
                names = ", ".join(sorted(str(j.get("name")) for j in row.jobs)) or "none"
                notes[(job, host)] = f"{host} has no job {job} (its jobs: {names})"
        for pair, note in notes.items():
            if self._notes.get(pair) != note:
                log.warning("fleet: after = %s@%s can never succeed now: %s", pair[0], pair[1], note)
        if notes != self._notes:
            self.daemon.wake()  # the waiting reason changes
        self._notes = notes

    def _duplicate(self, other: HostRow | None, now: datetime, stale_after: float) -> None:
        """Raise `fleet:<host>:duplicate` while another daemon writes our host's report (logged
        once per other daemon); resolve it once none has for `stale_after`."""
        d, me = self.daemon, self.daemon.hostname
        key = duplicate_alert_key(me)
        if other is None:
            if self._dup_seen is not None and (now - self._dup_seen).total_seconds() >= stale_after:
                self._dup_seen, self._dup_who = None, None
                d.alerts.resolve(key, now, f"no other daemon has reported as host {me} for {stale_after:g}s")
            return
        self._dup_seen = now
        who = (other.instance, other.pid, other.machine)
        if who == self._dup_who and key in d.alerts.active:
            return
        title, detail = duplicate_alert_text(me, other.pid, other.machine, other.started_at)
        if who != self._dup_who:
            log.error("fleet: %s; this daemon is pid %d", title, os.getpid())
        self._dup_who = who
        d.alerts.fire(None, key, severity=Severity.CRITICAL, title=title, detail=detail, now=now)

    def _host_back(self, host: str, state: HostState, now: datetime) -> None:
        """`host` reports again (or stopped cleanly): its stale episode is over."""
        key = stale_alert_key(host)
        why = (f"host {host} reported again" if state == HostState.UP
               else f"host {host}'s daemon stopped cleanly")
        self.daemon.alerts.resolve(key, now, why)
        for claim, ep in list(self._mine.items()):
            if ep.host == host:
                del self._mine[claim]
                self._finish.add(claim)

    def _failed(self, exc: BaseException, now: datetime) -> None:
        self._watching_since = None  # the other hosts may not have been able to report either
        text = error_text(exc)
        if text != self._error:
            log.warning("fleet: the shared store failed (%s); supervising on, trying again every %gs",
                        text, self.daemon.config.fleet.report_every,
                        exc_info=not _is_store_error(exc))
            self._error = text
        self._status = FleetStatus(read_at=self._status.read_at, error=text, hosts=self._status.hosts)
        self.daemon.status.changed()
        self.daemon.notify_change()


def _is_store_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, (SQLAlchemyError, OSError))


def _version() -> str:
    from supervisor.daemon import VERSION

    return VERSION
