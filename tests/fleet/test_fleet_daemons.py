"""Several real daemons (`proofwatch run` subprocesses) sharing one real PostgreSQL: each sees
the fleet, a cross-host `after` fires, a killed daemon is alerted once fleet-wide (and resolved
when it is back), and an owner that dies mid-send is replaced (at-least-once)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from status._time import as_utc
from tests import _procs as P
from tests._procs import script
from tests.supervisor.test_cli import PROOFWATCH, wait_for

pytestmark = pytest.mark.slow

FLEET = """
[fleet]
report_every = "500ms"
host_stale_after = "2s"
"""


class Hook:
    """A webhook sink on 127.0.0.1 recording every notification; `hang` makes it accept a
    POST and never answer (until the test ends)."""

    def __init__(self, hang: bool = False) -> None:
        self.received: list[dict[str, Any]] = []
        self.release = threading.Event()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.received.append(json.loads(body))
                if hang:
                    hook.release.wait(60)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def items(self, key: str, event: str | None = None) -> list[dict[str, Any]]:
        """Every notified item of alert `key` (of `event`, if given)."""
        return [i for p in list(self.received) for i in p.get("alerts", [])
                if i["key"] == key and (event is None or i["event"] == event)]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Node:
    """One host: its own directory, config and `proofwatch run` process."""

    def __init__(self, root: Path, host: str, url: str, hook: Hook | None = None, jobs: str = "") -> None:
        self.host = host
        self.dir = root / host
        self.dir.mkdir()
        sinks = (f'[[alerts.sinks]]\nkind = "webhook"\nurl = "{hook.url}"\ntimeout = "30s"\n'
                 if hook else "")
        self.cfg = self.dir / "config.toml"
        self.cfg.write_text(
            f'[supervisor]\nstate_dir = "var"\ndata_dir = "data"\nhost = "{host}"\n'
            'rescan_every = "200ms"\nstatus_min_interval = "50ms"\nallow_root = true\n'
            f'[store]\nurl = "{url}"\n{FLEET}\n[alerts]\ngroup_wait = "0s"\n{sinks}\n{jobs}')
        self.status_file = self.dir / "var" / "status.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
        with open(self.dir / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen([*PROOFWATCH, "run", "--config", str(self.cfg)], cwd=self.dir,
                                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log)
        return self

    def status(self) -> dict[str, Any] | None:
        """This daemon's status.json (None before its first write, or a previous daemon's)."""
        try:
            doc: dict[str, Any] = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        if self.proc is None or doc["supervisor"]["pid"] != self.proc.pid:
            return None
        return doc

    def fleet(self) -> dict[str, dict[str, Any]]:
        """Its fleet section, by host ({} before it has one)."""
        doc = self.status()
        if doc is None or not doc.get("fleet") or doc["fleet"].get("error"):
            return {}
        return {h["host"]: h for h in doc["fleet"]["hosts"]}

    def read_at(self) -> datetime | None:
        doc = self.status()
        at = doc["fleet"]["read_at"] if doc and doc.get("fleet") else None
        return datetime.fromisoformat(at) if at else None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str) -> Iterator[tuple[Any, list[Node]]]:
    """make(host, hook=None, jobs="") -> a Node on the test's database; all killed at the end."""
    nodes: list[Node] = []

    def make(host: str, hook: Hook | None = None, jobs: str = "") -> Node:
        node = Node(tmp_path, host, pg_url, hook, jobs)
        nodes.append(node)
        return node

    try:
        yield make, nodes
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()


@pytest.fixture
def db(pg_url: str) -> Iterator[Any]:
    engine = create_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _rows(engine: Any, sql: str, **params: object) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def _up(nodes: list[Node], hosts: set[str]) -> bool:
    return all({h for h, v in n.fleet().items() if v["state"] == "up"} == hosts for n in nodes)


def test_two_daemons_sharing_a_store_each_see_both_up_and_a_clean_stop_is_not_stale(fleet, db):
    make, _ = fleet
    a, b = make("alpha").start(), make("beta").start()
    wait_for("both daemons to show both hosts up", lambda: _up([a, b], {"alpha", "beta"}), timeout=20)
    hosts = _rows(db, "select host, stopped_at, pid from hosts order by host")
    assert [(h, s) for h, s, _ in hosts] == [("alpha", None), ("beta", None)]
    assert {h: p for h, _, p in hosts} == {"alpha": a.proc.pid, "beta": b.proc.pid}

    assert a.stop() == 143
    wait_for("beta to see alpha stopped", lambda: b.fleet().get("alpha", {}).get("state") == "stopped")
    stopped = as_utc(_rows(db, "select stopped_at from hosts where host = 'alpha'")[0][0])
    wait_for("beta to read the fleet well past alpha's stale time",
             lambda: (b.read_at() or stopped) > stopped + timedelta(seconds=2.5))
    assert b.fleet()["alpha"]["state"] == "stopped"
    assert _rows(db, "select key from alerts where key like 'fleet:%'") == []


