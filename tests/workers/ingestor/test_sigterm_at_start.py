"""A SIGTERM that arrives while the ingestor opens its store (locking the data dir, adopting
parts, restoring books) stops it cleanly once the open is done: exit 0, heartbeat "stopped".
Before, the signal handler came after the open, and such a SIGTERM killed the process (-15):
the e2e restart test saw it under load, when its third run was stopped during its start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, logging, os, signal, sys, time
from pathlib import Path
import anyio
from workers.ingestor.config import Settings
from workers.ingestor.service import Service
from workers.sdk import Run

tmp = Path(sys.argv[1])
logging.basicConfig(level="INFO", stream=sys.stderr)

class StoppedWhileOpening(Service):
    def _open(self):
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor stops it now
        time.sleep(0.2)  # the open goes on (as it does in its worker thread)
        super()._open()

settings = Settings(ws_url="ws://127.0.0.1:9", rest_url="http://127.0.0.1:9", instruments=("BTC-USDT",),
                    data_dir=tmp / "data")
service = StoppedWhileOpening(settings, Run(tmp / "heartbeat.json", min_interval=0.0))
sys.exit(anyio.run(service.run, backend="asyncio"))
"""


def test_a_sigterm_during_the_open_stops_the_run_cleanly_once_it_is_open(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "SIGTERM: flushing and stopping" in done.stderr
    beat = json.loads((tmp_path / "heartbeat.json").read_text())
    assert beat["phase"] == "stopped", beat
