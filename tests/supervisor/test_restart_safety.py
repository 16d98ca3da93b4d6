"""A daemon that died (SIGKILL) must not leave a second copy of a service running after it
comes back: the old run's process group is stopped and the loss is alerted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests import _procs as P
from tests._procs import script
from tests.supervisor.harness import HEADER
from tests.supervisor.test_cli import PROOFWATCH, wait_for


@pytest.mark.slow
def test_a_killed_daemon_comes_back_without_running_a_service_twice(tmp_path):
    svc = script(tmp_path, "svc", P.BEATS_FOREVER)
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + f'[jobs.svc]\nkind = "service"\ncommand = ["{sys.executable}", "{svc}"]\n'
                   'stop_grace = "2s"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([*PROOFWATCH, "run", "--config", str(cfg)], cwd=tmp_path, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def workers() -> list[int]:
        return [p.pid for p in psutil.process_iter(["cmdline"]) if str(svc) in " ".join(p.info["cmdline"] or [])]

    first = start()
    try:
        wait_for("the service to run", lambda: len(workers()) == 1)
        old = workers()[0]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert psutil.pid_exists(old)  # the job outlives its supervisor's crash
    second = start()
    try:
        # one snapshot per poll: the old worker may vanish between two process-table reads
        wait_for("a new service run", lambda: any(pid != old for pid in workers()))
        assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
        assert len([pid for pid in workers() if pid != old]) == 1
        alerts = subprocess.run([*PROOFWATCH, "alerts", "--config", str(cfg)], capture_output=True, text=True,
                                timeout=30).stdout
        assert "svc:lost" in alerts and "has been stopped, so the job never runs twice" in alerts
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
