"""`python -m bench [core|stall|death|overhead] [--runs N] [--jobs N] [--duration S] [--out FILE]`

`core` (the default) runs the three core workloads against the real daemon and writes their
section of docs/PERFORMANCE.md; a single workload prints its table and writes a file only when
`--out` is given. Raw samples go to bench/results/<suite>-<time>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
SUITES: dict[str, list[str]] = {"core": ["stall", "death", "overhead"], **{name: [name] for name in WORKLOADS}}
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


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", default="core", choices=sorted(SUITES),
                   help="what to run (default: core = stall, death and overhead)")
    p.add_argument("--runs", type=positive_int, default=None,
                   help="repetitions of the latency workloads (default: 10 stalls, 20 kills)")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help=f"heartbeating jobs in the overhead workload (default {overhead.DEFAULT_JOBS})")
    p.add_argument("--duration", type=positive_float, default=None,
                   help=f"overhead sampling window in seconds (default {overhead.DEFAULT_DURATION:g})")
    p.add_argument("--out", type=Path, default=None,
                   help=f"Markdown file to update (default for core: {DEFAULT_OUT}; none for one workload)")
    p.add_argument("--keep", action="store_true", help="keep the daemons' temp directories")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
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
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    raw = RESULTS_DIR / f"{args.suite}-{stamp}.json"
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
