"""supervisor/fleet.py in process, fast: FleetWatches of stand-in daemons on one SQLite store and
a fake clock (the daemons' and, where a test says so, the store's: `store_clock`) decide who raises a stale host's alert, renew and finish their claim, give it up
to a takeover after their lease, resolve it when the host is back, answer a remote `after`, and
keep going (with the error shown) while the store is unreachable."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from policies.alerting import SinkRule
from status.fleet import HostRow, load_claims, load_hosts, report_host
from status.history import Batch, History, RunRow, make_engine
from status.models import JobState
from status.outbox import Outbox, OutboxRow
from supervisor.alerts import AlertBook
from supervisor.config import load_config
from supervisor.fleet import FleetWatch
from supervisor.runs import JobRuntime
from tests.supervisor.harness import FakeClock

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
KEY = "fleet:emubox:stale"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []

    def alert(self, row: object, line: dict[str, object] | None) -> None:
        if line is not None:
            self.lines.append(line)


def stand_in(tmp_path: Path, host: str, url: str, clock: FakeClock, *, sinks: list[str] | None = None,
             jobs: str = "", store_clock: FakeClock | None = None) -> Any:
    """Just enough of a Daemon for a FleetWatch: its config, clock, jobs, alert book, notifier
    rules and the shared store's engine; counts wake() calls. The store's clock (staleness,
    leases) is the store's own (SQLite: this machine's real time) unless `store_clock` stands
    in for it."""
    root = tmp_path / host
    root.mkdir()
    (root / "config.toml").write_text(
        f'[supervisor]\nstate_dir = "var"\nhost = "{host}"\n[store]\nurl = "{url}"\n'
        '[fleet]\nreport_every = "1s"\nhost_stale_after = "5s"\n' + jobs)
    config = load_config(root / "config.toml")
    config.state_dir.mkdir(parents=True)
    outbox = Outbox(make_engine(config.outbox_db))
    outbox.create()
    d = SimpleNamespace(
        config=config, clock=clock, hostname=host, started_at=clock.now(),
        jobs={name: JobRuntime(name, js) for name, js in config.jobs.items()},
        alerts=AlertBook(Recorder()), hostwatch=None,  # type: ignore[arg-type]
        notifier=SimpleNamespace(dispatcher=SimpleNamespace(rules=[SinkRule(name=s) for s in sinks or []])),
        history=SimpleNamespace(engine=make_engine(url)), outbox=outbox, wakes=0,
        status=SimpleNamespace(changed=lambda urgent=False: None), notify_change=lambda: None)

    def wake() -> None:
        d.wakes += 1
    d.wake = wake
    d.fleet = FleetWatch(d, store_clock=(lambda _engine: store_clock.now()) if store_clock else None)  # type: ignore[arg-type]
    return d


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    History(url).close()
    return url


def emubox_reported(url: str, at: datetime, *, stopped: bool = False) -> None:
    """The stale host's own daemon reports (as it would before it was killed)."""
    report_host(make_engine(url), HostRow(
        host="emubox", started_at=T0, last_seen=at, stopped_at=at if stopped else None,
        jobs=[{"name": "emulator", "state": "RUNNING", "pid": 4242}]))


def claim(url: str) -> Any:
    rows = load_claims(make_engine(url), "stale:emubox:")
    return rows[-1] if rows else None


def delivered(d: Any, key: str, sink: str) -> None:
    """The stand-in's notifier delivered a notification carrying `key` to `sink`."""
    now = d.clock.now()
    d.outbox.add([OutboxRow(created_at=now, sink=sink, delivered_at=now,
                            payload={"alerts": [{"key": key, "event": "new"}]})], None, now)


async def rounds(clock: FakeClock, n: int, *daemons: Any) -> None:
    """`n` report rounds, one second apart, each daemon in turn."""
    for _ in range(n):
        clock.advance(1)
        for d in daemons:
            await d.fleet.tick()


