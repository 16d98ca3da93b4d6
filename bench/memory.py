"""`python -m bench.memory`: where the daemon's resident memory goes, import by import.

One fresh interpreter imports, in order, what the daemon's process imports, and reads its own
VmRSS after each step; the increments say what each layer costs on this machine (a layer's
shared dependencies are charged to the first layer that imports them). The last rows import
what the daemon no longer loads on its SQLite history (SQLAlchemy, SQLModel, the schema
tables), for comparison. Prints a Markdown table; `--json` prints the rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

STAGES: list[tuple[str, str]] = [
    ("interpreter", ""),
    ("pydantic (the package)", "pydantic"),
    ("asyncio + anyio (with ssl, which asyncio imports)", "anyio, asyncio, asyncio.sslproto"),
    ("psutil, sqlite3, watchfiles, tenacity", "psutil, sqlite3, watchfiles, tenacity"),
    ("typer + click (the CLI)", "typer"),
    ("uvicorn + starlette (the API server)", "uvicorn, starlette.applications"),
    ("status.models (the status document: 13 pydantic models)", "status.models"),
    ("supervisor.config (the config models)", "supervisor.config"),
    ("supervisor.api (routes, API models, OpenAPI)", "supervisor.api"),
    ("the rest of the daemon (supervisor.daemon, supervisor.cli)", "supervisor.daemon, supervisor.cli"),
    ("not loaded on SQLite: sqlalchemy", "sqlalchemy"),
    ("not loaded on SQLite: sqlmodel + the schema tables", "sqlmodel, status.tables, status.history"),
]

_PROBE = """
import importlib, json, sys
def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = measure()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| what is imported | adds | RSS after |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row['stage']} | {row['added_mib']} MiB | {row['total_mib']} MiB |")


if __name__ == "__main__":
    main()
