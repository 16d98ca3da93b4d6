"""`python -m bench.retrain_e2e`: end-to-end time and peak memory of the retrain builder.

Writes 1,000,000 synthetic ticks and the matching 1-minute candles (same instruments, same
days) into a temp data dir in the ingestor's layout -- through the ingestor's own PartStore and
Manifest (workers/retrain/synthetic.py) -- then runs `python -m workers.retrain` on it exactly
as proofwatch would (its own process, default model settings, promotion into a temp registry).
Measured: wall time of that process (imports included), its peak RSS (ru_maxrss of the child,
from wait4; the bench process itself stays small, so the figure is the retrain's own), and the
bar count the history becomes; plus the job's own phase timings from its
metrics.json. Two histories by default: the same million ticks over 7 days and over 30 days
(more 5-minute bars, so more to train on).

Prints a Markdown table and writes bench/results/retrain_e2e.json. Target: < 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._report import machine

RESULTS = Path(__file__).resolve().parent / "results" / "retrain_e2e.json"
TARGET_S = 60.0
INSTRUMENTS = ("BTC-USDT", "ETH-USDT", "SHIB-USDT")


def run_once(data: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    """One retrain process: wall seconds, peak RSS (bytes), exit code, its metrics.json."""
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "workers.retrain", "--data-dir", str(data), "--out", str(out / "run"),
            "--models-dir", str(out / "models"), "--progress", "never", "--log-level", "warning", *extra]
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - began
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()  # type: ignore[union-attr]
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    metrics = json.loads((out / "run" / "metrics.json").read_bytes()) if (out / "run" / "metrics.json").exists() else {}
    return {"wall_s": wall, "peak_rss_bytes": usage.ru_maxrss * 1024, "exit_code": proc.returncode,
            "last_line": (stdout.strip() or stderr.strip()).splitlines()[-1:] or [""],
            "metrics": metrics}


GENERATE = """
import json, sys
from pathlib import Path
from workers.retrain.synthetic import Market, write_store
args = json.loads(sys.argv[1])
market = Market(instruments=tuple(args["instruments"]), days=args["days"], ticks=args["ticks"],
                tick_days=args["days"], signal=0.0, vol_5m=0.004, seed=42)
print(json.dumps(write_store(Path(args["data"]), market)))
"""


def measure(days: float, ticks: int, repeat: int, extra: list[str], keep: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    try:
        data = tmp / "data"
        began = time.monotonic()
        # in a child: a parent that held the ticks would lend its peak RSS to every process it
        # forks (Linux keeps the pre-exec high-water mark in ru_maxrss)
        spec = json.dumps({"instruments": INSTRUMENTS, "days": days, "ticks": ticks, "data": str(data)})
        done = subprocess.run([sys.executable, "-c", GENERATE, spec], capture_output=True, text=True, check=True)
        written = json.loads(done.stdout)
        generate_s = time.monotonic() - began
        store_bytes = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        runs = [run_once(data, tmp / f"out{i}", extra) for i in range(repeat)]
        best = min(runs, key=lambda r: r["wall_s"])
        m = best["metrics"]
        bars = sum(d["bars"] for d in m.get("data", {}).get("instruments", {}).values())
        return {
            "days": days, "instruments": len(INSTRUMENTS), "ticks": written["ticks"],
            "candles_1m": written["candles"], "parts": written["parts"], "store_mib": store_bytes / 2**20,
            "generate_s": generate_s, "bars_5m": bars, "rows": m.get("data", {}).get("rows"),
            "wall_s": [r["wall_s"] for r in runs], "best_wall_s": best["wall_s"],
            "peak_rss_mib": max(r["peak_rss_bytes"] for r in runs) / 2**20,
            "exit_codes": [r["exit_code"] for r in runs], "verdict": best["last_line"][0],
            "timings": m.get("timings", {}), "trades": m.get("overall", {}).get("trading", {}).get("trades"),
            "fits": _fits(m.get("settings", {})),
            "data_dir": str(data) if keep else None,
        }
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _fits(settings: dict[str, Any]) -> int | None:
    """Walk-forward fits: one per fold, plus one per fold and shuffled-label repeat."""
    if "folds" not in settings:
        return None
    return int(settings["folds"]) * (1 + int(settings.get("control_repeats", 1)))


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| history | ticks | 1m candles | 5m bars | model rows | **end-to-end** | start + imports | load + reduce "
        "| features | walk-forward fits | gates, final fit, A/B | report | peak RSS | < 60 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        t = r["timings"]
        fits = f" ({r['fits']} fits)" if r.get("fits") else ""
        outside = r["best_wall_s"] - t.get("total", 0.0)
        lines.append(
            f"| {r['days']:g} d x {r['instruments']} inst | {r['ticks']:,} | {r['candles_1m']:,} | "
            f"{r['bars_5m']:,} | {r['rows']:,} | **{r['best_wall_s']:.1f} s** | {outside:.1f} s | "
            f"{t.get('load', 0):.2f} s | {t.get('features', 0):.2f} s | {t.get('walk_forward', 0):.1f} s{fits} | "
            f"{t.get('evaluate', 0):.1f} s | {t.get('report', 0):.1f} s | {r['peak_rss_mib']:.0f} MiB | "
            f"{'met' if r['best_wall_s'] < TARGET_S else 'MISSED'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.retrain_e2e", description=__doc__.split("\n")[0])
    p.add_argument("--ticks", type=int, default=1_000_000)
    p.add_argument("--days", type=float, nargs="+", default=[7.0, 30.0],
                   help="history lengths to measure (ticks and candles span the same days)")
    p.add_argument("--repeat", type=int, default=1, help="runs per history (the fastest is reported)")
    p.add_argument("--keep", action="store_true", help="keep the temp data dirs")
    p.add_argument("retrain_args", nargs="*", help="extra arguments for workers.retrain (after --)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    load_before = os.getloadavg()
    results = [measure(d, args.ticks, args.repeat, args.retrain_args, args.keep) for d in args.days]
    doc = {"bench": "retrain_e2e", "target_s": TARGET_S, "machine": machine(),
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "args": vars(args),
           "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1))
    print(table(results))
    print(f"\nload average before/after: {load_before[0]:.2f} / {doc['loadavg_after'][0]:.2f} "
          f"on {os.cpu_count()} cores; written to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    bad = [r for r in results if any(code != 0 for code in r["exit_codes"])]
    for r in bad:
        print(f"retrain exited {r['exit_codes']} on {r['days']:g} days: {r['verdict']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