async def test_one_daemon_raises_a_stale_host_alert_and_the_others_show_who(tmp_path, store) -> None:
    clock = FakeClock(T0)
    a, b = (stand_in(tmp_path, h, store, clock, store_clock=clock) for h in ("alpha", "beta"))
    emubox_reported(store, T0)
    await a.fleet.tick()
    await b.fleet.tick()
    assert {h.host: h.state for h in b.fleet.status().hosts} == {"alpha": "up", "beta": "up", "emubox": "up"}
    assert not a.alerts.active and not b.alerts.active

    await rounds(clock, 6, a, b)
    assert KEY in a.alerts.active and KEY not in b.alerts.active
    assert set(a.alerts.active) == {KEY}  # alpha and beta report to each other all along
    alert = a.alerts.active[KEY]
    assert alert.title == ("host emubox: no report for 6s (daemon silent since 10:00:00 UTC; "
                           "last seen with 1 job running)")
    assert "emulator: RUNNING pid 4242" in alert.detail
    for d in (a, b):
        shown = {h.host: h for h in d.fleet.status().hosts}["emubox"]
        assert (shown.state, shown.alerted_by, shown.jobs) == ("stale", "alpha", 1)
    assert claim(store).done_at is None
    await rounds(clock, 1, a, b)
    assert claim(store).done_at is not None  # no sink takes it: nothing to deliver, done at the next report

    await rounds(clock, 30, b, a)  # much later, still stale: nobody raises it again
    assert KEY not in b.alerts.active and a.alerts.active[KEY].count == 1

    emubox_reported(store, clock.now())
    await b.fleet.tick()
    await a.fleet.tick()
    assert KEY not in a.alerts.active
    assert a.alerts.recorder.lines[-1]["resolution"] == "host emubox reported again"


async def test_the_owner_renews_until_delivered_and_a_dead_owners_claim_is_taken_over(tmp_path, store) -> None:
    clock = FakeClock(T0)
    a = stand_in(tmp_path, "alpha", store, clock, sinks=["hook"], store_clock=clock)
    b = stand_in(tmp_path, "beta", store, clock, sinks=["hook"], store_clock=clock)
    emubox_reported(store, T0)
    await rounds(clock, 6, a, b)
    assert KEY in a.alerts.active and claim(store).owner == "alpha"
    first_lease = claim(store).lease_until
    await rounds(clock, 3, a, b)  # alpha's sink has not delivered it: it keeps the claim alive
    assert claim(store).done_at is None and claim(store).lease_until > first_lease
    assert KEY not in b.alerts.active

    await rounds(clock, 2, b)  # alpha died mid-send: no more renewals; its 3s lease is running out
    assert KEY not in b.alerts.active and claim(store).owner == "alpha"
    await rounds(clock, 2, b)
    assert KEY in b.alerts.active and claim(store).owner == "beta" and claim(store).done_at is None
    await rounds(clock, 1, b)
    assert claim(store).done_at is None  # beta has not delivered it either yet
    delivered(b, "fleet:other:stale", "hook")  # another alert's delivery does not count
    await rounds(clock, 1, b)
    assert claim(store).done_at is None
    delivered(b, KEY, "hook")
    await rounds(clock, 1, b)
    assert claim(store).done_at is not None and claim(store).owner == "beta"

    # alpha was only slow, not dead: it finds its claim taken over and stops renewing it
    await rounds(clock, 1, a)
    assert claim(store).owner == "beta" and not a.fleet._mine


async def test_a_clean_stop_resolves_the_alert_and_is_never_stale(tmp_path, store) -> None:
    clock = FakeClock(T0)
    a = stand_in(tmp_path, "alpha", store, clock, store_clock=clock)
    emubox_reported(store, T0)
    await rounds(clock, 6, a)
    assert KEY in a.alerts.active
    emubox_reported(store, clock.now(), stopped=True)
    clock.advance(60)
    await a.fleet.tick()
    assert KEY not in a.alerts.active
    assert {h.host: h.state for h in a.fleet.status().hosts}["emubox"] == "stopped"
    assert a.alerts.recorder.lines[-1]["resolution"] == "host emubox's daemon stopped cleanly"


async def test_stopping_marks_the_host_stopped_unless_its_jobs_are_left_running(tmp_path, store) -> None:
    clock = FakeClock(T0)
    a = stand_in(tmp_path, "alpha", store, clock, store_clock=clock)
    b = stand_in(tmp_path, "beta", store, clock, store_clock=clock)
    await a.fleet.stopped(leaving=False)
    await b.fleet.stopped(leaving=True)
    await a.fleet.tick()  # a report after the last one is not written
    rows = {r.host: r for r in load_hosts(make_engine(store))}
    assert rows["alpha"].stopped_at == T0
    assert rows["beta"].stopped_at is None and rows["beta"].last_seen == T0


def _run(url: str, state: str, proofs: list[dict[str, object]], ended: datetime) -> None:
    history = History(url, host="emubox")
    history.apply(Batch(runs=[RunRow(run_id=f"r-{state}-{ended.timestamp()}", job="build", host="emubox",
                                     state=state, started_at=ended - timedelta(seconds=5), ended_at=ended,
                                     proofs=proofs)]))
    history.close()


