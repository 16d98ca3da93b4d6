"""`python -m bench.fleet_store`: heartbeat-write throughput of the history store, PostgreSQL
(3 daemons sharing one database, the fleet) against SQLite (3 daemons, each its own
history.db, the single-host default), in one invocation.

What a heartbeat writes: nothing by itself. The daemon keeps a run's heartbeat and progress in
memory (status.json); the history gets the run's row (`recorder.run(_run_row(run))`) on each
transition, and events on transitions, exits and errors. So the store's load per beat is at most
one run-row upsert, and the daemon's recorder coalesces upserts by run_id: a job beating 10 times
between two batches costs one row. This bench drives that write path at its worst:

- `upsert`: every heartbeat hands the recorder its run's full row (state, heartbeat and progress
  times, progress counters), i.e. as if every beat were a transition. Coalesced by run_id.
- `append`: every heartbeat appends one event row (not coalesced): the raw row throughput of a
  store, and the point where the queue stops being bounded.

Each "daemon" is its own process (`worker`): the real supervisor.recorder.Recorder over the real
status.history.History (the daemon's single writer thread, batches, one transaction per batch),
fed by an anyio task that hands over JOBS rows at RATE Hz each, spread over 10-ms slots. The three
processes run every step at the same time. Per step: beats/s handed over, rows/s committed,
rows per batch, batch commit latency p50/p99, the age of a row when committed (beat -> commit)
p50/p99, the queue depth (max while running, and the time to drain it after). A step is
saturated when the queue does not drain within 2 s after it or the producers fall behind; the
rates above a saturated one are skipped.

PostgreSQL runs with its production defaults (fsync, synchronous_commit on), in a throwaway
data dir on loopback (tests/fleet/pg.py's server); SQLite as the daemon opens it (WAL,
synchronous=NORMAL). Writes bench/results/fleet_store.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "fleet_store.json"
SLOT = 0.01  # seconds between two hand-overs of a producer
DAEMONS = 3
JOBS = 200
JOBS_RUN = JOBS  # --jobs
RATES = {"upsert": [1, 2, 5, 10, 20, 50], "append": [1, 5, 20, 50, 100]}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# ---- the worker: one daemon's recorder -----------------------------------------------------

async def _worker(url: str, host: str, jobs: int, tmp: Path) -> None:
    import anyio
    import anyio.to_thread

    from status.history import Batch, History
    from supervisor.recorder import Recorder

    history = History(url, host=host)
    rec = Recorder(history, tmp / f"alerts-{host}.jsonl")
    batches: list[tuple[float, int]] = []  # (commit seconds, rows)
    ages: list[float] = []
    real_apply = history.apply

    def apply(batch: Batch) -> None:
        t = time.perf_counter()
        real_apply(batch)
        batches.append((time.perf_counter() - t, len(batch.runs) + len(batch.events)))
        now = datetime.now(timezone.utc)
        for r in batch.runs:
            ages.append((now - r["last_heartbeat_at"]).total_seconds())  # type: ignore[index]
        for e in batch.events:
            ages.append((now - e["ts"]).total_seconds())  # type: ignore[index]

    history.apply = apply  # type: ignore[method-assign]
    started = datetime.now(timezone.utc)
    names = [f"j{i:03d}" for i in range(jobs)]

    async def step(mode: str, rate: float, seconds: float) -> dict[str, Any]:
        batches.clear()
        ages.clear()
        handed, job_i, tick, max_q = 0, 0, 0, 0
        cpu0, t0 = time.process_time(), time.monotonic()
        end = t0 + seconds
        while (now := time.monotonic()) < end:
            due = int(jobs * rate * (now - t0))  # beats owed by now: a slow loop catches up
            while handed < due:
                name = names[job_i]
                job_i = (job_i + 1) % jobs
                tick += 1
                ts = datetime.now(timezone.utc)
                if mode == "upsert":
                    rec.run({"run_id": f"{host}-{name}", "job": name, "state": "RUNNING", "started_at": started,
                             "pid": 1000 + job_i, "run_dir": f"/var/runs/{name}/{host}", "phase": "work",
                             "message": f"tick {tick}", "progress": {"ticks": float(tick)},
                             "last_heartbeat_at": ts, "last_progress_at": ts})
                else:
                    rec.event({"ts": ts, "job": name, "run_id": f"{host}-{name}", "kind": "bench",
                               "reason": f"beat {tick}"})
                handed += 1
            max_q = max(max_q, rec.queued())
            await anyio.sleep(SLOT)
        elapsed = time.monotonic() - t0
        q_end = rec.queued()
        d0 = time.monotonic()
        while (rec.queued() or rec._busy) and time.monotonic() - d0 < 30:
            await anyio.sleep(0.01)
        drain = time.monotonic() - d0
        committed = sum(n for _, n in batches)
        lat = [s for s, _ in batches]
        return {"host": host, "mode": mode, "rate": rate, "seconds": elapsed, "handed": handed,
                "committed": committed, "batches": len(batches),
                "batch_ms": [round(s * 1000, 3) for s in lat],
                "age_p50_ms": (_pct(ages, 0.5) or 0) * 1000, "age_p99_ms": (_pct(ages, 0.99) or 0) * 1000,
                "max_queued": max_q, "queued_at_end": q_end, "drain_s": drain,
                "short": int(jobs * rate * elapsed) - handed, "cpu_s": time.process_time() - cpu0,
                "failing": rec.failing}

    async with anyio.create_task_group() as tg:
        tg.start_soon(rec.serve)
        print(json.dumps({"ready": host}), flush=True)
        while True:
            line = (await anyio.to_thread.run_sync(sys.stdin.readline)).split()
            if not line or line[0] == "quit":
                break
            res = await step(line[1], float(line[2]), float(line[3]))
            print(json.dumps(res), flush=True)
        tg.cancel_scope.cancel()
    history.close()


# ---- the parent ----------------------------------------------------------------------------

class _Daemons:
    """DAEMONS worker processes on one store URL each (a list of DAEMONS urls)."""

    def __init__(self, urls: list[str], jobs: int, tmp: Path) -> None:
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "bench.fleet_store", "worker", "--url", url, "--host", f"host{i + 1}",
             "--jobs", str(jobs), "--tmp", str(tmp)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
            for i, url in enumerate(urls)]
        for p in self.procs:
            self._read(p)

    @staticmethod
    def _read(p: subprocess.Popen[str]) -> dict[str, Any]:
        line = p.stdout.readline() if p.stdout else ""
        if not line:
            raise RuntimeError(f"bench worker {p.pid} died (exit {p.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def step(self, mode: str, rate: float, seconds: float) -> list[dict[str, Any]]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(f"step {mode} {rate} {seconds}\n")
            p.stdin.flush()
        return [self._read(p) for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            try:
                assert p.stdin is not None
                p.stdin.write("quit\n")
                p.stdin.flush()
                p.wait(timeout=30)
            except Exception:
                p.kill()


def _summary(backend: str, res: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [x for r in res for x in r["batch_ms"]]
    seconds = max(r["seconds"] for r in res)
    handed = sum(r["handed"] for r in res)
    committed = sum(r["committed"] for r in res)
    offered = sum(JOBS_RUN * r["rate"] for r in res)
    # saturated: the queue did not drain within 2 s, or the producers (3 processes on the same
    # cores as the writers and the server) could not hand over 90% of the offered beats
    saturated = any(r["drain_s"] > 2 or r["failing"] for r in res) or handed < 0.9 * offered * seconds
    return {"backend": backend, "mode": res[0]["mode"], "rate": res[0]["rate"],
            "offered_per_s": offered, "handed_per_s": handed / seconds, "committed_per_s": committed / seconds,
            "rows_per_batch": committed / max(1, sum(r["batches"] for r in res)),
            "batch_p50_ms": _pct(lat, 0.5), "batch_p99_ms": _pct(lat, 0.99),
            "age_p50_ms": statistics.median(r["age_p50_ms"] for r in res),
            "age_p99_ms": max(r["age_p99_ms"] for r in res),
            "max_queued": max(r["max_queued"] for r in res), "drain_s": max(r["drain_s"] for r in res),
            "cpu_per_daemon": statistics.mean(r["cpu_s"] / r["seconds"] for r in res),
            "saturated": saturated, "errors": [r["failing"] for r in res if r["failing"]]}


def _run_backend(backend: str, urls: list[str], seconds: float, tmp: Path, modes: list[str]) -> list[dict[str, Any]]:
    out = []
    daemons = _Daemons(urls, JOBS_RUN, tmp)
    try:
        for mode in modes:
            for rate in RATES[mode]:
                print(f"bench: {backend} {mode} {DAEMONS} x {JOBS_RUN} jobs at {rate} Hz ...", file=sys.stderr,
                      flush=True)
                row = _summary(backend, daemons.step(mode, rate, seconds))
                out.append(row)
                print(f"  handed {row['handed_per_s']:,.0f}/s committed {row['committed_per_s']:,.0f}/s "
                      f"batch p50 {row['batch_p50_ms']:.1f} ms p99 {row['batch_p99_ms']:.1f} ms "
                      f"age p99 {row['age_p99_ms']:.0f} ms max queued {row['max_queued']} "
                      f"drain {row['drain_s']:.2f} s{' SATURATED' if row['saturated'] else ''}",
                      file=sys.stderr, flush=True)
                if row["saturated"]:
                    break
    finally:
        daemons.close()
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    sqlite = {(r["mode"], r["rate"]): r for r in rows if r["backend"] == "sqlite"}
    lines = ["| mode | Hz/job | store | beats/s handed over | rows/s committed | rows/batch | batch p50 / p99 ms "
             "| beat->commit p50 / p99 ms | max queued | drain s | CPU/daemon | PG/SQLite rows/s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        peer = sqlite.get((r["mode"], r["rate"]))
        ratio = (f"{r['committed_per_s'] / peer['committed_per_s']:.2f}"
                 if r["backend"] == "postgresql" and peer and peer["committed_per_s"] else "")
        lines.append(
            f"| {r['mode']} | {r['rate']:g} | {r['backend']} | {r['handed_per_s']:,.0f} | {r['committed_per_s']:,.0f} "
            f"| {r['rows_per_batch']:.0f} | {r['batch_p50_ms'] or 0:.1f} / {r['batch_p99_ms'] or 0:.1f} "
            f"| {r['age_p50_ms']:.0f} / {r['age_p99_ms']:.0f} | {r['max_queued']:,} | {r['drain_s']:.2f}"
            f"{' **saturated**' if r['saturated'] else ''} | {r['cpu_per_daemon']:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global JOBS_RUN
    p = argparse.ArgumentParser(prog="python -m bench.fleet_store", description=__doc__.split("\n\n")[0])
    p.add_argument("role", nargs="?", default="run", choices=["run", "worker"])
    p.add_argument("--seconds", type=float, default=5.0, help="length of each step (default 5)")
    p.add_argument("--jobs", type=int, default=JOBS, help=f"jobs per daemon (default {JOBS})")
    p.add_argument("--modes", default="upsert,append", help="upsert,append (default both)")
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--host", help=argparse.SUPPRESS)
    p.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "worker":
        import anyio

        anyio.run(_worker, args.url, args.host, args.jobs, args.tmp)
        return 0
    JOBS_RUN = args.jobs
    modes = [m for m in args.modes.split(",") if m]
    from bench import _report
    from status.history import History
    from tests.fleet.pg import PostgresServer

    class ProductionPostgres(PostgresServer):
        """The test server, with PostgreSQL's durable defaults (fsync, synchronous_commit on)."""

        def start(self) -> None:
            opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                    "-c max_connections=200")
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "30", "start")

    facts = _report.machine()
    facts["load_before"] = round(os.getloadavg()[0], 2)
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pwb-fleet-") as tmpdir:
        tmp = Path(tmpdir)
        server = ProductionPostgres()
        try:
            url = server.create_db()
            History(url).close()  # migrate once, before three daemons open it
            import psycopg

            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
                pg_version = conn.execute("show server_version").fetchone()[0]  # type: ignore[index]
            rows += _run_backend("postgresql", [url] * DAEMONS, args.seconds, tmp, modes)
        finally:
            server.close()
        sqlite_urls = [f"sqlite:///{tmp / f'history-{i}.db'}" for i in range(DAEMONS)]
        rows += _run_backend("sqlite", sqlite_urls, args.seconds, tmp, modes)
    facts["load_after"] = round(os.getloadavg()[0], 2)
    facts["postgresql"] = pg_version
    wall = time.monotonic() - t0
    order = {"upsert": 0, "append": 1}
    rows.sort(key=lambda r: (order[r["mode"]], r["rate"], r["backend"] != "postgresql"))
    table = _table(rows)
    command = ".venv/bin/python -m bench.fleet_store" + ("" if not argv else " " + " ".join(argv))
    print(f"\n{command}  ({wall:.0f} s; {facts['nproc']} cores, {facts['cpu']}; PostgreSQL {pg_version}; "
          f"load {facts['load_before']} -> {facts['load_after']})\n\n{table}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"command": command, "machine": facts, "wall_s": wall, "daemons": DAEMONS,
                                   "jobs": JOBS_RUN, "seconds": args.seconds, "rows": rows}, indent=1, default=str))
    print(f"bench: raw results in {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
