"""supervisor/health.py with real processes, real sockets and real SQLite: attribution of CPU to
runs and their expected_load, service checks, temperature fallbacks, downsampled history."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlmodel import Session

from policies.health import HealthState, evaluate
from status.history import History, make_engine
from status.sqlite import SqliteHistory
from status.tables import HostSampleTable
from status.samples import HostSampleRow, keep, load_samples, prune_samples, save_sample
from supervisor.config import ConfigError, HealthSettings, load_config
from supervisor.health import HealthSampler, host_status, read_temperature, run_checks, sample_row

BURN = "while True: pass"
# A run leader whose worker leaves the process tree (double fork) but stays in the run's session.
DAEMONISES = """
import os, time
if os.fork() == 0:
    if os.fork() == 0:
        print(os.getpid(), flush=True)
        time.sleep(120)
    os._exit(0)
os.wait()
time.sleep(120)
"""
# A run leader that starts the burner as its child and prints the child's pid.
STARTS_BURNER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
print(child.pid, flush=True)
child.wait()
"""


@pytest.fixture
def spawn() -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Start `python -c CODE` in its own session (like a run); kill every group at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(code: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_sampler_attributes_expected_load_to_its_job_and_names_an_unexpected_burner(
    spawn: Callable[[str], subprocess.Popen[str]],
) -> None:
    leader = spawn(STARTS_BURNER)
    assert leader.stdout is not None
    burner_pid = int(leader.stdout.readline())
    rogue = spawn(BURN)
    name = psutil.Process(burner_pid).name()  # as psutil reports it: "python3.11", "python", ...
    settings = HealthSettings(top_n=10, mounts=["/", "/no/such/mount"])
    sampler = HealthSampler(settings)
    runs = {leader.pid: ("emulator", [f"{name[:4]}*"])}

    sampler.sample(runs)  # primes the per-process counters
    time.sleep(1.0)  # the measuring window for CPU %
    sample = sampler.sample(runs)

    expected = {p.pid: p for p in sample.expected}
    assert burner_pid in expected, sample.expected
    assert (expected[burner_pid].job, expected[burner_pid].name) == ("emulator", name)
    assert expected[burner_pid].cpu_pct > 30
    top = {p.pid: p for p in sample.top_cpu}
    assert rogue.pid in top, sample.top_cpu
    assert (top[rogue.pid].job, top[rogue.pid].expected) == (None, False)
    assert top[rogue.pid].cpu_pct > 30
    assert sample.disks == {"/": pytest.approx(psutil.disk_usage("/").percent, abs=1),
                            "/no/such/mount": None}
    assert sample.cores == psutil.cpu_count() and len(sample.per_cpu) == sample.cores
    assert 0 < sample.cpu_pct <= 100

    # Half a core's worth of unexpected CPU counts as busy here, whatever the core count.
    limits = settings.model_copy(update={"cpu_busy_pct": 50 / sample.cores, "for_samples": 1})
    verdict = evaluate(sample, limits, HealthState())
    (alert,) = [a for a in verdict.fire if a.key == "host:cpu"]
    unexpected, _, expected_part = alert.title.partition("; expected:")
    assert f"pid {rogue.pid}" in unexpected
    assert f"pid {burner_pid}" not in unexpected
    assert f"emulator's {name} (pid {burner_pid})" in expected_part
    status = host_status(verdict, sample)
    assert status.sample["disks"]["/no/such/mount"] == "unavailable"
    assert "disk /no/such/mount unavailable" in status.reasons


def test_sampler_keeps_process_objects_between_samples(
    spawn: Callable[[str], subprocess.Popen[str]],
) -> None:
    rogue = spawn(BURN)
    sampler = HealthSampler(HealthSettings(top_n=50))
    first = sampler.sample({})
    assert all(p.cpu_pct == 0 for p in first.top_cpu if p.pid == rogue.pid)  # primed, not known
    time.sleep(0.5)
    second = sampler.sample({})
    assert any(p.pid == rogue.pid and p.cpu_pct > 30 for p in second.top_cpu)


def test_sampler_attributes_a_daemonised_worker_by_its_run_session(
    spawn: Callable[[str], subprocess.Popen[str]],
) -> None:
    leader = spawn(DAEMONISES)
    assert leader.stdout is not None
    worker = int(leader.stdout.readline())
    assert psutil.Process(worker).ppid() != leader.pid  # re-parented: not in the leader's tree
    name = psutil.Process(worker).name()
    sample = HealthSampler(HealthSettings()).sample({leader.pid: ("arb", [name])})
    assert worker in {p.pid for p in sample.expected if p.job == "arb"}


# --- config --------------------------------------------------------------------------------

def test_health_config_keys_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[health]\nfor_samples = 5\ncpu_busy_pct = 95\n'
                    '[[health.checks]]\nname = "web"\nkind = "http"\n'
                    'url = "http://127.0.0.1:8080/"\n'
                    '[[health.checks]]\nname = "db"\nkind = "tcp"\nhost = "127.0.0.1"\n'
                    'port = 5432\ntimeout = "500ms"\n')
    health = load_config(path).health
    assert (health.for_samples, health.cpu_busy_pct, health.load_per_core_max) == (5, 95, 2.0)
    assert (health.swap_max_pct, health.top_n, health.interval) == (80, 5, 10.0)
    assert [(c.name, c.kind, c.timeout) for c in health.checks] == [("web", "http", 2.0),
                                                                     ("db", "tcp", 0.5)]