async def test_a_remote_after_reads_the_latest_run_and_wakes_the_daemon_when_it_changes(tmp_path, store) -> None:
    clock = FakeClock(T0)
    b = stand_in(tmp_path, "beta", store, clock, jobs='[jobs.deploy]\ncommand = "true"\nafter = ["build@emubox"]\n')
    await b.fleet.tick()
    assert b.fleet.remote_dep("build", "emubox", "deploy") is None
    assert b.fleet.explain(["build@emubox"], "waiting") == "waiting; no host emubox has reported to the shared store"
    _run(store, "SUCCEEDED", [{"path": "image.txt", "ok": False}], T0 + timedelta(seconds=1))
    woken = b.wakes
    await b.fleet.tick()
    dep = b.fleet.remote_dep("build", "emubox", "deploy")
    assert dep is not None and dep.state == JobState.FAILED and b.wakes > woken  # unproven: not a success
    woken = b.wakes
    await b.fleet.tick()
    assert b.wakes == woken  # nothing changed
    _run(store, "SUCCEEDED", [{"path": "image.txt", "ok": True}], T0 + timedelta(seconds=9))
    await b.fleet.tick()
    dep = b.fleet.remote_dep("build", "emubox", "deploy")
    # its end as THIS daemon first saw it (our clock), not emubox's clock; it stays put
    seen_at = clock.now()
    assert dep is not None and dep.state == JobState.SUCCEEDED and dep.ended_at == seen_at
    assert dep.run_id == f"r-SUCCEEDED-{(T0 + timedelta(seconds=9)).timestamp()}"
    clock.advance(30)
    assert b.fleet.remote_dep("build", "emubox", "deploy").ended_at == seen_at  # type: ignore[union-attr]
    assert b.wakes > woken


async def test_an_unreachable_store_is_shown_logged_once_and_retried(tmp_path, store, caplog) -> None:
    clock = FakeClock(T0)
    a = stand_in(tmp_path, "alpha", store, clock, store_clock=clock)
    await a.fleet.tick()
    good: Engine = a.history.engine
    a.history.engine = make_engine(f"sqlite:///{tmp_path / 'nowhere' / 'gone.db'}")
    with caplog.at_level(logging.WARNING, logger="supervisor.fleet"):
        for _ in range(3):
            clock.advance(1)
            await a.fleet.tick()
    status = a.fleet.status()
    assert status.error and "unable to open database file" in status.error
    assert status.read_at == T0 and [h.host for h in status.hosts] == ["alpha"]  # as last read
    assert len([r for r in caplog.records if "the shared store failed" in r.getMessage()]) == 1
    a.history.engine = good
    clock.advance(1)
    await a.fleet.tick()
    assert a.fleet.status().error is None and a.fleet.status().read_at == clock.now()


async def test_after_its_store_failed_a_daemon_gives_every_host_a_full_grace_to_report(tmp_path, store) -> None:
    clock = FakeClock(T0)
    a = stand_in(tmp_path, "alpha", store, clock, store_clock=clock)
    emubox_reported(store, T0)
    await a.fleet.tick()
    good: Engine = a.history.engine
    a.history.engine = make_engine(f"sqlite:///{tmp_path / 'nowhere' / 'gone.db'}")
    await rounds(clock, 30, a)  # the store is down: nobody can report
    a.history.engine = good
    await rounds(clock, 4, a)  # back: emubox's report is 34s old, but it could not report either
    assert {h.host: h.state for h in a.fleet.status().hosts}["emubox"] == "stale"
    assert KEY not in a.alerts.active and claim(store) is None
    await rounds(clock, 2, a)  # 5s of a working store and still no report: now it is stale
    assert KEY in a.alerts.active and claim(store).owner == "alpha"


# ---- clocks: the store's, not the hosts' -------------------------------------------------------


