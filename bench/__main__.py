"""`python -m bench [compare|core|stall|death|overhead] [options]`

`compare` (the default, what `make bench` runs) runs the same workloads through proofwatch,
supervisord and Monit in one invocation and prints the comparison; a full default run also
rewrites its section of docs/PERFORMANCE.md. `core` and its single workloads measure proofwatch
alone (stall, death and overhead, as before). Raw results go to bench/results/<suite>-<time>.json.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import _report, death, overhead, stall
from bench._daemon import BenchError

WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {
    "stall": stall.run,
    "death": death.run,
    "overhead": overhead.run,
}
SUITES: dict[str, list[str]] = {"compare": [], "core": ["stall", "death", "overhead"],
                                **{name: [name] for name in WORKLOADS}}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def name_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return items
    return parse


def size_list(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of job counts (e.g. 50,200)") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of job counts (e.g. 50,200)")
    return sizes


def parse_args(argv: list[str]) -> argparse.Namespace:
    from bench.compare import SUPERVISORS, WORKLOADS as CMP_WORKLOADS

    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", default="compare", choices=sorted(SUITES),
                   help="what to run (default: compare = proofwatch vs supervisord vs Monit)")
    g = p.add_argument_group("compare")
    g.add_argument("--quick", action="store_true",
                   help="smoke run: N = 50 only, 5 kills, 5-s windows (about a minute)")
    g.add_argument("--only", type=name_list(SUPERVISORS), default=None, metavar="SUP[,SUP]",
                   help=f"supervisors to run ({','.join(SUPERVISORS)}; default all)")
    g.add_argument("--workloads", type=name_list(CMP_WORKLOADS), default=None, metavar="W[,W]",
                   help=f"workloads ({','.join(CMP_WORKLOADS)}; default all)")
    g.add_argument("--sizes", type=size_list, default=None, metavar="N[,N]", help="job counts (default 50,200,1000)")
    g.add_argument("--kills", type=positive_int, default=None, help="kills per supervisor and N (default: 20 "
                   "for proofwatch, 10 for supervisord and Monit, whose every restart takes about 1 s)")
    g.add_argument("--window", type=positive_float, default=None,
                   help="steady-state window in seconds for every N and supervisor (default: 60 s for proofwatch "
                        "at N = 200, 15 s for the peers at N = 200; 8 s for proofwatch and 6 s for the peers "
                        "at other N)")
    g.add_argument("--monit-spawn-max", type=positive_int, default=None,
                   help="largest N at which Monit starts the children itself (default 50; above it they are "
                        "started by the bench and adopted by Monit: its serial start takes ~0.2 s per service)")
    c = p.add_argument_group("core, stall, death, overhead")
    c.add_argument("--runs", type=positive_int, default=None,
                   help="repetitions of the latency workloads (default: 10 stalls, 20 kills)")
    c.add_argument("--jobs", type=positive_int, default=None,
                   help=f"heartbeating jobs in the overhead workload (default {overhead.DEFAULT_JOBS})")
    c.add_argument("--duration", type=positive_float, default=None,
                   help=f"overhead sampling window in seconds (default {overhead.DEFAULT_DURATION:g})")
    p.add_argument("--out", type=Path, default=None,
                   help=f"Markdown file to update (default: {DEFAULT_OUT} for a full compare or core run; "
                        "none for a partial run)")
    p.add_argument("--keep", action="store_true", help="keep the temp directories")
    args = p.parse_args(argv)
    if args.out is not None:
        try:
            _report.check_out(args.out)
        except _report.OutError as exc:
            p.error(str(exc))
    return args


def _on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    if args.suite == "compare":
        return run_compare(args, argv)
    return run_core(args, argv)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def run_compare(args: argparse.Namespace, argv: list[str]) -> int:
    from bench import _compare_report, _procs
    from bench._targets import peer_versions
    from bench.compare import Compare, Plan, Results

    plan = Plan.quick() if args.quick else Plan()
    partial = bool(args.quick or args.only or args.workloads or args.sizes or args.kills or args.window
                   or args.monit_spawn_max)
    if args.only:
        plan.only = args.only
    if args.workloads:
        plan.workloads = args.workloads
    if args.sizes:
        plan.sizes = args.sizes
    if args.kills:
        plan.kills = {n: args.kills for n in plan.sizes}
        plan.peer_kills = dict(plan.kills)
    if args.window:
        plan.window = {n: args.window for n in plan.sizes}
        plan.peer_window = dict(plan.window)
    if args.monit_spawn_max:
        plan.monit_spawn_max = args.monit_spawn_max
    plan.keep = args.keep
    out = args.out if args.out is not None else (None if partial else DEFAULT_OUT)

    facts = _report.machine()
    facts["load_before"] = round(os.getloadavg()[0], 2)
    versions = peer_versions()
    results = Results()
    cmp = Compare(plan, results)
    atexit.register(_procs.sweep, f"pwb-{cmp.token}-")  # last resort, e.g. on an uncaught error
    t0 = time.monotonic()
    failed: str | None = None
    try:
        cmp.run()
    except BenchError as exc:
        failed = str(exc)
        print(f"bench: compare failed: {exc}", file=sys.stderr)
    except Exception as exc:  # a bug in the bench: still report what was measured
        import traceback

        traceback.print_exc()
        failed = f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        print("bench: interrupted; everything the bench started has been stopped", file=sys.stderr)
        return 130
    wall = time.monotonic() - t0
    facts["load_after"] = round(os.getloadavg()[0], 2)
    command = _report.command_line(argv)
    workload_notes = method_notes(plan)
    body = _compare_report.section(command=command, facts=facts, versions=versions, records=results.records,
                                   notes=results.notes + ([f"**the run failed**: {failed}"] if failed else []),
                                   workload_notes=workload_notes, wall_s=wall)
    print("\n" + body, flush=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    raw = RESULTS_DIR / f"compare-{_stamp()}.json"
    raw.write_text(json.dumps({"command": command, "machine": facts, "versions": versions, "wall_s": wall,
                               "plan": dataclasses.asdict(plan), "records": results.records,
                               "notes": results.notes, "failed": failed,
                               "targets": [dataclasses.asdict(c) for c in _compare_report.checks(results.records)]},
                              indent=1, default=_json_default))
    print(f"bench: raw results in {raw}", file=sys.stderr)
    print(f"bench: whole run {wall / 60:.1f} min", file=sys.stderr)
    if out is not None and not failed:
        _report.write(out, "compare", body)
        print(f"bench: wrote the compare section of {out}", file=sys.stderr)
    return 1 if failed else 0


def method_notes(plan: Any) -> dict[str, list[str]]:
    """One line per workload on what exactly was run (durations chosen for the time budget)."""
    def per_n(table: dict[int, Any], unit: str = "") -> str:
        return ", ".join(f"{table.get(n, '?')}{unit} at N = {n}" for n in plan.sizes)
    return {
        "spawn": [
            "From `time.time()` just before the supervisor is launched to the last child's own start stamp "
            "(bash `$EPOCHREALTIME`, written as the child starts); all N then checked in the process table. "
            "proofwatch's time includes its own start-up (Python imports, history database); the JSON has "
            "`ready_s` (its start event) and the first child's time.",
            f"proofwatch and supervisord: {plan.spawn_runs} launches per N (n; the median is judged), "
            "each from a fresh temp directory, the last one kept for the other workloads; Monit: one.",
            f"Monit starts services one at a time; above N = {plan.monit_spawn_max} the bench starts the children "
            "and Monit adopts them (no spawn figure).",
        ],
        "crash": [
            f"Kills: proofwatch {per_n(plan.kills)}; supervisord and Monit {per_n(plan.peer_kills)} (each of "
            "their restarts waits for a 1-s tick or cycle). Each kill hits a different child chosen at random, "
            "after a random pause: 0–1 s for the peers (a random phase of their 1-s tick or cycle), 0–0.25 s for "
            "proofwatch (event-driven, no sub-second period); proofwatch and "
            "supervisord run side by side and the kills alternate between them (A/B, B/A, ...); Monit runs alone.",
            "Noticed: proofwatch's FAILED/CRASHED event in history.db; supervisord's `exited:` log line "
            "(its millisecond timestamp); Monit's `process is not running` log line (the time the bench saw it, "
            "polling every 2 ms, since Monit logs whole seconds). Replacement running: the new child's own start "
            "stamp. While it waits, the bench reads only the child's record file every 2 ms; the history and "
            "supervisord's log, whose timestamps do not depend on when they are read, are read once the "
            "replacement runs, so the bench does not compete for the 2 cores inside the interval it measures. "
            "The bench reaps Monit's orphaned children at once, as a normal init does.",
        ],
        "hang": [
            "proofwatch: every job's heartbeats stop carrying progress (liveness beats go on at 1 Hz); latency = "
            "STALLED event − (the worker's last progressing write + 5 s), all N jobs at once, their deadlines "
            "spread over one second. Monit: one `check file ... if timestamp > 5 seconds` per job at `set daemon "
            "1`, the files touched once a second until they stop; latency = the failure line in Monit's log − "
            "(last touch + 5 s). supervisord has no such check.",
        ],
        "steady": [
            f"Windows: proofwatch {per_n(plan.window, ' s')}; peers {per_n(plan.peer_window, ' s')}; after "
            f"{plan.warmup:g} s of warm-up. CPU = (user + system) time of the supervisor process alone over the "
            "window; RSS sampled once a second (median, max). Peers' children are idle; Monit checks every 1 s.",
            "proofwatch without heartbeats: the children never heartbeat and stay STARTING (startup_grace = 1 h); "
            "heartbeating: each child's heartbeat written once a second through workers.sdk by one helper "
            "process (bench/_beater.py), so that N = 1,000 does not mean 1,000 Python interpreters.",
        ],
        "ingest": [
            f"Every job's heartbeat written 10 times a second with progress for {plan.ingest_window:g} s (plus 1 s "
            "lead-in); false stalls counted from the switch to 10 Hz until 6 s after it ended. status.json "
            "writes counted exactly with inotify (renames onto status.json).",
        ],
        "status": [
            "Measured during the 1 Hz steady-state window: inotify timestamps of the temp file's creation and of "
            "its rename onto status.json (write + fsync, without building the document); the replay times the "
            "daemon's own `dump_status` and `write_atomic` on the real document in the bench process.",
        ],
    }


def run_core(args: argparse.Namespace, argv: list[str]) -> int:
    out = args.out if args.out is not None else (DEFAULT_OUT if args.suite == "core" else None)
    facts = _report.machine()
    results: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for name in SUITES[args.suite]:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t = time.monotonic()
        try:
            res = WORKLOADS[name](runs=args.runs, jobs=args.jobs, duration=args.duration, keep=args.keep)
        except BenchError as exc:
            print(f"bench: {name} failed: {exc}", file=sys.stderr)
            return 1
        print(f"bench: {name} done in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        print(_report.table(res["rows"]), flush=True)
        results.append(res)
    wall = time.monotonic() - t0
    command = _report.command_line(argv)
    body = _report.section(args.suite, command, facts, results, wall)
    print("\n" + body)
    RESULTS_DIR.mkdir(exist_ok=True)
    raw = RESULTS_DIR / f"{args.suite}-{_stamp()}.json"
    raw.write_text(json.dumps({"command": command, "machine": facts, "wall_s": wall,
                               "results": results}, indent=2, default=_json_default))
    print(f"bench: raw samples in {raw}", file=sys.stderr)
    if out is not None:
        _report.write(out, args.suite, body)
        print(f"bench: wrote the {args.suite} section of {out}", file=sys.stderr)
    return 0


def _json_default(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


if __name__ == "__main__":
    sys.exit(main())
