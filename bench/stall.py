"""Stall detection latency: how long after its deadline a stalled run is flagged.

N task jobs run in one daemon, `stall_after = "2s"`. Each worker heartbeats with progress
(a counter rising every 0.2 s) for a staggered time (1 s + 0.35 s * i, so no two deadlines
coincide), then keeps heartbeating every 0.25 s WITHOUT progress: alive, not working.

    latency = ts(RUNNING->STALLED event) - (runs.last_progress_at + stall_after)

`runs.last_progress_at` is the daemon's receipt time of the last progressing heartbeat, as the
daemon recorded it in history.db. Each worker also writes the wall-clock time at which it
started its last progressing heartbeat to a side file (outside the runs directory), which gives
the heartbeat intake delay (worker write -> daemon receipt) and the end-to-end latency
(worker's last progress + stall_after -> STALLED).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench._daemon import BenchDaemon
from bench._report import Row, summarize

NAME = "stall"
DEFAULT_RUNS = 10
STALL_AFTER = 2.0
PROGRESS_FOR = 1.0  # seconds of progress before the first job gets stuck
STAGGER = 0.35  # each further job progresses this much longer
DOCUMENTED_BOUND_MS = 1000.0  # README: "a stall is flagged within about a second of its deadline"

WORKER = """
import json, os, sys, time
from workers.sdk import Run

progress_for, out = float(sys.argv[1]), sys.argv[2]
run = Run.from_env()
end = time.monotonic() + progress_for
i = 0
while True:
    i += 1
    wrote = time.time()
    run.beat({"items": i}, phase="work", message=f"item {i}", force=True)
    if time.monotonic() >= end:
        break
    time.sleep(0.2)
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump({"last_progress_written": wrote, "items": i}, f)
os.replace(tmp, out)
while True:  # stuck: liveness without progress
    time.sleep(0.25)
    run.beat({"items": i}, message="waiting for a lock", force=True)
"""


def run(*, runs: int | None = None, keep: bool = False, **_: Any) -> dict[str, Any]:
    """Measure stall detection latency over `runs` stalls; return rows and raw samples."""
    n = runs or DEFAULT_RUNS
    d = BenchDaemon(NAME, keep=keep)
    worker = d.script("stuck.py", WORKER)
    side = d.dir / "worker-out"
    side.mkdir()
    names = [f"stuck{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        d.job(name, ["python", str(worker), f"{PROGRESS_FOR + STAGGER * i:.2f}", str(side / f"{name}.json")],
              kind="task", stall_after=f"{int(STALL_AFTER * 1000)}ms", on_stall="alert")
    samples: list[dict[str, Any]] = []
    with d:
        # generous: a daemon that misses the deadline should yield a (bad) number, not a timeout;
        # 90 s covers a reconciler that sleeps until the default startup_grace (60 s)
        timeout = 90 + PROGRESS_FOR + STAGGER * n + STALL_AFTER
        d.wait(lambda: len({e.job for e in d.history.events(to_state="STALLED")}) >= n,
               timeout, f"{n} jobs to be STALLED")
        for name in names:
            ev = next(e for e in d.history.events(job=name, to_state="STALLED"))
            row = d.history.run(ev.run_id or "")
            assert row is not None and row.last_progress_at is not None, f"{name}: no last_progress_at"
            worker_out = json.loads(Path(side / f"{name}.json").read_text())
            deadline = row.last_progress_at + STALL_AFTER
            samples.append({
                "job": name,
                "run_id": ev.run_id,
                "from_state": ev.from_state,
                "stalled_at": ev.ts,
                "last_progress_at": row.last_progress_at,
                "worker_last_progress_written": worker_out["last_progress_written"],
                "latency_ms": (ev.ts - deadline) * 1000,
                "intake_ms": (row.last_progress_at - worker_out["last_progress_written"]) * 1000,
                "end_to_end_ms": (ev.ts - worker_out["last_progress_written"] - STALL_AFTER) * 1000,
            })
    not_from_running = [s["job"] for s in samples if s["from_state"] != "RUNNING"]
    notes = [f"{n} task jobs in one daemon, stall_after = \"2s\", deadlines staggered by {STAGGER:g} s."]
    if not_from_running:
        notes.append(f"not RUNNING before STALLED: {', '.join(not_from_running)}")
    late = [s["job"] for s in samples if s["latency_ms"] > DOCUMENTED_BOUND_MS]
    if late:
        notes.append(f"**over the documented bound** (flagged within about a second of the deadline): "
                     f"{len(late)} of {n} stalls were flagged more than {DOCUMENTED_BOUND_MS / 1000:g} s late.")
    rows = [
        Row(NAME, "stall flagged after its deadline (STALLED ts - (last_progress_at + stall_after))",
            summarize([s["latency_ms"] for s in samples]), "ms"),
        Row(NAME, "heartbeat intake (worker writes a progressing beat -> daemon's last_progress_at)",
            summarize([s["intake_ms"] for s in samples]), "ms"),
        Row(NAME, "end to end (worker's last progress + stall_after -> STALLED ts)",
            summarize([s["end_to_end_ms"] for s in samples]), "ms"),
    ]
    return {"name": NAME, "rows": rows, "samples": samples, "notes": notes,
            "params": {"runs": n, "stall_after_s": STALL_AFTER}}
