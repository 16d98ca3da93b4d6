"""`proofwatch run` goes straight to the daemon (no typer, no click in its process), and the
daemon loads its API server only when the first client connects; everything else still goes
to the typer CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.control import request
from supervisor.entry import run_options

ROOT = Path(__file__).resolve().parents[2]
CLI_LIBS = ("typer", "click")
API_LIBS = ("uvicorn", "starlette")

# Runs the console script's entry point as `proofwatch ARGS...`, and on exit writes the
# top-level packages it had loaded to MODULES (SIGTERM ends the daemon through sys.exit).
ENTRY = """
import atexit, json, sys
out, *args = sys.argv[1:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted({m.split(".")[0] for m in sys.modules}))))
sys.argv = ["proofwatch", *args]
from supervisor.entry import main
main()
"""


@pytest.mark.parametrize(("args", "expected"), [
    (["run"], ("config.toml", "info")),
    (["run", "--config", "a.toml"], ("a.toml", "info")),
    (["run", "--config=a.toml", "--log-level", "debug"], ("a.toml", "debug")),
    (["run", "-c", "a.toml", "--log-level=warning"], ("a.toml", "warning")),
    (["run", "-ca.toml"], ("a.toml", "info")),
    (["run", "-c=a.toml"], ("=a.toml", "info")),  # as click reads it
])
def test_run_and_its_options_go_straight_to_the_daemon(args: list[str], expected: tuple[str, str]) -> None:
    config, level = expected
    assert run_options(args, {}) == (Path(config), level)


def test_the_config_comes_from_the_environment_unless_given() -> None:
    env = {"PROOFWATCH_CONFIG": "/etc/proofwatch.toml"}
    assert run_options(["run"], env) == (Path("/etc/proofwatch.toml"), "info")
    assert run_options(["run", "-c", "b.toml"], env) == (Path("b.toml"), "info")
    assert run_options(["run"], {"PROOFWATCH_CONFIG": ""}) == (Path("config.toml"), "info")


@pytest.mark.parametrize("args", [
    [], ["status"], ["run", "--help"], ["run", "--bogus"], ["run", "--config"],
    ["run", "--config", "--log-level", "x"], ["run", "--config="], ["run", "extra"], ["runs"],
])
def test_everything_else_goes_to_the_cli(args: list[str]) -> None:
    assert run_options(args, {}) is None


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _entry(tmp_path: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, str(tmp_path / "modules.json"), *args],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, **kw)


def test_run_help_and_a_mistyped_option_are_the_clis(tmp_path: Path) -> None:
    shown = _entry(tmp_path, "run", "--help")
    assert shown.returncode == 0 and "Start the daemon in the foreground" in shown.stdout
    wrong = _entry(tmp_path, "run", "--confg", "x.toml")
    assert wrong.returncode == 2 and "No such option" in wrong.stderr, wrong.stderr


def test_a_config_that_cannot_be_used_exits_2_with_its_error_and_no_cli_loaded(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[jobs.x]\ncommand = ["true"]\nstall_after = "soon"\n')
    done = _entry(tmp_path, "run", "--config", "bad.toml")
    assert done.returncode == 2
    assert "stall_after" in done.stderr and "soon" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    loaded = json.loads((tmp_path / "modules.json").read_text())
    assert not set(CLI_LIBS) & set(loaded)


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[supervisor]\nstate_dir = "var"\ndata_dir = "data"\nallow_root = true\n'
                   'status_min_interval = "50ms"\n'
                   f'[jobs.sleeper]\nkind = "service"\ncommand = ["{sys.executable}", "-c", '
                   '"import time; time.sleep(600)"]\n')
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", ENTRY, str(tmp_path / "modules.json"), "run",
                                 "--config", str(cfg)], cwd=tmp_path, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, log


def _wait_started(tmp_path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    status = tmp_path / "var" / "status.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(status.read_text())["jobs"]["sleeper"]["pid"]:
                return
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.05)
    raise AssertionError(log.read_text()[-3000:])


def _stop(proc: subprocess.Popen[bytes], tmp_path: Path) -> set[str]:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    return set(json.loads((tmp_path / "modules.json").read_text()))


def test_the_daemon_loads_neither_the_cli_nor_the_api_server_until_a_client_connects(tmp_path: Path) -> None:
    proc, log = _start(tmp_path)
    try:
        _wait_started(tmp_path, proc, log)
    finally:
        loaded = _stop(proc, tmp_path)
    assert not set(CLI_LIBS + API_LIBS) & loaded, sorted(loaded)
    assert "API server loaded" not in log.read_text()
    # nor what only a plugin lookup (supervisor.pydantic_plugins) or a config typo needs
    assert not {"zipfile", "email", "csv", "difflib"} & loaded, sorted(loaded)


def test_the_first_client_loads_the_api_server_and_is_answered(tmp_path: Path) -> None:
    proc, log = _start(tmp_path)
    try:
        _wait_started(tmp_path, proc, log)
        answer = request(tmp_path / "var" / "proofwatch.sock", "ping", timeout=30)
        assert answer.get("ok") is True, answer
        again = request(tmp_path / "var" / "proofwatch.sock", "ping", timeout=5)
        assert again.get("ok") is True
        reloaded = request(tmp_path / "var" / "proofwatch.sock", "reload", timeout=30)
        assert reloaded.get("ok") is True, reloaded
    finally:
        loaded = _stop(proc, tmp_path)
    text = log.read_text()
    assert text.count("API server loaded for its first client in") == 1, text[-3000:]
    # the long-lived heap is frozen out of the collector's way (supervisor/heap.py) at start,
    # once the API server has loaded, and again after a reload replaced the config
    settled = [line.split("heap settled (")[1].split(")")[0] for line in text.splitlines() if "heap settled (" in line]
    assert len(settled) == 3 and settled[2] == "config reloaded", text[-3000:]
    assert sorted(settled[:2]) == ["API server loaded", "started"], text[-3000:]
    assert set(API_LIBS) <= loaded and "typer" not in loaded, sorted(loaded)  # uvicorn brings click


def test_the_fast_path_knows_exactly_the_options_the_clis_run_command_declares() -> None:
    """supervisor.entry parses `run` itself: its options must stay those of the typer command."""
    import typer.main

    from supervisor import entry
    from supervisor.cli import app

    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    declared = {opt for param in run.params for opt in param.opts}
    assert declared == set(entry._OPTIONS)
    config = next(p for p in run.params if "--config" in p.opts)
    assert config.envvar == "PROOFWATCH_CONFIG" and str(config.default) == "config.toml"