BUILD = """
from pathlib import Path
import os
from workers.sdk import Run
run = Run.from_env()
run.beat({"step": 1}, force=True)
Path(os.environ["PROOFWATCH_RUN_DIR"], "image.txt").write_text("built\\n")
run.beat({"step": 2}, force=True)
"""


def test_a_cross_host_after_starts_the_dependent_once_the_remote_run_succeeded(tmp_path, fleet, db):
    make, _ = fleet
    build = script(tmp_path, "build", BUILD)
    deploy = script(tmp_path, "deploy", P.EXIT_OK)
    b = make("beta", jobs=f'[jobs.deploy]\nkind = "task"\ncommand = ["{sys.executable}", "{deploy}"]\n'
                          'after = ["build@emubox"]\n').start()
    wait_for("deploy to wait for build@emubox", lambda: (
        (b.status() or {}).get("jobs", {}).get("deploy", {}).get("message") == "waiting for build@emubox to succeed"))
    a = make("emubox", jobs=f'[jobs.build]\nkind = "task"\ncommand = ["{sys.executable}", "{build}"]\n'
                            '[[jobs.build.proofs]]\npath = "image.txt"\nkind = "text"\n').start()
    wait_for("deploy to succeed on beta", lambda: (
        (b.status() or {}).get("jobs", {}).get("deploy", {}).get("state") == "SUCCEEDED"), timeout=30)

    built = _rows(db, "select state, ended_at, proofs from runs where host = 'emubox' and job = 'build'")
    assert len(built) == 1 and built[0][0] == "SUCCEEDED" and [p["ok"] for p in built[0][2]] == [True]
    deployed = _rows(db, "select started_at from runs where host = 'beta' and job = 'deploy'")
    assert len(deployed) == 1 and deployed[0][0] > built[0][1]
    reasons = [r for (r,) in _rows(db, "select reason from events where host = 'beta' and job = 'deploy' "
                                       "and to_state = 'STARTING'")]
    assert len(reasons) == 1 and reasons[0].startswith("after build@emubox succeeded")
    assert a.stop() == 143 and b.stop() == 143


def _claim(db: Any, host: str) -> Any:
    rows = _rows(db, "select owner, done_at from claims where key like :k", k=f"stale:{host}:%")
    return rows[-1] if rows else None


def test_a_killed_daemon_is_alerted_once_fleet_wide_and_resolved_when_it_is_back(fleet, db):
    make, _ = fleet
    hook = Hook()
    try:
        a, b, c = (make(h, hook).start() for h in ("alpha", "beta", "gamma"))
        wait_for("all three up everywhere", lambda: _up([a, b, c], {"alpha", "beta", "gamma"}), timeout=20)
        a.kill()
        key = "fleet:alpha:stale"
        wait_for("the stale-host notification", lambda: hook.items(key, "new"), timeout=20)
        owner, done_at = wait_for("the claim to be done", lambda: (_claim(db, "alpha") or (None, None))[1]
                                  and _claim(db, "alpha"))
        done_at = as_utc(done_at)
        assert owner in ("beta", "gamma")
        # both survivors have read the claims after it was done: neither can raise it any more
        wait_for("both survivors to read the fleet after the claim was done",
                 lambda: all((n.read_at() or done_at) > done_at + timedelta(seconds=0.6) for n in (b, c)))
        assert {n.host: n.fleet()["alpha"]["alerted_by"] for n in (b, c)} == {"beta": owner, "gamma": owner}
        assert {n.fleet()["alpha"]["state"] for n in (b, c)} == {"stale"}
        raised = _rows(db, "select host, title from alerts where key = :k", k=key)
        assert len(raised) == 1 and raised[0][0] == owner
        assert raised[0][1].startswith("host alpha: no report for ") and "daemon silent since" in raised[0][1]
        assert len(hook.items(key, "new")) == 1 and len(hook.items(key)) == 1

        a.start()
        wait_for("the alert to resolve", lambda: _rows(
            db, "select resolution from alerts where key = :k and resolved_at is not null", k=key))
        assert _rows(db, "select resolution from alerts where key = :k", k=key) == [("host alpha reported again",)]
        wait_for("the resolved notification", lambda: hook.items(key, "resolved"))
        assert len(hook.items(key, "new")) == 1
        for n in (a, b, c):
            assert n.stop() == 143
    finally:
        hook.close()


