"""`python -m bench.memory`: where the daemon's resident memory goes.

Two measurements, on this machine:

1. **Import by import.** One fresh interpreter imports, in order, what the daemon's process
   imports (after `supervisor.pydantic_plugins.skip_lookup()`, as `proofwatch run` does), and
   reads its own VmRSS after each step; the increments say what each layer costs
   (a layer's shared dependencies are charged to the first layer that imports them). The last
   rows import what the daemon does not load, or loads only later, for comparison.
2. **A running daemon** (`--daemon`, the default runs both): `proofwatch run` (the console
   script) with N sleeping jobs and no heartbeats, VmRSS once every job has been spawned and the
   daemon has settled; then once more after one API request (the API server loads when its
   first client connects).

Prints Markdown tables; `--json` prints the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._daemon import proofwatch_command, wait_for

STAGES: list[tuple[str, str]] = [
    ("interpreter", ""),
    ("pydantic (the package)", "pydantic"),
    ("asyncio + anyio (with ssl, which both import)", "anyio, anyio._backends._asyncio, asyncio.sslproto"),
    ("psutil, sqlite3, watchfiles", "psutil, sqlite3, watchfiles"),
    ("status.models (the status document's pydantic models)", "status.models"),
    ("supervisor.config (the config models)", "supervisor.config"),
    ("the rest of the daemon (launch, daemon, notifier, host watch, self-watch)",
     "supervisor.launch, supervisor.daemon, supervisor.notifyloop, supervisor.hostwatch, supervisor.selfwatch"),
    ("later, on the API's first client: uvicorn, starlette, the routes", "supervisor.api._server"),
    ("later, with the first notification: tenacity", "tenacity"),
    ("never in the daemon: pydantic's plugin lookup (importlib.metadata, zipfile, email, csv, "
     "tempfile, bz2, lzma; supervisor/pydantic_plugins.py)", "importlib.metadata"),
    ("never in the daemon: typer + click (the CLI)", "typer, supervisor.cli"),
    ("never on SQLite: sqlalchemy", "sqlalchemy"),
    ("never on SQLite: sqlmodel + the schema tables", "sqlmodel, status.tables, status.history"),
]
DAEMON_SIZES = (1, 200)
SETTLE_S = 5.0  # after the last spawn: the notifier, host watch and first status writes

_PROBE = """
import importlib, json, sys
def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
from supervisor.pydantic_plugins import skip_lookup
skip_lookup()  # as `proofwatch run` does (supervisor/entry.py), before pydantic is imported
out = [rss()]
for group in json.loads(sys.argv[1]):
    for name in [n.strip() for n in group.split(',') if n.strip()]:
        importlib.import_module(name)
    out.append(rss())
print(json.dumps(out))
"""


def measure() -> list[dict[str, float | str]]:
    """Each stage's RSS increment and the running total (MiB), from one fresh interpreter."""
    groups = [modules for _, modules in STAGES[1:]]
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(groups)], capture_output=True,
                          text=True, check=True)
    totals = json.loads(done.stdout)
    rows: list[dict[str, float | str]] = []
    for i, (label, _) in enumerate(STAGES):
        before = totals[i - 1] if i else 0.0
        rows.append({"stage": label, "added_mib": round(totals[i] - before, 1), "total_mib": round(totals[i], 1)})
    return rows


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _config(d: Path, n: int) -> Path:
    lines = ['[supervisor]', 'state_dir = "var"', 'data_dir = "data"', 'allow_root = true', '']
    for i in range(n):
        lines += [f'[jobs.j{i:04d}]', 'kind = "service"', 'command = ["sleep", "infinity"]',
                  'startup_grace = "1h"', '']
    path = d / "config.toml"
    path.write_text("\n".join(lines))
    return path


def _spawned(status: Path, n: int) -> bool:
    try:
        jobs = json.loads(status.read_text())["jobs"]
    except (OSError, ValueError, KeyError):
        return False
    return sum(1 for j in jobs.values() if j.get("pid")) >= n


def measure_daemon(n: int) -> dict[str, Any]:
    """VmRSS (MB) of `proofwatch run` with `n` sleeping jobs, before and after one API request."""
    from supervisor.control import request

    d = Path(tempfile.mkdtemp(prefix="pwmem-"))
    cfg = _config(d, n)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    proc = subprocess.Popen([*proofwatch_command(), "run", "--config", str(cfg)], cwd=d, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(d / "daemon.err", "wb"), start_new_session=True)
    try:
        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {(d / 'daemon.err').read_text()[-2000:]}")

        wait_for(lambda: _spawned(d / "var" / "status.json", n), 60, f"{n} jobs spawned", check=alive)
        time.sleep(SETTLE_S)  # nothing to await: the point is a daemon left alone
        before = _rss_mb(proc.pid)
        answer = request(d / "var" / "proofwatch.sock", "ping", timeout=30)
        if not answer.get("ok"):
            raise RuntimeError(f"ping: {answer}")
        time.sleep(1.0)
        after = _rss_mb(proc.pid)
        return {"jobs": n, "rss_mb": round(before, 1), "after_api_mb": round(after, 1)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--imports", action="store_true", help="only the import-by-import table")
    which.add_argument("--daemon", action="store_true", help="only the running daemon")
    parser.add_argument("--sizes", default=",".join(map(str, DAEMON_SIZES)),
                        help="job counts for the running daemon (default 1,200)")
    args = parser.parse_args()
    rows = [] if args.daemon else measure()
    daemons = [] if args.imports else [measure_daemon(int(n)) for n in args.sizes.split(",")]
    if args.json:
        print(json.dumps({"imports": rows, "daemon": daemons}, indent=2))
        return
    if rows:
        print("| what is imported | adds | RSS after |")
        print("|---|---:|---:|")
        for row in rows:
            print(f"| {row['stage']} | {row['added_mib']} MiB | {row['total_mib']} MiB |")
    if daemons:
        if rows:
            print()
        print("| `proofwatch run`, sleeping jobs, no heartbeats | RSS | after one API request |")
        print("|---|---:|---:|")
        for row in daemons:
            print(f"| {row['jobs']} job{'s' if row['jobs'] != 1 else ''} | {row['rss_mb']} MB | {row['after_api_mb']} MB |")


if __name__ == "__main__":
    main()