@pytest.mark.parametrize(("text", "message"), [
    ('[health]\nfor_samples = 0\n', "config.toml:2: health.for_samples: must be at least 1, got 0"),
    ('[health]\ncpu_busy = 90\n',
     'config.toml:2: health.cpu_busy: unknown key (did you mean "cpu_busy_pct"?)'),
    ('[[health.checks]]\nname = "web"\nkind = "http"\n',
     'config.toml:1: health.checks[0]: kind = "http" needs url'),
    ('[[health.checks]]\nname = "db"\nkind = "tcp"\nhost = "x"\nport = 1\nunit = "pg"\n',
     'config.toml:1: health.checks[0]: unit is not used by kind = "tcp" (it takes host and port)'),
    ('[[health.checks]]\nname = "w"\nkind = "http"\nurl = "127.0.0.1:80"\n',
     'config.toml:1: health.checks[0]: url "127.0.0.1:80" is not an http:// or https:// URL'),
    ('[[health.checks]]\nname = "a"\nkind = "systemd"\nunit = "x"\n'
     '[[health.checks]]\nname = "a"\nkind = "systemd"\nunit = "y"\n',
     "config.toml:1: health.checks: each check needs its own name (repeated: a)"),
    ('[[health.checks]]\nname = "p"\nkind = "ping"\n',
     'config.toml:3: health.checks[0].kind: "ping" is not one of: http, tcp, systemd'),
], ids=["for-samples", "typo", "http-without-url", "stray-key", "bad-url", "duplicate-name",
        "unknown-kind"])
def test_health_config_errors_name_the_line_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str,
) -> None:
    (tmp_path / "config.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("config.toml")
    assert str(info.value) == message


# --- temperature -----------------------------------------------------------------------------

Temp = namedtuple("Temp", "label current high critical")


@pytest.mark.parametrize("sensors", [
    pytest.param({}, id="no-sensors"),
    pytest.param({"acpitz": [Temp("", None, None, None)]}, id="no-reading"),
    pytest.param(AttributeError("sensors_temperatures"), id="unsupported-platform"),
    pytest.param(OSError(5, "Input/output error"), id="unreadable"),
])
def test_temperature_unavailable_is_never_an_error(monkeypatch: pytest.MonkeyPatch,
                                                   sensors: Any) -> None:
    def fake() -> Any:
        if isinstance(sensors, Exception):
            raise sensors
        return sensors

    monkeypatch.setattr(psutil, "sensors_temperatures", fake)
    assert read_temperature() == (None, "unavailable")
    sample = HealthSampler(HealthSettings()).sample({})
    assert (sample.temp_c, sample.temp_source) == (None, "unavailable")


def test_temperature_prefers_the_cpu_package_sensor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: {
        "nvme": [Temp("Composite", 70.0, 80.0, 90.0)],
        "coretemp": [Temp("Package id 0", 61.0, 80.0, 100.0), Temp("Core 1", 64.5, 80.0, 100.0)],
    })
    assert read_temperature() == (64.5, "coretemp/Core 1")
    monkeypatch.setattr(psutil, "sensors_temperatures",
                        lambda: {"nvme": [Temp("Composite", 70.0, 80.0, 90.0)]})
    assert read_temperature() == (70.0, "nvme/Composite")


# --- service checks --------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/slow":
            time.sleep(1.0)
        status = {"/ok": 200, "/moved": 302, "/down": 503}.get(self.path, 200)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def checks(*entries: dict[str, Any]) -> HealthSettings:
    return HealthSettings.model_validate({"checks": list(entries)})


def test_checks_against_a_real_http_server_and_tcp_ports(http_server: str,
                                                         closed_port: int) -> None:
    port = int(http_server.rsplit(":", 1)[1])
    settings = checks(
        {"name": "web", "kind": "http", "url": f"{http_server}/ok"},
        {"name": "moved", "kind": "http", "url": f"{http_server}/moved"},
        {"name": "down", "kind": "http", "url": f"{http_server}/down"},
        {"name": "slow", "kind": "http", "url": f"{http_server}/slow", "timeout": "200ms"},
        {"name": "refused", "kind": "http", "url": f"http://127.0.0.1:{closed_port}/"},
        {"name": "port", "kind": "tcp", "host": "127.0.0.1", "port": port},
        {"name": "closed", "kind": "tcp", "host": "127.0.0.1", "port": closed_port},
    )
    results = run_checks(settings.checks)
    assert list(results) == ["web", "moved", "down", "slow", "refused", "port", "closed"]
    status = {name: r.ok for name, r in results.items()}
    assert status == {"web": True, "moved": True, "down": False, "slow": False, "refused": False,
                      "port": True, "closed": False}
    assert results["web"].detail.startswith("HTTP 200 in ")
    assert results["down"].detail.endswith("HTTP 503 Service Unavailable")
    assert "no answer within 0.2s" in results["slow"].detail
    assert "connection refused" in results["refused"].detail.lower()
    assert results["closed"].detail == f"127.0.0.1:{closed_port}: connection refused"


