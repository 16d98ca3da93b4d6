"""The fleet view on a real PostgreSQL store: the read model (host states, ages by the reader's
clock, who raised a stale alert), `proofwatch fleet` (table and --json, its errors) and
GET /api/fleet on a running daemon."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy.engine import Engine

from policies.fleet import stale_claim_key
from status.models import JobState
from status.fleet import HostRow, report_host, try_claim
from status.history import History
from supervisor.daemon import Daemon
from supervisor.fleetview import FleetView, read_view
from tests import _procs as P
from tests.fleet.pg import free_port
from tests.supervisor.harness import job as harness_job
from tests.supervisor.harness import reach, running
from tests.supervisor.test_api import GOOD, TOKEN, api_table
from tests.supervisor.test_cli import no_traceback, pw

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
RUN_A = "20261125T110000000Z-aaaaaa"
RUN_B = "20261125T100000000Z-bbbbbb"
S = JobState


@pytest.fixture
def store(pg_url: str) -> Iterator[Engine]:
    """A migrated shared store's engine."""
    history = History(pg_url)
    try:
        yield history.engine
    finally:
        history.close()


def job(name: str, state: str, *, beat: datetime | None, progress: datetime | None = None,
        run_id: str | None = None, pid: int | None = None, **more: Any) -> dict[str, Any]:
    """A job as a daemon reports it in its hosts row (status.fleet's JSON contract)."""
    iso = (lambda t: None if t is None else t.isoformat())
    return {"name": name, "kind": more.pop("kind", "service"), "state": state, "run_id": run_id, "pid": pid,
            "started_at": iso(beat - timedelta(hours=1)) if beat else None, "last_heartbeat_at": iso(beat),
            "last_progress_at": iso(progress), "phase": more.pop("phase", ""),
            "message": more.pop("message", ""), "error": more.pop("error", None),
            "waiting": more.pop("waiting", None), **more}


def host(name: str, last_seen: datetime, jobs: list[dict[str, Any]], *, stopped: bool = False,
         score: int = 92, label: str = "HEALTHY", alerts: int = 0) -> HostRow:
    return HostRow(host=name, started_at=last_seen - timedelta(hours=2), last_seen=last_seen,
                   stopped_at=last_seen if stopped else None, pid=4000 + len(name), version="0.1.0",
                   report_every=10.0, active_alerts=alerts, jobs=jobs,
                   health={"score": score, "label": label, "reasons": [] if score >= 80 else ["disk / at 93%"],
                           "sample": {"cpu_pct": 12.5}, "sampled_at": last_seen.isoformat(), "firing": []})


def two_hosts(engine: Engine, now: datetime) -> None:
    """alpha up (a beating ingestor), beta stale for 5 minutes (its emulator as it last reported),
    the stale alert for beta raised by alpha."""
    report_host(engine, host("alpha", now - timedelta(seconds=3), [
        job("ingestor", "RUNNING", beat=now - timedelta(seconds=2), progress=now - timedelta(seconds=5),
            run_id=RUN_A, pid=4242, phase="stream", message="tick 9"),
        job("retrain", "SUCCEEDED", beat=None, kind="task"),
    ], alerts=2))
    beta_seen = now - timedelta(minutes=5)
    report_host(engine, host("beta", beta_seen, [
        job("emulator", "RUNNING", beat=beta_seen - timedelta(seconds=4), run_id=RUN_B, pid=777,
            kind="task", message="captured 40 screens"),
    ], score=45, label="DEGRADED"))
    assert try_claim(engine, stale_claim_key("beta", beta_seen), "alpha", now - timedelta(minutes=4), 30.0)


# --- the read model ----------------------------------------------------------------------------

