"""A daemon that starts while its shared store (PostgreSQL) is down (issue 12: losing the
database never stops local supervision, at start too): it supervises from status.json, says
`store.ok = false` from the first status.json, re-adopts the runs a killed daemon left (never
closing old runs as lost), and everything it records meanwhile, the schema of a brand-new
database included, reaches PostgreSQL when the server returns."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import psutil
import pytest
from sqlalchemy import create_engine, text

from status.history import History
from status.migrate import HEAD
from status.models import JobState
from status.store import read_status
from supervisor import recorder as recorder_mod
from supervisor.config import load_config
from supervisor.daemon import Daemon
from supervisor.recorder import Recorder
from tests import _procs as P
from tests.fleet.pg import PostgresServer
from tests.fleet.test_outage import _doc, _header, _poll
from tests.supervisor.harness import job, reach, running
from tests.supervisor.test_adopt import WAITS_THEN_PROVES, alive
from tests.supervisor.test_cli import PROOFWATCH, wait_for

pytestmark = pytest.mark.anyio

OFFLINE = "started without the history store"


class Handed:
    """Every event and run row any daemon hands its recorder (from before restore on)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        real_event, real_run = Recorder.event, Recorder.run

        def event(rec: Recorder, row: Any) -> None:
            self.events.append(dict(row))
            real_event(rec, row)

        def run(rec: Recorder, row: Any) -> None:
            data = dict(row) if isinstance(row, dict) else row.model_dump()
            self.runs[data["run_id"]] = data
            real_run(rec, row)

        monkeypatch.setattr(Recorder, "event", event)
        monkeypatch.setattr(Recorder, "run", run)


async def _caught_up(d: Daemon) -> None:
    await _poll(lambda: (doc := _doc(d.config.status_file)) is not None and doc.store.ok
                and doc.store.queued == 0 and not d.history.upgrade_pending,
                "status.json: store ok=true, nothing queued", timeout=20)
    assert await d.recorder.flush()