def test_failing_check_alerts_through_the_sampler_after_for_samples(closed_port: int) -> None:
    settings = checks({"name": "db", "kind": "tcp", "host": "127.0.0.1", "port": closed_port})
    sampler = HealthSampler(settings.model_copy(update={"for_samples": 2}))
    state, fired = HealthState(), []
    for _ in range(2):
        verdict = evaluate(sampler.sample({}), sampler.settings, state)
        state = verdict.state
        fired.append([a.key for a in verdict.fire])
    assert fired == [[], ["host:check:db"]]


def test_systemd_check_is_unavailable_without_systemctl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    results = run_checks(checks({"name": "nginx", "kind": "systemd", "unit": "nginx"}).checks)
    assert results["nginx"].ok is None
    assert results["nginx"].status == "unavailable"
    assert results["nginx"].detail == "systemctl not found"


def test_systemd_check_on_this_host_answers_or_is_unavailable() -> None:
    results = run_checks(checks({"name": "x", "kind": "systemd",
                                 "unit": "proofwatch-no-such-unit.service"}).checks)
    assert results["x"].ok in (False, None)  # never "ok", never an exception
    assert results["x"].detail


# --- history: downsampling -------------------------------------------------------------------

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)  # on a 10-minute boundary


def row(age_s: int, score: int = 100) -> HostSampleRow:
    return HostSampleRow(ts=NOW - timedelta(seconds=age_s), cpu_pct=10.0, load1=0.2,
                         mem_pct=30.0, swap_pct=0.0, disk={"/": 40.0, "/mnt": None},
                         temp_c=None, score=score, label="HEALTHY")


@pytest.mark.parametrize("driver", ["sqlite3", "sqlalchemy"])
def test_prune_keeps_every_sample_for_an_hour_then_one_per_bucket_and_the_worst_survives(
    tmp_path: Path, driver: str,
) -> None:
    history = (SqliteHistory if driver == "sqlite3" else History)(tmp_path / "history.db")
    rows = (
        [row(age) for age in range(0, 3601, 10)]  # 361 rows: the last hour, all kept
        + [row(age) for age in range(3610, 10801, 10)]  # 720 rows over 2 h: 120 minute buckets
        + [row(age) for age in range(172_800, 180_001, 60)]  # 121 rows: 13 ten-minute buckets
        + [row(31 * 86_400), row(40 * 86_400)]  # past 30 days: deleted
    )
    rows[361 + 139].score = 12  # age 5000 s: an incident inside a minute bucket
    rows[361 + 720 + 37].score = 5  # age 175020 s: an incident inside a 10-minute bucket
    with Session(make_engine(tmp_path / "history.db")) as s:
        s.add_all([HostSampleTable(**{k: v for k, v in r.model_dump().items() if k != "id"}) for r in rows])
        s.commit()
    save_sample(history.engine, row(5))  # the public write path, aware timestamp in

    deleted = prune_samples(history.engine, NOW)
    kept = load_samples(history.engine, limit=100_000)
    assert (deleted, len(kept)) == (1205 - (362 + 120 + 13), 362 + 120 + 13)
    ages = {int((NOW - r.ts).total_seconds()): r.score for r in kept}
    assert ages[5000] == 12 and ages[175_020] == 5
    assert 5010 not in ages and 175_080 not in ages  # their bucket-mates went
    assert max(ages) <= 30 * 86_400
    assert all(r.ts.tzinfo is timezone.utc for r in kept)
    assert kept[0].disk == {"/": 40.0, "/mnt": None}
    assert prune_samples(history.engine, NOW) == 0  # idempotent
    assert keep(kept, NOW) == kept
    history.close()


def test_downsampling_moves_samples_into_coarser_tiers_as_they_age() -> None:
    minute = [row(age) for age in range(3670, 3721, 10)]  # one minute bucket, 6 samples
    assert len(keep(minute, NOW)) == 1
    assert len(keep(minute, NOW - timedelta(minutes=10))) == 6  # still within the hour then
    assert keep(minute, NOW + timedelta(days=31)) == []


def test_sample_row_stores_what_the_verdict_said(tmp_path: Path) -> None:
    history = History(tmp_path / "history.db")
    sampler = HealthSampler(HealthSettings(mounts=["/", "/no/such/mount"]))
    sample = sampler.sample({})
    verdict = evaluate(sample, sampler.settings, HealthState())
    save_sample(history.engine, sample_row(sample, verdict))
    (stored,) = load_samples(history.engine, since=sample.ts - timedelta(seconds=1))
    assert (stored.score, stored.label) == (verdict.score, verdict.label.value)
    assert stored.disk["/no/such/mount"] is None
    assert abs((stored.ts - sample.ts).total_seconds()) < 0.001
    history.close()
