"""`proofwatch check` on a config with a shared store: reachable or not, at which schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from status.history import History
from tests.fleet.pg import free_port


def _check(tmp_path: Path, url: str, env: dict[str, str] | None = None) -> str:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[supervisor]\nstate_dir = "var"\nhost = "boxa"\nallow_root = true\n'
                   f'[store]\nurl = "{url}"\n[jobs.a]\ncommand = "sleep 1"\n')
    proc = subprocess.run([sys.executable, "-m", "supervisor.cli", "check", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60, env=env)
    return proc.stdout + proc.stderr


def test_check_reports_the_server_and_the_schema_it_will_find(tmp_path: Path, pg_url: str) -> None:
    out = _check(tmp_path, pg_url)
    assert "ok      store.url: postgresql+psycopg://proofwatch@127.0.0.1:" in out
    assert "PostgreSQL 1" in out and "no proofwatch schema yet: the daemon creates it at start" in out
    History(pg_url).close()
    assert "schema 0003 (current)" in _check(tmp_path, pg_url)


def test_check_names_an_unreachable_store_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://proofwatch:${{PW}}@127.0.0.1:{free_port()}/fleet"
    out = _check(tmp_path, url, env={"PW": "hunter2", "PATH": "/usr/bin:/bin"})
    assert "warning store.url: postgresql+psycopg://proofwatch:***@127.0.0.1:" in out
    assert "Connection refused" in out and "hunter2" not in out
    out = _check(tmp_path, url, env={"PATH": "/usr/bin:/bin"})
    assert "error   store.url: ${PW} is not set in the supervisor's environment" in out


def _history(tmp_path: Path, url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "config.toml"
    store = f'[store]\nurl = "{url}"\n' if url else ""
    cfg.write_text(f'[supervisor]\nstate_dir = "var"\nhost = "boxa"\nallow_root = true\n{store}'
                   '[jobs.a]\ncommand = "sleep 1"\n')
    return subprocess.run([sys.executable, "-m", "supervisor.cli", "history", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60)


def test_history_shows_this_hosts_runs_and_another_hosts_on_request(tmp_path: Path, pg_url: str) -> None:
    from datetime import datetime, timezone

    from status.history import Batch

    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    for host, job in (("boxa", "ingest"), ("boxb", "render")):
        h = History(pg_url, host=host)
        h.apply(Batch(runs=[{"run_id": f"20261125T120000000Z-{host}", "job": job, "state": "SUCCEEDED",
                             "started_at": t0, "ended_at": t0}]))
        h.close()
    mine = _history(tmp_path, pg_url)
    assert mine.returncode == 0 and "ingest" in mine.stdout and "render" not in mine.stdout
    other = _history(tmp_path, pg_url, "--host", "boxb")
    assert other.returncode == 0 and "render" in other.stdout and "ingest" not in other.stdout
    local = _history(tmp_path, None, "--host", "boxb")
    assert local.returncode == 2 and "only a shared store ([store] url) holds other hosts' history" in local.stderr


def test_logs_hide_the_store_password_but_name_its_server(tmp_path: Path) -> None:
    code = ("from supervisor.launch import _register_secrets\nfrom supervisor.config import load_config\n"
            "from supervisor.notify import redact\nimport sys\n_register_secrets(load_config(sys.argv[1]))\n"
            "print(redact('history (postgresql 127.0.0.1:5/fleet) written again; '\n"
            "             'postgresql+psycopg://proofwatch:hunter2pw@127.0.0.1:5/fleet; hunter2pw'))\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text('[supervisor]\nhost = "boxa"\nallow_root = true\n[store]\n'
                   'url = "postgresql+psycopg://proofwatch:hunter2pw@127.0.0.1:5/fleet"\n[jobs.a]\ncommand = "sleep 1"\n')
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "history (postgresql 127.0.0.1:5/fleet) written again; ***; ***"