async def test_a_daemon_starts_with_postgresql_down_and_a_new_database_gets_everything_later(
        tmp_path: Path, pg_server: PostgresServer, pg_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(recorder_mod, "RETRY_MAX", 1.0)  # catch up within 1 s of the server's return
    url = pg_url.replace("proofwatch@", "proofwatch:s3cret@")  # trust auth: the password is ignored
    handed = Handed(monkeypatch)
    tables = [job(tmp_path, "svc", P.BEATS_FOREVER, kind="service"),
              job(tmp_path, "task", P.WRITES_PROOF, kind="task")
              + '[[jobs.task.proofs]]\npath = "out.json"\nkind = "json"\n']
    caplog.set_level(logging.INFO)
    await anyio.to_thread.run_sync(pg_server.stop)  # the database exists, empty; its server is down
    try:
        async with running(tmp_path, *tables, header=_header(url)) as d:
            assert d.offline is not None and "connection failed" in d.offline  # refused, or cut while the server stops
            doc = read_status(d.config.status_file)  # the first status.json already says so
            assert not doc.store.ok and "connection failed" in (doc.store.error or "")
            assert doc.store.failing_since is not None and doc.store.kind == "postgresql"
            await reach(d, "svc", JobState.RUNNING)  # supervision goes on
            await reach(d, "task", JobState.SUCCEEDED)
            assert [p.ok for p in d.jobs["task"].last_run.proofs] == [True]  # type: ignore[union-attr]
            await d.status.write_now()
            doc = read_status(d.config.status_file)
            assert not doc.store.ok and doc.store.queued > 0 and d.history.upgrade_pending

            await anyio.to_thread.run_sync(pg_server.start)
            await _caught_up(d)
            task_run = d.jobs["task"].last_run.run_id  # type: ignore[union-attr]
            svc_run = d.jobs["svc"].run.run_id  # type: ignore[union-attr]
    finally:
        await anyio.to_thread.run_sync(pg_server.start) if not _up(pg_server) else None

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    finally:
        engine.dispose()
    history = History(pg_url, create=False, host="box1")
    try:
        stored = {(e.job, e.kind, e.reason, e.to_state) for e in history.events(limit=10_000)}
        want = {(e["job"], e["kind"], e["reason"], e["to_state"]) for e in handed.events}
        assert want - stored == set()  # every event of the offline period, and of the shutdown
        assert any(OFFLINE in e[2] for e in want)
        for run_id, row in handed.runs.items():
            got = history.run(run_id)
            assert got is not None and got.state == row["state"], (run_id, row["state"])
        assert history.run(task_run).state == "SUCCEEDED"  # type: ignore[union-attr]
        assert history.run(svc_run) is not None
    finally:
        history.close()
    started = [r for r in caplog.records if "cannot be reached at start" in r.getMessage()]
    assert len(started) == 1 and started[0].levelno == logging.WARNING and not started[0].exc_info
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
    assert "s3cret" not in (tmp_path / "var" / "status.json").read_text()


def _up(server: PostgresServer) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("status_json", ["kept", "corrupt"])
async def test_a_killed_daemon_restarted_with_postgresql_down_re_adopts_and_closes_nothing_as_lost(
        tmp_path: Path, pg_server: PostgresServer, pg_url: str, monkeypatch: pytest.MonkeyPatch,
        status_json: str) -> None:
    monkeypatch.setattr(recorder_mod, "RETRY_MAX", 1.0)
    tables = [job(tmp_path, "svc", P.BEATS_FOREVER, kind="service"),
              job(tmp_path, "long", WAITS_THEN_PROVES, kind="task")
              + '[[jobs.long.proofs]]\npath = "out.txt"\nkind = "text"\n',
              job(tmp_path, "quick", P.EXIT_OK, kind="task")]
    cfg = tmp_path / "config.toml"
    cfg.write_text(_header(pg_url) + "\n" + "\n".join(tables))
    config = load_config(cfg)
    History(pg_url, host="box1").close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    first = subprocess.Popen([*PROOFWATCH, "run", "--config", str(cfg)], cwd=tmp_path, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def settled() -> dict[str, Any] | None:
        doc = _doc(config.status_file)
        if doc is None or not doc.store.ok or doc.store.queued:
            return None
        jobs = doc.jobs
        if jobs["svc"].state != JobState.RUNNING or jobs["long"].state != JobState.RUNNING \
                or jobs["quick"].state != JobState.SUCCEEDED:
            return None
        return {"svc": jobs["svc"].pid, "long": jobs["long"].pid, "quick": jobs["quick"].run_id}

    try:
        before = await anyio.to_thread.run_sync(lambda: wait_for("svc, long RUNNING; quick SUCCEEDED",
                                                                 settled, timeout=30))
    finally:
        first.send_signal(signal.SIGKILL)  # kill -9: no last write, the runs left to themselves
        first.wait()
    # an old run the history has as finished and status.json does not list (a run dir with the
    # pid file of a process long gone): online the history knows it; offline it must not be
    # closed as lost
    olds = [config.runs_dir / "quick" / "20200101T000000000Z-0a0a0a",
            config.runs_dir / "svc" / "20200101T000000000Z-0b0b0b"]
    for old in olds:
        old.mkdir()
        (old / "pid").write_text("999999 1577836800.000\n")
    if status_json == "corrupt":
        config.status_file.write_text('{"schema": 1, "updated_at": ')  # torn by a broken disk, say
    assert alive(before["svc"]) and alive(before["long"])
    await anyio.to_thread.run_sync(pg_server.stop)
    try:
        async with running(tmp_path, *tables, header=_header(pg_url)) as d:
            assert d.offline is not None
            for name in ("svc", "long"):
                run = d.jobs[name].run
                assert run is not None and run.adopted and run.pid == before[name], name
            assert not [k for k in d.alerts.active if k.endswith(":lost")], d.alerts.active
            if status_json == "kept":
                assert before["quick"] in [r.run_id for r in d.recent if r.job == "quick"]
            scripts = {str(tmp_path / "svc.py"), str(tmp_path / "long.py")}
            workers = {p.pid for p in psutil.process_iter(["cmdline", "status"])
                       if scripts & set(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE}
            assert workers == {before["svc"], before["long"]}, workers  # not one doubled
            doc = read_status(d.config.status_file)
            assert not doc.store.ok
            (d.jobs["long"].run.run_dir / "go").touch()  # type: ignore[union-attr]
            await reach(d, "long", JobState.SUCCEEDED)  # judged by its proof, offline

            await anyio.to_thread.run_sync(pg_server.start)
            await _caught_up(d)
            long_run = d.jobs["long"].last_run.run_id  # type: ignore[union-attr]
            svc_run = d.jobs["svc"].run.run_id  # type: ignore[union-attr]
    finally:
        await anyio.to_thread.run_sync(pg_server.start) if not _up(pg_server) else None

    history = History(pg_url, create=False, host="box1")
    try:
        assert history.run(long_run).state == "SUCCEEDED"  # type: ignore[union-attr]
        assert "svc.py" in history.run(svc_run).command  # type: ignore[union-attr]  (not blanked)
        for old in olds:
            assert history.run(old.name) is None  # left alone: not recorded as lost
        assert not [a for a in history.alerts(limit=1000) if a.key.endswith(":lost")]
        reasons = [e.reason for e in history.events(limit=10_000)]
        said = "restored from status.json" if status_json == "kept" else "status.json cannot be read"
        assert any(OFFLINE in r and said in r for r in reasons), reasons
        assert sum("re-adopted pid" in r for r in reasons) == 2
        assert history.run(before["quick"]).state == "SUCCEEDED"  # type: ignore[union-attr]
    finally:
        history.close()


def test_proofwatch_run_starts_with_an_unreachable_store_and_says_so_in_one_line(tmp_path: Path) -> None:
    from tests.fleet.pg import free_port

    cfg = tmp_path / "config.toml"
    cfg.write_text(_header(f"postgresql+psycopg://proofwatch:${{PW}}@127.0.0.1:{free_port()}/db")
                   + job(tmp_path, "svc", P.BEATS_FOREVER, kind="service"))
    status_file = load_config(cfg).status_file  # ${PW} is read when the store is opened
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")} | {"PW": "s3cret"}
    proc = subprocess.Popen([*PROOFWATCH, "run", "--config", str(cfg)], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        doc = wait_for("svc RUNNING, store not ok", lambda: (d := _doc(status_file)) is not None
                       and d.jobs["svc"].state == JobState.RUNNING and not d.store.ok and d, timeout=30)
        assert "Connection refused" in (doc.store.error or "")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if "cannot be reached at start" in line]
    assert len(lines) == 1 and "starting without it" in lines[0] and "Connection refused" in lines[0], err
    assert "s3cret" not in err and "Traceback" not in err, err
