"""Bugs found in review of the fleet change (issue 12), one test each: the fixed ones run as plain
tests; one still open is marked xfail(strict), so it flips when fixed.

Real PostgreSQL (tests/fleet/pg.py), real daemons (in process or `proofwatch run`), the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import create_engine, inspect

from status.fleet import HostRow, report_host
from status.history import Batch, History
from tests import _procs as P
from tests._procs import script
from tests.fleet.pg import free_port
from tests.fleet.test_fleet_watch import stand_in
from tests.fleet.test_store import _migrations_only
from status.models import JobState
from tests.supervisor.harness import FakeClock, reach, running

CLI = [sys.executable, "-m", "supervisor.cli"]
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


def _cli(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[supervisor]\nstate_dir = "var"\nhost = "boxa"\nallow_root = true\n' + body)
    return subprocess.run([*CLI, *args, "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


# ---- (6) config validation ----------------------------------------------------------------------


def test_a_store_url_with_a_bad_port_is_a_one_line_config_error(tmp_path: Path) -> None:
    body = '[store]\nurl = "postgresql+psycopg://pw:hunter2@db.example:54x2/fleet"\n'
    for cmd in ("check", "run"):
        proc = _cli(tmp_path, body, cmd)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, f"{cmd}: {out[-400:]}"
        assert proc.returncode == 2 and "store.url" in out and "hunter2" not in out


# ---- (4) migrations -----------------------------------------------------------------------------


def _indexes(url: str) -> set[tuple[str, str, tuple[str, ...]]]:
    engine = create_engine(url)
    try:
        have = inspect(engine)
        return {(t, i["name"], tuple(i["column_names"])) for t in have.get_table_names()
                for i in have.get_indexes(t)}
    finally:
        engine.dispose()


def test_a_new_store_has_the_indexes_every_migrated_store_has(pg_server: Any) -> None:
    fast, slow = pg_server.create_db(), pg_server.create_db()
    History(fast).close()  # a new database: create_all + stamp (the path every new fleet takes)
    _migrations_only(slow)  # the path an existing history takes
    assert _indexes(fast) == _indexes(slow)


# ---- (5)/(6) the CLI while the shared store is unreachable --------------------------------------


def test_history_and_alerts_fail_in_one_line_when_the_store_is_unreachable(tmp_path: Path) -> None:
    body = f'[store]\nurl = "postgresql+psycopg://proofwatch@127.0.0.1:{free_port()}/fleet"\n'
    for cmd in ("history", "alerts"):
        proc = _cli(tmp_path, body, cmd)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "Traceback" not in out, f"{cmd}: {out[-300:]}"
        assert out.startswith("error: ") and len(out.strip().splitlines()) <= 2


def test_status_rebuild_names_the_shared_store_it_could_not_read(tmp_path: Path) -> None:
    port = free_port()
    proc = _cli(tmp_path, f'[store]\nurl = "postgresql+psycopg://proofwatch@127.0.0.1:{port}/fleet"\n',
                "status", "--rebuild")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Connection refused" in out
    assert "history.db" not in out and f"127.0.0.1:{port}/fleet" in out, out


# ---- (2) the claim protocol and clocks ----------------------------------------------------------


async def test_a_live_host_whose_clock_lags_is_not_called_stale(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    History(url).close()
    behind, ahead = FakeClock(T0), FakeClock(T0 + timedelta(seconds=8))  # 8 s apart; stale after 5 s
    a = stand_in(tmp_path, "alpha", url, behind)
    b = stand_in(tmp_path, "beta", url, ahead)
    for _ in range(12):  # both report every second, all along
        for clock in (behind, ahead):
            clock.advance(1)
        await a.fleet.tick()
        await b.fleet.tick()
    states = {h.host: h.state for h in b.fleet.status().hosts}
    assert states["alpha"] == "up"
    assert "fleet:alpha:stale" not in b.alerts.active


async def test_a_cross_host_after_runs_the_dependent_once_per_remote_success(tmp_path: Path, pg_url: str) -> None:
    now = datetime.now(timezone.utc)
    emubox = History(pg_url, host="emubox")
    emubox.apply(Batch(runs=[{  # emubox's clock runs 2 minutes ahead of this one
        "run_id": "20261125T100000000Z-aaaaaa", "job": "build", "state": "SUCCEEDED",
        "started_at": now + timedelta(seconds=100), "ended_at": now + timedelta(seconds=120),
        "proofs": [{"path": "image.txt", "ok": True}]}]))
    emubox.close()
    deploy = script(tmp_path, "deploy", P.EXIT_OK)
    table = (f'[store]\nurl = "{pg_url}"\n[fleet]\nreport_every = "200ms"\nhost_stale_after = "1s"\n'
             f'[jobs.deploy]\nkind = "task"\ncommand = ["{sys.executable}", "{deploy}"]\n'
             'after = ["build@emubox"]\n')
    async with running(tmp_path, table, supervisor='host = "beta"\n') as d:
        await reach(d, "deploy", JobState.SUCCEEDED)
        await anyio.sleep(1.5)  # a window of 7 reports: a runaway would start it again in each
    beta = History(pg_url, create=False, host="beta")
    try:
        started = [e for e in beta.events(job="deploy") if e.to_state == "STARTING"]
    finally:
        beta.close()
    assert len(started) == 1, [e.reason for e in started]


# ---- (1) host scoping ---------------------------------------------------------------------------


async def test_the_api_does_not_show_another_hosts_run_without_its_events(tmp_path: Path, pg_url: str) -> None:
    other = History(pg_url, host="emubox")
    run_id = "20261125T100000000Z-bbbbbb"
    other.apply(Batch(
        runs=[{"run_id": run_id, "job": "build", "state": "FAILED", "started_at": T0, "ended_at": T0,
               "error": "unproven: image.txt missing", "run_dir": "/srv/emubox/var/runs/build/" + run_id}],
        events=[{"ts": T0, "job": "build", "run_id": run_id, "kind": "exit", "reason": "exit 0 but unproven"}]))
    other.close()
    async with running(tmp_path, f'[store]\nurl = "{pg_url}"\n', supervisor='host = "beta"\n') as d:
        transport = httpx.AsyncHTTPTransport(uds=str(d.config.socket_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://proofwatch", timeout=10) as c:
            reply = await c.get(f"/api/runs/{run_id}")
    body = reply.json()
    # either this daemon does not know it (404), or it shows it whole, with its events
    assert reply.status_code == 404 or [e["reason"] for e in body["events"]] == ["exit 0 but unproven"], body


# ---- (2) two daemons with one host name ---------------------------------------------------------


def _doc(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_two_daemons_with_the_same_host_name_are_detected(tmp_path: Path, pg_url: str) -> None:
    from tests.fleet.test_fleet_daemons import Node

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a = Node(tmp_path / "one", "alpha", pg_url)
    b = Node(tmp_path / "two", "alpha", pg_url)  # a copied config: the same [supervisor] host
    try:
        a.start()
        deadline = time.monotonic() + 20
        while not a.fleet() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert a.fleet(), "alpha never reported"
        b.start()
        deadline = time.monotonic() + 6  # a dozen reports each (report_every 500ms)
        refused = False
        while time.monotonic() < deadline:
            if b.proc is not None and b.proc.poll() not in (None, 0):
                refused = True
                break
            time.sleep(0.1)
        said = []
        for node in (a, b):
            doc = _doc(node.status_file) or {}
            said += [f"{x['key']} {x['title']}" for x in doc.get("alerts", [])]
            said += [(doc.get("fleet") or {}).get("error") or ""]
            log = node.dir / "var" / "proofwatch.log"
            said += [line for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])
                     if "alpha" in line and ("pid" in line or "another" in line or "same" in line)]
        assert refused or any(s for s in said if "alpha" in s), said
    finally:
        for node in (a, b):
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()


# ---- (3) cross-host after on a job that does not exist -------------------------------------------


async def test_a_remote_after_on_a_job_the_host_does_not_have_says_so(tmp_path: Path, pg_url: str) -> None:
    History(pg_url).close()
    engine = create_engine(pg_url)
    now = datetime.now(timezone.utc)
    report_host(engine, HostRow(host="emubox", started_at=now, last_seen=now + timedelta(hours=1),
                                jobs=[{"name": "build", "kind": "task", "state": "SUCCEEDED"}]))
    engine.dispose()
    table = (f'[store]\nurl = "{pg_url}"\n[fleet]\nreport_every = "200ms"\nhost_stale_after = "1s"\n'
             '[jobs.deploy]\nkind = "task"\ncommand = "true"\nafter = ["biuld@emubox"]\n')
    async with running(tmp_path, table, supervisor='host = "beta"\n') as d:
        await anyio.sleep(1.5)  # several reports: emubox's jobs have been read
        waiting = d.jobs["deploy"].waiting
        said = waiting + " " + " ".join(f"{a.key} {a.title}" for a in d.alerts.active.values())
    assert "biuld" in said and ("no job" in said or "unknown" in said or "does not have" in said), said
