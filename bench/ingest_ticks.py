"""`python -m bench.ingest_ticks`: sustained ingest throughput of workers.ingestor.

Two measurements, reported side by side:

1. end-to-end: the sandbox (its own process, `--batch` trades per push, two instruments)
   pushes `--rate` trades/s per instrument over a loopback WebSocket; the ingestor (its own
   process, exactly as proofwatch runs it) parses, de-duplicates and writes Parquet. ticks/s
   is the growth of the stored count between two manifest rewrites (their `updated_at`), over
   `--seconds` after a warm-up; peak RSS is the ingestor's VmHWM. The offered (served) rate and
   the ingestor's lag behind the sandbox clock at the end show whether it kept up: the sandbox,
   not the ingestor, may be the limit.
2. in-process: the same code path (messages.parse_ws -> Ingest.add_trades -> Writer.flush:
   Parquet parts, compaction, manifest) fed from pre-serialised BloFin pushes, in a child
   process; no network, no sandbox: the ingestor's own ceiling. Flushes are not overlapped
   with parsing here (the service overlaps them in a worker thread), so this is a lower bound.

Prints a Markdown table and writes bench/results/ingest_ticks.json. Target: >= 50,000 ticks/s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._report import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "ingest_ticks.json"
INSTS = ["BTC-USDT", "ETH-USDT"]
TARGET = 50_000.0
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm(pid: int) -> int | None:
    """Peak RSS in bytes (Linux VmHWM), or None where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def wait_for(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"bench: timed out waiting for {what}")