async def test_hosts_whose_clocks_disagree_are_judged_by_the_stores_clock(tmp_path, store) -> None:
    server = FakeClock(T0)  # the database server's clock
    behind, ahead = FakeClock(T0 - timedelta(minutes=10)), FakeClock(T0 + timedelta(minutes=10))
    a = stand_in(tmp_path, "alpha", store, behind, store_clock=server)
    b = stand_in(tmp_path, "beta", store, ahead, store_clock=server)
    emubox_reported(store, T0)
    for _ in range(8):
        for clock in (server, behind, ahead):
            clock.advance(1)
        await a.fleet.tick()
        await b.fleet.tick()
    rows = {r.host: r for r in load_hosts(make_engine(store))}
    assert rows["alpha"].last_seen == server.now() and rows["alpha"].clock_offset == -600.0
    assert rows["beta"].last_seen == server.now() and rows["beta"].clock_offset == 600.0
    for d in (a, b):  # ten minutes apart, both up; emubox stale by the server's 8 s, not 10 minutes
        assert {h.host: h.state for h in d.fleet.status().hosts} == {"alpha": "up", "beta": "up", "emubox": "stale"}
    owner = a if KEY in a.alerts.active else b
    assert KEY not in (b if owner is a else a).alerts.active
    assert owner.alerts.active[KEY].title.startswith("host emubox: no report for 6s ")  # raised at 6 s
    (c,) = load_claims(make_engine(store), "stale:emubox:")
    assert c.claimed_at == T0 + timedelta(seconds=6) and c.lease_until == c.claimed_at + timedelta(seconds=3)

    # the lagging host stops cleanly: stopped by the store's clock, never stale
    await a.fleet.stopped(leaving=False)
    for _ in range(8):
        server.advance(1)
        ahead.advance(1)
        await b.fleet.tick()
    assert {h.host: h.state for h in b.fleet.status().hosts}["alpha"] == "stopped"
    assert "fleet:alpha:stale" not in b.alerts.active


async def test_a_live_owners_claim_is_not_taken_over_by_a_host_whose_clock_runs_ahead(tmp_path, store) -> None:
    server, alpha, beta = FakeClock(T0), FakeClock(T0), FakeClock(T0 + timedelta(hours=1))
    a = stand_in(tmp_path, "alpha", store, alpha, sinks=["hook"], store_clock=server)
    b = stand_in(tmp_path, "beta", store, beta, sinks=["hook"], store_clock=server)
    emubox_reported(store, T0)

    async def rounds_of(n: int, *daemons: Any) -> None:
        for _ in range(n):
            for clock in (server, alpha, beta):
                clock.advance(1)
            for d in daemons:
                await d.fleet.tick()

    await rounds_of(6, a)
    assert claim(store).owner == "alpha" and KEY in a.alerts.active
    await rounds_of(8, a, b)  # alpha renews, undelivered: beta's clock an hour ahead changes nothing
    assert claim(store).owner == "alpha" and KEY not in b.alerts.active
    assert claim(store).lease_until == server.now() + timedelta(seconds=3)  # renewed by the store's clock
    await rounds_of(3, b)  # alpha died mid-send: its 3 s lease runs out by the store's clock, and only then
    assert claim(store).owner == "alpha" and KEY not in b.alerts.active
    await rounds_of(1, b)
    assert claim(store).owner == "beta" and KEY in b.alerts.active


async def test_the_store_clock_is_the_databases_own(tmp_path, store) -> None:
    from status.fleet import store_now

    before = datetime.now(timezone.utc)
    at = store_now(make_engine(store))
    assert before - timedelta(seconds=1) <= at <= datetime.now(timezone.utc) + timedelta(seconds=1)
    a = stand_in(tmp_path, "alpha", store, FakeClock(T0))  # a daemon clock a year off
    await a.fleet.tick()
    (row,) = load_hosts(make_engine(store))
    assert abs((row.last_seen - before).total_seconds()) < 5 and row.clock_offset < -3600


# ---- one daemon per host name ------------------------------------------------------------------


def _two_named(tmp_path: Path, store: str, clock: FakeClock) -> tuple[Any, Any]:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    return (stand_in(tmp_path / "one", "alpha", store, clock, store_clock=clock),
            stand_in(tmp_path / "two", "alpha", store, clock, store_clock=clock))


async def test_two_daemons_reporting_as_one_host_both_raise_the_duplicate_alert(tmp_path, store, caplog) -> None:
    clock = FakeClock(T0)
    a, b = _two_named(tmp_path, store, clock)
    dup = "fleet:alpha:duplicate"
    with caplog.at_level(logging.ERROR, logger="supervisor.fleet"):
        await rounds(clock, 4, a, b)
    for d, other in ((a, b), (b, a)):
        alert = d.alerts.active[dup]
        assert alert.severity == "critical" and alert.count == 1
        assert alert.title.startswith(f"host alpha: another proofwatch daemon reports as this host too (pid {os.getpid()}")
    logged = [r.getMessage() for r in caplog.records if "another proofwatch daemon reports as" in r.getMessage()]
    assert len(logged) == 2  # once per daemon, not once per report

    await rounds(clock, 4, a)  # b is gone: a owns the name again after host_stale_after (5 s)
    assert dup in a.alerts.active
    await rounds(clock, 2, a)
    assert dup not in a.alerts.active
    assert a.alerts.recorder.lines[-1]["resolution"] == "no other daemon has reported as host alpha for 5s"