def test_an_owner_killed_mid_send_is_replaced_and_the_alert_still_goes_out(fleet, db):
    make, _ = fleet
    hang, good = Hook(hang=True), Hook()
    key = "fleet:alpha:stale"
    try:
        a, b = make("alpha").start(), make("beta", hang).start()
        wait_for("alpha and beta up", lambda: _up([a, b], {"alpha", "beta"}), timeout=20)
        a.kill()
        wait_for("beta to try to send (its webhook never answers)", lambda: hang.items(key, "new"), timeout=20)
        assert _claim(db, "alpha") == ("beta", None)
        c = make("gamma", good).start()
        wait_for("gamma to see that beta holds the claim", lambda: (
            c.fleet().get("alpha", {}).get("alerted_by") == "beta"), timeout=20)
        assert good.items(key) == []  # gamma does not raise what beta is sending
        b.kill()  # mid-send: its notification was never answered, never marked delivered
        wait_for("gamma to take over and deliver", lambda: good.items(key, "new"), timeout=20)
        wait_for("gamma's claim to be done", lambda: (_claim(db, "alpha") or (None, None))[1])
        assert _claim(db, "alpha")[0] == "gamma"
        raised = sorted(h for (h,) in _rows(db, "select host from alerts where key = :k", k=key))
        assert raised == ["beta", "gamma"]  # at least once: raised again by the daemon that took over
        assert len(good.items(key, "new")) == 1
        assert c.stop() == 143
    finally:
        hang.close()
        good.close()


def _slow_stale(node: Node) -> Node:
    """host_stale_after 30 s: a report stays fresh across a restart, however slow."""
    node.cfg.write_text(node.cfg.read_text().replace('host_stale_after = "2s"', 'host_stale_after = "30s"'))
    return node


def test_a_daemon_killed_and_restarted_at_once_on_its_machine_takes_its_host_name_back(fleet, db, pg_url):
    from status.history import History

    make, _ = fleet
    History(pg_url).close()
    a = _slow_stale(make("alpha")).start()
    wait_for("alpha to report", lambda: _rows(db, "select pid from hosts where host = 'alpha'") == [(a.proc.pid,)],
             timeout=20)
    first = a.proc.pid
    a.kill()  # kill -9: its report stays fresh, not stopped, with its (now dead) pid
    a.start()
    wait_for("the restarted daemon to report", lambda: (
        _rows(db, "select pid from hosts where host = 'alpha'") == [(a.proc.pid,)]), timeout=20)
    assert a.proc.pid != first and a.proc.poll() is None
    back = datetime.now().astimezone()
    wait_for("a few more reports", lambda: (a.read_at() or back) > back + timedelta(seconds=1.2), timeout=10)
    assert [x["key"] for x in (a.status() or {}).get("alerts", []) if x["key"].startswith("fleet:")] == []
    assert a.stop() == 143


def test_a_daemon_refuses_to_start_while_another_machine_reports_as_its_host(tmp_path, fleet, db, pg_url):
    from status.fleet import HostRow, report_host, store_now
    from status.history import History

    make, _ = fleet
    History(pg_url).close()
    now = store_now(db)
    report_host(db, HostRow(host="alpha", started_at=now - timedelta(hours=1), last_seen=now, pid=4242,
                            instance="elsewhere-1", machine="0123456789abcdef"))
    a = _slow_stale(make("alpha")).start()
    assert a.proc.wait(timeout=30) == 1
    said = (a.dir / "daemon.log").read_text()
    assert said.strip().startswith("error: host alpha: another proofwatch daemon already reports as this host "
                                   "(pid 4242 on machine 0123456789ab, running since"), said
    assert "Traceback" not in said and len(said.strip().splitlines()) <= 2
    assert _rows(db, "select pid, instance from hosts where host = 'alpha'") == [(4242, "elsewhere-1")]
    assert _rows(db, "select count(*) from runs") == [(0,)]