def test_the_view_gives_each_host_its_state_and_ages_by_the_readers_clock(store: Engine) -> None:
    two_hosts(store, T0)
    report_host(store, host("gamma", T0 - timedelta(minutes=10), [job("arb", "STOPPED", beat=None)],
                            stopped=True))
    report_host(store, host("delta", T0 + timedelta(seconds=4), []))  # its clock runs 4 s ahead

    view = read_view(store, T0, 60.0, "alpha")

    assert view.read_at == T0 and view.reader == "alpha" and view.host_stale_after == 60.0
    hosts = {h.host: h for h in view.hosts}
    assert [h.host for h in view.hosts] == ["alpha", "beta", "delta", "gamma"]
    assert {n: h.state.value for n, h in hosts.items()} == {
        "alpha": "up", "beta": "stale", "gamma": "stopped", "delta": "up"}

    alpha = hosts["alpha"]
    assert alpha.seen_ago == 3.0 and alpha.active_alerts == 2 and alpha.alerted_by is None
    assert (alpha.health.label, alpha.health.score, alpha.pid, alpha.version) == ("HEALTHY", 92, 4005, "0.1.0")
    ingestor, retrain = alpha.jobs
    assert (ingestor.name, ingestor.state, ingestor.run_id, ingestor.pid) == ("ingestor", "RUNNING", RUN_A, 4242)
    assert (ingestor.heartbeat_age, ingestor.progress_age) == (2.0, 5.0)
    assert (ingestor.phase, ingestor.message, ingestor.live) == ("stream", "tick 9", True)
    assert retrain.heartbeat_age is None and retrain.kind == "task"

    beta = hosts["beta"]
    assert beta.seen_ago == 300.0 and beta.alerted_by == "alpha"
    assert (beta.health.label, beta.health.score, beta.health.reasons) == ("DEGRADED", 45, ["disk / at 93%"])
    (emulator,) = beta.jobs
    assert emulator.live is False  # shown as beta last reported it, not as live
    assert emulator.state == "RUNNING" and emulator.heartbeat_age == 304.0

    assert hosts["gamma"].jobs[0].live is False and hosts["gamma"].alerted_by is None
    assert hosts["delta"].seen_ago == 0.0  # a clock ahead of the reader's: never a negative age


def test_alerted_by_names_the_claim_of_this_episode_only(store: Engine) -> None:
    seen = T0 - timedelta(minutes=2)
    earlier = T0 - timedelta(days=1)
    assert try_claim(store, stale_claim_key("beta", earlier), "gamma", earlier + timedelta(minutes=1), 30.0)
    report_host(store, host("beta", seen, []))

    assert read_view(store, T0, 60.0, "alpha").hosts[0].alerted_by is None  # stale, nobody alerted yet

    assert try_claim(store, stale_claim_key("beta", seen), "alpha", T0, 30.0)
    assert read_view(store, T0, 60.0, "alpha").hosts[0].alerted_by == "alpha"
    report_host(store, host("beta", T0, []))  # it reports again: up, no one alerting
    again = read_view(store, T0 + timedelta(seconds=1), 60.0, "alpha").hosts[0]
    assert (again.state.value, again.alerted_by) == ("up", None)


def test_a_report_from_another_version_with_odd_job_fields_does_not_break_the_view(store: Engine) -> None:
    report_host(store, host("alpha", T0, [
        {"name": "odd", "state": "RUNNING", "pid": "not-a-pid", "last_heartbeat_at": "yesterday",
         "new_field": [1, 2]},
    ]))

    (odd,) = read_view(store, T0, 60.0, "alpha").hosts[0].jobs

    assert (odd.name, odd.pid, odd.last_heartbeat_at, odd.heartbeat_age) == ("odd", None, None, None)


# --- proofwatch fleet --------------------------------------------------------------------------

def config(tmp_path: Path, url: str | None, host: str = "alpha") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[supervisor]\nstate_dir = "var"\nhost = "{host}"\n'
                    + (f'[store]\nurl = "{url}"\n' if url else ""))
    return path