def _previous(store: str, at: datetime, *, pid: int | None, machine: str, started_at: datetime = T0,
              stopped: bool = False) -> None:
    """host alpha's report as a previous daemon left it."""
    report_host(make_engine(store), HostRow(host="alpha", started_at=started_at, last_seen=at, pid=pid,
                                            instance="0ld", machine=machine, stopped_at=at if stopped else None))


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_a_restarted_daemon_takes_its_previous_report_over_without_an_alert(tmp_path, store) -> None:
    from supervisor.fleet import check_host_name, machine_id

    clock = FakeClock(T0)
    _previous(store, T0 - timedelta(seconds=1), pid=_dead_pid(), machine=machine_id())  # killed 1 s ago
    check_host_name(make_engine(store), "alpha", 5.0, lambda _e: clock.now())  # not refused
    a = stand_in(tmp_path, "alpha", store, clock, store_clock=clock)
    await rounds(clock, 3, a)
    assert "fleet:alpha:duplicate" not in a.alerts.active
    (row,) = load_hosts(make_engine(store))
    assert (row.instance, row.pid) == (a.fleet.instance, os.getpid())


@pytest.mark.parametrize(
    ("case", "refused"),
    [("another-machine-fresh", True), ("another-machine-stale", False), ("another-machine-stopped", False),
     ("this-machine-alive", True), ("this-machine-pid-reused", False), ("this-machine-dead", False),
     ("this-process", False), ("unknown-machine-dead", False)],
)
def test_a_daemon_refuses_to_start_while_another_live_daemon_reports_as_its_host(tmp_path, store, case, refused) -> None:
    import subprocess
    import sys

    from supervisor.fleet import HostNameTaken, check_host_name, machine_id

    now = T0
    here = machine_id()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = datetime.fromtimestamp(psutil_created(sleeper.pid), timezone.utc)
        rows = {
            "another-machine-fresh": dict(at=now - timedelta(seconds=2), pid=1, machine="elsewhere"),
            "another-machine-stale": dict(at=now - timedelta(seconds=6), pid=1, machine="elsewhere"),
            "another-machine-stopped": dict(at=now - timedelta(seconds=2), pid=1, machine="elsewhere", stopped=True),
            "this-machine-alive": dict(at=now - timedelta(seconds=2), pid=sleeper.pid, machine=here,
                                       started_at=started + timedelta(seconds=0.5)),
            "this-machine-pid-reused": dict(at=now - timedelta(seconds=2), pid=sleeper.pid, machine=here,
                                            started_at=started - timedelta(seconds=30)),
            "this-machine-dead": dict(at=now - timedelta(seconds=2), pid=_dead_pid(), machine=here),
            "this-process": dict(at=now - timedelta(seconds=2), pid=os.getpid(), machine=here),
            "unknown-machine-dead": dict(at=now - timedelta(seconds=2), pid=_dead_pid(), machine=""),
        }
        _previous(store, **rows[case])  # type: ignore[arg-type]
        if refused:
            with pytest.raises(HostNameTaken, match=r"^host alpha: another proofwatch daemon already reports as "
                                                    r"this host \(pid \d+ on machine .*last report 2s ago\)"):
                check_host_name(make_engine(store), "alpha", 5.0, lambda _e: now)
        else:
            check_host_name(make_engine(store), "alpha", 5.0, lambda _e: now)
    finally:
        sleeper.kill()
        sleeper.wait()


def psutil_created(pid: int) -> float:
    from supervisor.adopt import create_time

    created = create_time(pid)
    assert created is not None
    return created


async def test_a_daemon_started_offline_alerts_at_its_first_report_if_another_holds_its_name(tmp_path, store) -> None:
    clock = FakeClock(T0)
    _previous(store, T0 - timedelta(seconds=1), pid=1, machine="elsewhere")  # live on another machine
    a = stand_in(tmp_path, "alpha", store, clock, store_clock=clock)
    await a.fleet.tick()
    assert "fleet:alpha:duplicate" in a.alerts.active
    assert "(pid 1 on machine elsewhere," in a.alerts.active["fleet:alpha:duplicate"].title
