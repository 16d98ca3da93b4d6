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

How fast proofwatch notices what it exists to notice, what it costs, and how that compares with
the supervisors people already use: **supervisord** and **Monit**, run side by side with
proofwatch on the same machine, the same children and the same workloads, in one invocation.

```sh
make bench                 # installs the peers, runs everything (< 10 min), prints the comparison,
                           # rewrites the "compare" section below; raw data in bench/results/*.json
python -m bench --quick    # smoke run: N = 50 only, 5 kills, 5-s windows (about 1.5 min)
python -m bench --only proofwatch,monit --workloads crash,hang --sizes 50,200 --kills 10
python -m bench core       # proofwatch alone: the older single-daemon micro-benchmarks (last section)
```

`make bench` first runs `scripts/install-bench-deps.sh`, which installs the peers the way their
users do: **supervisord 4.3.0 from PyPI into its own virtual environment**, `bench/.venv-supervisord`
(never into proofwatch's: its import name `supervisor` collides with ours), and **Monit from
Debian** (`apt-get install monit`; the Debian service is not started — the bench runs its own
`monit -I` on its own control file and stops it). A partial run (`--quick`, `--only`,
`--workloads`, `--sizes`, `--kills`, `--window`) prints its tables and writes its JSON but leaves
this file alone unless `--out FILE` is given.

## How the comparison is run

**The same child everywhere.** Every supervisor runs N jobs (N = 50, 200, 1,000) of one
trivial long-running child, `bash child.sh RECDIR NAME TAG` (bench/_procs.py): it writes its pid
and its own start time (`$EPOCHREALTIME`) to a record file, prints one line, and
`exec -a TAG sleep infinity`. The start stamp is the instant the child is running, taken by the
child itself, so "spawned" and "replacement running" mean the same thing under every
supervisor; the process table is checked as well. Every TAG carries the run's token, and a final
sweep of /proc kills anything the bench started, also on errors and Ctrl-C.

**How each supervisor is set up** (bench/_targets.py), each in its own temp directory:

- proofwatch: `proofwatch run --config config.toml`, one `kind = "service"` job per child,
  `stall_after = "5s"`, `startup_grace = "1h"` (a child that never heartbeats stays STARTING,
  quietly), `on_stall = "alert"`, everything else at its default.
- supervisord: `supervisord -n -c supervisord.conf`, one `[program:x]` per child,
  `autorestart = true`, `startsecs = 0` (running at once, so no start check delays a restart),
  `redirect_stderr = true`, logs in the temp dir.
- Monit: `monit -I -c monitrc` with `set daemon 1` — its shortest cycle, what you would pick to
  compete on latency (most installations use 30–120 s) — and one
  `check process x with pidfile ...` per child whose start program launches the child in the
  background (Monit waits for a start program to exit). Monit double-forks, so its children are
  re-parented; PID 1 on this VM does not reap, so the bench makes itself the subreaper and reaps
  at once, as a normal init would (otherwise Monit sees a zombie and restarts a cycle later).

**Order, and A/B.** For each N: proofwatch alone (spawn, steady state); supervisord beside the
idle proofwatch (spawn, steady state — supervisord's cost does not depend on other processes);
then the crash kills alternate between the two (A/B, B/A, ...), each kill hitting a different,
randomly chosen child after a random 50–250 ms pause (so tick-bound supervisors are hit at a
random phase); then proofwatch alone again for the heartbeat workloads; then Monit alone
(spawn, steady state, crash) and Monit's file checks for the hang. Kill choice is seeded.

**Heartbeats.** proofwatch's heartbeats are written through `workers.sdk` (the SDK's atomic
temp-file + rename, each with a rising counter) by one helper process, `bench/_beater.py`, on
behalf of the N sleeping children, evenly spread over each period. What the daemon sees is
exactly what N heartbeating workers would produce, without 1,000 Python interpreters (40 ms of
CPU and 14 MB each to start) fighting the daemon for two cores.

**The workloads** (exact rules in the notes under each table below):

1. *spawn* — from just before the supervisor is launched until the last child's start stamp.
   Monit starts services one at a time and waits for each (~0.2 s per service here: 43 s for
   N = 200 in a trial run), so above N = 50 the bench starts the children itself and Monit
   adopts them; its spawn figure is measured at N = 50 only.
2. *crash* — `kill -9` at a known instant, each kill of a different random child; 20 kills per N
   for proofwatch, 10 for each peer (every peer restart waits for its 1-s tick or cycle, so each
   of their kills costs ~2 s of the budget); *noticed* = the supervisor's own record of the exit
   (proofwatch: the FAILED/CRASHED event in history.db; supervisord: its `exited:` log line,
   millisecond timestamps; Monit: its `process is not running` line, timed by the bench as it
   appears, since Monit logs whole seconds); *replacement running* = the new child's start stamp.
3. *hang* — proofwatch: every job's heartbeats go on (1 Hz) but stop carrying progress, all N
   at once with deadlines spread over a second; latency = STALLED event − (the worker's last
   progressing write + 5 s). This end-to-end figure is the one judged: it includes the heartbeat
   intake, which the daemon's own `last_progress_at` does not (both are shown). Monit: one
   `check file ... if timestamp > 5 seconds then alert` per job, files touched once a second
   until they stop. supervisord cannot detect a hang at all; its row says so.
4. *steady state* — the supervisor process alone (not its children): CPU as (user + system)
   time over the window in % of one core, RSS sampled once a second. proofwatch twice: children
   that never heartbeat, and every child heartbeating once a second; peers with idle children.
   60 s for proofwatch at N = 200 (where the targets are), 15 s for the peers at N = 200; 8 s
   (proofwatch) and 6 s (peers) at N = 50 and 1,000 — chosen to keep `make bench` under 10
   minutes on 2 cores; CPU time is counted in 10 ms ticks, so a 6-s window resolves ±0.2 %.
5. *heartbeat ingest* — every job beating at 10 Hz for 8 s (offered N × 10 beats/s; the
   achieved rate is reported: one helper process cannot write 10,000 files a second on this
   disk, each atomic write costs ~0.3 ms): the daemon's CPU, status.json
   rewrites counted exactly with inotify, and any STALLED raised while everything progressed
   (watched until 6 s after the 10 Hz window).
6. *status write cost* — status.json's size, and each atomic write timed from outside with
   inotify (temp file created → renamed onto status.json: write + fsync), plus a replay of the
   daemon's own `dump_status` and `write_atomic` on the real document.

Targets (from the issue) are judged at the end of the generated section. The daemon is being
optimised while this harness is written: the figures below are the latest full run, not a
final verdict.
"""


class OutError(ValueError):
    """The Markdown file to update is not a regular file."""


def check_out(path: Path) -> None:
    """OutError unless `path` is a regular file or does not exist yet."""
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise OutError(f"--out {path}: not a regular file (the report is written to a temp file "
                       "and renamed over it); give a Markdown file, or leave --out out")


def write(path: Path, suite: str, body: str) -> None:
    """Replace (or append) the suite's section in `path`, creating the file with its header.
    Only a regular file is rewritten (atomically): `--out /dev/null` must not replace the
    device with a file, so anything else is refused before the run."""
    check_out(path)
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