def test_fleet_shows_every_host_with_its_jobs_and_the_stale_one_as_such(store: Engine, pg_url: str,
                                                                        tmp_path: Path) -> None:
    two_hosts(store, datetime.now(timezone.utc))

    result = pw("fleet", "--config", str(config(tmp_path, pg_url)), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the CLI reads a moment after the rows were written: ages may have grown by a second or two
    alpha = next(line for line in lines if line.startswith("alpha"))
    assert re.match(r"alpha  up  seen [3-9]s ago  health healthy \(92\)  2 alerts  v0\.1\.0 pid 4005$", alpha)
    beta = next(line for line in lines if line.startswith("beta"))
    assert re.match(r"beta  STALE — no report for 5m0\ds \(alerted by alpha\)  health degraded \(45\)  0 alerts", beta)
    header = next(line for line in lines if "JOB" in line)
    assert header.split() == ["JOB", "STATE", "RUN", "PID", "HEARTBEAT", "MESSAGE"]
    ingestor = next(line for line in lines if line.strip().startswith("ingestor"))
    assert ingestor.split()[:4] == ["ingestor", "RUNNING", "aaaaaa", "4242"]
    assert re.search(r"4242\s+[2-8]s ago\s+\[stream\] tick 9$", ingestor)
    emulator = next(line for line in lines if line.strip().startswith("emulator"))
    assert emulator.split()[:4] == ["emulator", "RUNNING", "bbbbbb", "777"]
    assert re.search(r"777\s+5m0\ds ago\s+captured 40 screens$", emulator)
    assert any(re.search(r"jobs as last reported 5m0\ds ago \(not live\):$", line) for line in lines)
    assert lines.index(alpha) < lines.index(ingestor) < lines.index(beta) < lines.index(emulator)
    assert lines[-1].startswith("ages by the store's clock at ")
    no_traceback(result)


def test_fleet_json_is_the_view(store: Engine, pg_url: str, tmp_path: Path) -> None:
    two_hosts(store, datetime.now(timezone.utc))

    result = pw("fleet", "--json", "--config", str(config(tmp_path, pg_url)), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    view = FleetView.model_validate_json(result.stdout)
    assert view.reader == "alpha" and view.host_stale_after == 60.0
    assert [(h.host, h.state.value, h.alerted_by) for h in view.hosts] == [("alpha", "up", None),
                                                                          ("beta", "stale", "alpha")]
    assert json.loads(result.stdout)["hosts"][1]["jobs"][0]["live"] is False


def test_fleet_without_a_shared_store_says_it_needs_one(tmp_path: Path) -> None:
    result = pw("fleet", "--config", str(config(tmp_path, None)), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'config.toml'}: the fleet view needs a shared store: set [store] url "
        '(e.g. "postgresql+psycopg://user@dbhost:5432/proofwatch")']
    no_traceback(result)


def test_fleet_names_an_unreachable_store_without_its_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://pw:s3cret-pass@127.0.0.1:{port}/fleet"

    result = pw("fleet", "--config", str(config(tmp_path, url)), cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: 127.0.0.1:{port}/fleet: cannot read the fleet: ")
    assert len(result.stderr.splitlines()) == 1 and "s3cret-pass" not in result.stderr + result.stdout
    no_traceback(result)


def test_fleet_on_a_store_no_daemon_has_reported_to_says_so(pg_url: str, tmp_path: Path) -> None:
    result = pw("fleet", "--config", str(config(tmp_path, pg_url)), cwd=tmp_path)

    assert result.returncode == 1
    assert "no daemon has reported to this store yet" in result.stderr
    no_traceback(result)


# --- GET /api/fleet ----------------------------------------------------------------------------

def fleet_tables(url: str) -> tuple[str, ...]:
    """A daemon on the shared store, reporting five times a second (stale after 1 s of silence)."""
    return (api_table(), f'[store]\nurl = "{url}"\n', '[fleet]\nreport_every = "200ms"\nhost_stale_after = "1s"\n')


def stale_beta(engine: Engine, now: datetime) -> None:
    """Host beta, silent for 5 minutes, its emulator as it last reported it."""
    seen = now - timedelta(minutes=5)
    report_host(engine, host("beta", seen, [
        job("emulator", "RUNNING", beat=seen - timedelta(seconds=4), run_id=RUN_B, pid=777, kind="task",
            message="captured 40 screens")], score=45, label="DEGRADED"))


async def alpha_reported(d: Daemon) -> None:
    """Wait for a fleet report of the daemon (host alpha) made after its svc job was RUNNING,
    and for it to have raised beta's stale alert."""
    await reach(d, "svc", S.RUNNING)
    since = d.clock.now()
    assert d.fleet is not None

    def seen() -> bool:
        st = d.fleet.status() if d.fleet is not None else None
        return (st is not None and st.read_at is not None and st.read_at > since
                and any(h.host == "beta" and h.alerted_by == "alpha" for h in st.hosts))

    await d.wait_until(seen, 15)


async def test_api_fleet_answers_every_host_of_the_store(store: Engine, pg_url: str, tmp_path: Path) -> None:
    stale_beta(store, datetime.now(timezone.utc))
    svc = harness_job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    async with running(tmp_path, *fleet_tables(pg_url), svc, supervisor='host = "alpha"\n') as d:
        await alpha_reported(d)
        assert d.api is not None and d.api.url is not None and d.jobs["svc"].run is not None
        pid = d.jobs["svc"].run.pid
        async with httpx.AsyncClient(base_url=d.api.url, timeout=10) as tcp:
            refused = await tcp.get("/api/fleet")
            reply = await tcp.get("/api/fleet", headers=GOOD)
    assert refused.status_code == 401
    assert reply.status_code == 200, reply.text
    view = FleetView.model_validate(reply.json())
    hosts = {h.host: h for h in view.hosts}
    assert view.reader == "alpha" and view.host_stale_after == 1.0 and set(hosts) == {"alpha", "beta"}
    alpha, beta = hosts["alpha"], hosts["beta"]
    assert alpha.state.value == "up" and alpha.pid == os.getpid() and alpha.seen_ago < 1.0
    (svc_job,) = alpha.jobs
    assert (svc_job.name, svc_job.state, svc_job.pid, svc_job.live) == ("svc", "RUNNING", pid, True)
    assert svc_job.heartbeat_age is not None and svc_job.heartbeat_age < 5
    assert (beta.state.value, beta.alerted_by, beta.health.label) == ("stale", "alpha", "DEGRADED")
    (emulator,) = beta.jobs
    assert emulator.live is False and emulator.heartbeat_age is not None and emulator.heartbeat_age >= 304


async def test_api_fleet_without_a_shared_store_is_a_404_that_says_why(tmp_path: Path) -> None:
    async with running(tmp_path, api_table()) as d:
        assert d.api is not None and d.api.url is not None
        async with httpx.AsyncClient(base_url=d.api.url, timeout=10) as tcp:
            reply = await tcp.get("/api/fleet", headers=GOOD)
    assert reply.status_code == 404
    body = reply.json()
    assert body["ok"] is False and "[store] url" in body["error"] and "shared store" in body["error"]


@pytest.mark.slow
async def test_schemathesis_finds_api_fleet_answers_true_to_the_document(store: Engine, pg_url: str,
                                                                         tmp_path: Path) -> None:
    from tests.supervisor.test_api_fuzz import CHECKS

    stale_beta(store, datetime.now(timezone.utc))
    svc = harness_job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    async with running(tmp_path, *fleet_tables(pg_url), svc, supervisor='host = "alpha"\n') as d:
        await alpha_reported(d)
        assert d.api is not None and d.api.url is not None
        command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{d.api.url}/openapi.json",
                   "--include-path", "/api/fleet", "--header", f"Authorization: Bearer {TOKEN}",
                   "--checks", CHECKS, "--phases", "coverage,fuzzing", "--max-examples", "10", "--seed", "1",
                   "--generation-database", "none", "--request-timeout", "10", "--no-color"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
        with anyio.fail_after(60):
            done = await anyio.run_process(command, cwd=tmp_path, env=env, check=False)
    report = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, report[-6000:]
    assert " passed" in report and " failed" not in report.split("SUMMARY")[-1]
