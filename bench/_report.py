"""Summaries, machine facts and the Markdown written to docs/PERFORMANCE.md.

Each suite run replaces only its own section of the file, between
`<!-- bench:SUITE:begin -->` and `<!-- bench:SUITE:end -->`; everything else (the header,
other suites' sections, hand-written text) is kept. The file is created with a header
explaining the method when it does not exist yet.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Summary:
    """n samples and their mean, median and max (None where not meaningful)."""

    n: int
    mean: float | None
    median: float | None
    max: float | None


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    workload: str
    measurement: str
    summary: Summary
    unit: str


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(0, None, None, None)
    return Summary(len(values), statistics.fmean(values), statistics.median(values), max(values))


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    digits = {"ms": 1, "MiB": 1, "%": 2, "/s": 2}.get(unit, 2)
    return f"{value:.{digits}f} {unit}"


def machine() -> dict[str, Any]:
    """Facts about the machine and the code that was measured."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        version = metadata.version("proofwatch")
    except metadata.PackageNotFoundError:
        version = "?"
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    try:
        mem = psutil_total_mem()
    except Exception:
        mem = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": f"{platform.system()} {platform.release()}",
        "proofwatch": version,
        "commit": (commit + (" + uncommitted changes" if dirty else "")) if commit else "?",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def psutil_total_mem() -> float:
    import psutil

    return round(psutil.virtual_memory().total / 2**30, 1)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent.parent)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def table(rows: Sequence[Row]) -> str:
    lines = ["| workload | measurement | n | median | max | mean |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        s = r.summary
        lines.append(f"| {r.workload} | {r.measurement} | {s.n} | {_fmt(s.median, r.unit)} | "
                     f"{_fmt(s.max, r.unit)} | {_fmt(s.mean, r.unit)} |")
    return "\n".join(lines)


def section(suite: str, command: str, facts: dict[str, Any], results: Sequence[dict[str, Any]],
            wall_s: float) -> str:
    """The Markdown section for one suite run."""
    rows = [row for res in results for row in res["rows"]]
    mem = f", {facts['memory_gib']} GiB RAM" if facts.get("memory_gib") else ""
    out = [
        f"## Results: `{suite}`",
        "",
        f"Produced by `{command}` (whole run: {wall_s:.0f} s) on {facts['date']}.",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}){mem}; {facts['kernel']}; "
        f"{facts['implementation']} {facts['python']}; proofwatch {facts['proofwatch']} "
        f"(commit {facts['commit']}).",
        "",
        table(rows),
        "",
    ]
    for res in results:
        for note in res.get("notes", []):
            out.append(f"- {res['name']}: {note}")
    out.append("")
    return "\n".join(out)


HEADER = """\
# Performance

What it costs, and how fast proofwatch notices what it exists to notice. Every number below is
measured on the **real daemon**: `python -m bench` (or `make bench`) starts
`proofwatch run --config <tmp>/config.toml` as a subprocess in its own temporary directory,
with real worker processes (small Python scripts using `workers.sdk`), and reads the results
from the daemon's own records — the history database (`<state_dir>/history.db`, tables
`events` and `runs`) and `status.json` — never from in-process hooks. The daemon's event
timestamps are its wall clock in UTC, the same clock as `time.time()` in the bench.

## Method

**Stall detection** (`bench/stall.py`). Ten task jobs in one daemon with
`stall_after = "2s"` (every other key at its default). Each worker heartbeats with progress
(a counter rising every 0.2 s) for a staggered 1–4 s, so no two deadlines coincide, then keeps
heartbeating every 0.25 s *without* progress. Latency = ts of the job's RUNNING→STALLED
event − (`runs.last_progress_at` + `stall_after`), where `last_progress_at` is the daemon's
receipt time of the last progressing heartbeat as recorded in history.db. Each worker also
records when it wrote its last progressing heartbeat, which gives the heartbeat intake delay
(write → receipt) and the end-to-end figure (worker's last progress + `stall_after` → STALLED).

**Death detection** (`bench/death.py`). One service job heartbeating every 0.1 s. The bench
sends SIGKILL to the worker at a known instant (`time.time()` just before `os.kill`) and reads
the ts of the event where that run went to FAILED (*noticed*) and of the job's next STARTING
event (*replacement spawned*), plus the new run's first heartbeat (RUNNING; this one is mostly
the worker's own interpreter start-up). Twenty kills, each after the run has been up for
`stable_after` (set to 1 s), so each is a first failure and is restarted at once rather than
after a backoff.

**Idle overhead** (`bench/overhead.py`). Fifty service jobs, each a worker heartbeating once a
second through `workers.sdk` with a rising counter. After all are RUNNING and 5 s of warm-up,
psutil samples the daemon process alone (not its children) for 60 s: RSS once a second, CPU as
(user + system) time over wall time in % of one core (mean over the window; median and max of
5-second intervals, since the kernel counts CPU time in 10 ms ticks), and status.json writes,
counted by sampling the file's inode and mtime at 20 Hz (a lower bound: writes under 50 ms
apart count once).

Options: `python -m bench [core|stall|death|overhead] [--runs N] [--jobs N] [--duration S]
[--out FILE] [--keep]`. `--runs` sets the repetitions of the latency workloads (default 10
stalls, 20 kills), `--jobs` the number of overhead jobs, `--duration` the overhead window.
Raw samples of every run go to `bench/results/` (not committed). Each suite rewrites only its
own section below. A result past a bound the README promises (a stall flagged within about a
second of its deadline; a first restart within 100 ms of the death) is called out in the notes
under the table.
"""


def write(path: Path, suite: str, body: str) -> None:
    """Replace (or append) the suite's section in `path`, creating the file with its header."""
    begin, end = f"<!-- bench:{suite}:begin -->", f"<!-- bench:{suite}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def command_line(argv: Sequence[str]) -> str:
    """How this run was invoked, as one shell line."""
    import shlex

    exe = sys.executable
    try:
        rel = os.path.relpath(exe)
        if not rel.startswith(".."):
            exe = rel
    except ValueError:
        pass
    return shlex.join([exe, "-m", "bench", *argv])