def read_manifest(data: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data / "ticks" / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return None


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def end_to_end(rate: float, batch: int, seconds: float, warmup: float, tmp: Path) -> dict[str, Any]:
    """Sandbox and ingestor as two processes over loopback."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "workers.sandbox", "--port", str(port), "--rate", str(rate),
         "--batch", str(batch), "--conn-per-sec", "0", "--rest-per-min", "0",
         "--instruments", ",".join(INSTS), "--history-minutes", "2", "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "sandbox.log", "wb"))
    ingestor: subprocess.Popen[bytes] | None = None
    try:
        wait_for("the sandbox", lambda: _state(base), 30.0)
        data = tmp / "data"
        env = {**os.environ, "PROOFWATCH_HEARTBEAT": str(tmp / "heartbeat.json")}
        ingestor = subprocess.Popen(
            [sys.executable, "-m", "workers.ingestor", "--ws-url", f"ws://127.0.0.1:{port}/ws/public",
             "--rest-url", base, "--instruments", ",".join(INSTS), "--data-dir", str(data),
             "--flush-rows", "50000", "--flush-seconds", "1", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=open(tmp / "ingestor.log", "wb"))
        ps = psutil.Process(ingestor.pid)
        wait_for("the first flush", lambda: (m := read_manifest(data)) and m["totals"]["ticks"], 30.0)
        time.sleep(warmup)  # steady state: the measurement window starts after it
        samples, cpu0, served0 = [], ps.cpu_times(), _busy_state(base)
        t0 = time.monotonic()
        rss_max = 0
        while time.monotonic() - t0 < seconds:
            m = read_manifest(data)
            if m and (not samples or samples[-1][1] != m["totals"]["ticks"]):
                samples.append((datetime.fromisoformat(m["updated_at"]).timestamp(),
                                m["totals"]["ticks"]))
            rss_max = max(rss_max, ps.memory_info().rss)
            time.sleep(0.1)
        wall = time.monotonic() - t0
        cpu1, served1 = ps.cpu_times(), _busy_state(base)
        peak = vm_hwm(ingestor.pid) or rss_max
        m = read_manifest(data) or {}
        lag_ms = served1["now_ms"] - min(v["last_ts_ms"] for v in m["instruments"].values())
        backlog = served1["counters"]["trades_served"] - m["totals"]["ticks"]
        rc = stop(ingestor)
        final = read_manifest(data) or {}
    finally:
        if ingestor is not None:
            stop(ingestor)
        stop(sandbox)
    (t_a, n_a), (t_b, n_b) = samples[0], samples[-1]
    cpu_s = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    cpu = cpu_s / wall
    served = served1["counters"]["trades_served"] - served0["counters"]["trades_served"]
    return {
        "measurement": "end-to-end",
        "offered_ticks_per_s": rate * len(INSTS),
        "batch": batch,
        "ticks": n_b - n_a,
        "seconds": round(t_b - t_a, 3),
        "ticks_per_s": (n_b - n_a) / (t_b - t_a) if t_b > t_a else 0.0,
        "served_ticks_per_s": served / wall,
        "lag_ms_at_end": lag_ms,
        "backlog_at_end": backlog,
        "peak_rss_mib": peak / MIB,
        "cpu_cores": cpu,
        "cpu_us_per_tick": cpu_s * 1e6 / max(n_b - n_a, 1),
        "slow_consumer_drops": served1["counters"]["slow_drops"],
        "exit_code_after_sigterm": rc,
        "stored_total": final.get("totals", {}).get("ticks"),
        "files": final.get("totals", {}).get("files"),
        "gaps": final.get("totals", {}).get("gaps"),
    }


def _state(base: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        return httpx.get(f"{base}/_sandbox/state", timeout=timeout).json()
    except (httpx.HTTPError, ValueError):
        return None


def _busy_state(base: str) -> dict[str, Any]:
    """The sandbox's counters while it pushes flat out (its loop answers slowly then)."""
    state = _state(base, timeout=20.0)
    if state is None:
        raise SystemExit("bench: the sandbox did not answer /_sandbox/state within 20 s")
    return state


def in_process(trades: int, tmp: Path) -> dict[str, Any]:
    """The parse + de-dup + write path in a child process (clean RSS)."""
    env = {**os.environ}
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")  # as `python -m workers.ingestor`
    out = subprocess.run([sys.executable, "-m", "bench.ingest_ticks", "--_inproc", str(trades),
                          "--_dir", str(tmp)], cwd=ROOT, env=env, capture_output=True, check=True)
    return json.loads(out.stdout)


def _inproc_child(trades: int, tmp: Path) -> dict[str, Any]:
    import anyio

    from workers.ingestor.config import Settings
    from workers.ingestor.ingest import Ingest
    from workers.ingestor.messages import parse_ws
    from workers.ingestor.report import Reporter
    from workers.ingestor.resume import open_stores
    from workers.ingestor.writer import Writer
    from workers.sdk import Run

    cpu0 = time.process_time()
    per_push = 100
    t0 = 1_795_000_000_000
    pushes: list[str] = []
    for k in range(trades // per_push):
        inst = INSTS[k % 2]
        base = k * per_push
        data = ",".join(
            f'{{"instId":"{inst}","tradeId":"{3_000_000_000 + base + i}",'
            f'"price":"{60000 + (base + i) % 977 / 10:.1f}","size":"{1 + (base + i) % 53}",'
            f'"side":"{"buy" if i % 3 else "sell"}","ts":"{t0 + (base + i) // 20}"}}'
            for i in range(per_push))
        pushes.append(f'{{"arg":{{"channel":"trades","instId":"{inst}"}},"data":[{data}]}}')
    settings = Settings(ws_url="ws://bench", rest_url="http://bench", instruments=tuple(INSTS),
                        data_dir=tmp / "inproc", flush_rows=50_000)
    stores = open_stores(settings)
    ingest = Ingest(INSTS, window=settings.dedup_window)
    writer = Writer(settings, stores, ingest, Reporter(Run(None), len(INSTS)))
    rss_before = psutil.Process().memory_info().rss

    async def run() -> float:
        start = time.perf_counter()
        for raw in pushes:
            msg = parse_ws(raw)
            ingest.add_trades(msg.inst, msg.trades, pushed=True)
            if ingest.pending_rows >= settings.flush_rows:
                await writer.flush()
        await writer.flush()
        return time.perf_counter() - start

    gen_cpu = time.process_time() - cpu0
    cpu1 = time.process_time()
    elapsed = anyio.run(run)
    cpu = time.process_time() - cpu1
    stored = stores.manifest.ticks
    return {
        "measurement": "in-process",
        "ticks": stored,
        "seconds": round(elapsed, 3),
        "ticks_per_s": stored / elapsed,
        "cpu_us_per_tick": cpu * 1e6 / max(stored, 1),
        "generation_cpu_s": gen_cpu,
        "input_mib": sum(len(p) for p in pushes) / MIB,
        "rss_before_mib": rss_before / MIB,
        "peak_rss_mib": (vm_hwm(os.getpid()) or psutil.Process().memory_info().rss) / MIB,
        "files": len(list((tmp / "inproc" / "ticks").glob("inst=*/date=*/part-*.parquet"))),
        "arrow_memory_pool": os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "default"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| measurement | ticks | seconds | ticks/s | CPU µs/tick | peak RSS (MiB) | notes |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["measurement"] == "end-to-end":
            note = (f"offered {r['offered_ticks_per_s']:,.0f}/s (batch {r['batch']}), served "
                    f"{r['served_ticks_per_s']:,.0f}/s, at the end: newest stored trade "
                    f"{r['lag_ms_at_end']} ms behind the sandbox clock, "
                    f"{r['backlog_at_end']:,} served but not yet flushed, "
                    f"{r['cpu_cores']:.2f} cores, {r['slow_consumer_drops']} slow drops, "
                    f"exit {r['exit_code_after_sigterm']} on SIGTERM")
        else:
            note = (f"pre-serialised pushes of 100 trades ({r['input_mib']:.0f} MiB input, RSS "
                    f"{r['rss_before_mib']:.0f} MiB before), flushes of 50,000 rows, "
                    f"{r['files']} files")
        served = r.get("served_ticks_per_s")
        if r["ticks_per_s"] >= TARGET:
            verdict = f"meets {TARGET:,.0f}"
        elif served is not None and served < TARGET and r["ticks_per_s"] >= 0.95 * served:
            verdict = f"kept up; the sandbox served only {served:,.0f}/s"
        else:
            verdict = f"BELOW {TARGET:,.0f}"
        lines.append(f"| {r['measurement']} | {r['ticks']:,} | {r['seconds']:.1f} | "
                     f"{r['ticks_per_s']:,.0f} ({verdict}) | "
                     f"{r['cpu_us_per_tick']:.1f} | {r['peak_rss_mib']:.0f} | {note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_ticks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=25_000.0,
                   help="sandbox trades/s per instrument, two instruments (default %(default)s)")
    p.add_argument("--batch", type=int, default=200, help="trades per WS push (default %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window (default %(default)s)")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds before it (default %(default)s)")
    p.add_argument("--trades", type=int, default=600_000,
                   help="in-process: pre-serialised trades (default %(default)s)")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--_inproc", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._inproc:
        print(json.dumps(_inproc_child(args._inproc, args._dir)))
        return 0
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        if not args.skip_e2e:
            e2e_dir = Path(tmp) / "e2e"
            e2e_dir.mkdir()
            rows.append(end_to_end(args.rate, args.batch, args.seconds, args.warmup, e2e_dir))
        rows.append(in_process(args.trades, Path(tmp)))
    load_after = os.getloadavg()
    doc = {"bench": "ingest_ticks", "target_ticks_per_s": TARGET, "machine": machine(),
           "loadavg_before": load_before, "loadavg_after": load_after,
           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    if not k.startswith("_")},
           "results": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1))
    print(table(rows))
    cores = os.cpu_count() or 1
    print(f"\nload average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, "
          f"on {cores} cores")
    if load_before[0] > 0.5 * cores:
        print("warning: the machine was busy before the run; throughput is shared with other "
              "processes (CPU µs/tick is the robust figure)")
    print(f"results: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
