"""Canned worker scripts for tests: real processes that behave in one specific way."""

from __future__ import annotations

import textwrap
from pathlib import Path

EXIT_OK = """
from workers.sdk import Run
run = Run.from_env()
for i in range(1, 4):
    run.beat({"items": i}, phase="work", message=f"item {i}", force=True)
print("done")
"""

CRASH_AT_START = """
import sys
print("starting up")
for i in range(30):
    print(f"stderr line {i}", file=sys.stderr)
print("fatal: FEED_TOKEN is not set", file=sys.stderr)
sys.exit(3)
"""

NEVER_BEATS = """
import time
time.sleep(60)
"""

BEATS_NO_PROGRESS = """
import time
from workers.sdk import Run
run = Run.from_env()
while True:
    run.beat({"pages": 1}, phase="crawl", message="waiting for lock", force=True)
    time.sleep(0.05)
"""

BEATS_FOREVER = """
import time
from workers.sdk import Run
run = Run.from_env()
i = 0
while True:
    i += 1
    run.beat({"ticks": i}, force=True)
    time.sleep(0.05)
"""

# Progress for a while, then none for PAUSE seconds, then progress again, then exit 0.
STALL_THEN_RESUME = """
import os, sys, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
run.beat({"n": 1}, force=True)
go = Path(os.environ["PROOFWATCH_RUN_DIR"]) / "go"
while not go.exists():          # the test creates `go` once it has seen STALLED
    run.beat({"n": 1}, force=True)
    time.sleep(0.05)
run.beat({"n": 2}, force=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0.3)
"""

# Leader and a child both ignore SIGTERM; pids are written to pids.txt.
IGNORES_SIGTERM = """
import os, signal, time
from workers.sdk import Run
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    while True:
        time.sleep(1)
run = Run.from_env()
with open(os.path.join(os.environ["PROOFWATCH_RUN_DIR"], "pids.txt"), "w") as f:
    f.write(f"{os.getpid()} {child}")
run.beat({"x": 1}, force=True)
while True:
    time.sleep(1)
"""

MALFORMED_THEN_GOOD = """
import os, time
from workers.sdk import Run
hb = os.environ["PROOFWATCH_HEARTBEAT"]
with open(hb + ".tmp", "w") as f:
    f.write('{"seq": "one", "progress": [1,2]')
os.replace(hb + ".tmp", hb)
time.sleep(0.5)
run = Run.from_env()
for i in range(1, 4):
    run.beat({"i": i}, force=True)
    time.sleep(0.05)
"""

BLOCKS = """
import time
from workers.sdk import Run
run = Run.from_env()
run.beat({"i": 1}, force=True)
run.blocked("adb: no devices/emulators found")
time.sleep(60)
"""

WRITES_OUTPUT = """
import sys, time
for i in range(4):
    print(f"line {i}", flush=True)
    time.sleep(0.1)
"""

WRITES_PROOF = """
import os, sys
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
run.beat({"i": 1}, force=True)
if "--no-proof" not in sys.argv:
    (Path(os.environ["PROOFWATCH_RUN_DIR"]) / "out.json").write_text('{"ok": true}')
"""


def script(tmp_path: Path, name: str, body: str) -> Path:
    """Write a canned script to tmp_path and return its path."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path
