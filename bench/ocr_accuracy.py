"""OCR accuracy of the emulator builder against the sandbox sportsbook's ground truth.

    python -m bench.ocr_accuracy [--seeds 7,8,9] [--out bench/results/ocr_accuracy.json]

For each seed: a sandbox on loopback, the real emulator job (`python -m workers.emulator`,
browser backend: headless Chromium + Tesseract) on every sport page, then each extraction is
scored against /_sandbox/sportsbook/truth: odds values exact (the text shown: +150, 2.50,
6/4), team names matched (whitespace- and case-insensitive), boosts exact, values flagged
(not guessed) and values wrong (read confidently but not what the page shows), and the time
per screenshot. Targets: >= 98 % odds exact, >= 95 % names matched. Prints a markdown table
and writes the JSON results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "ocr_accuracy.json"
ODDS_TARGET, NAMES_TARGET = 0.98, 0.95


def norm(name: str | None) -> str:
    return " ".join((name or "").split()).casefold()


def score(odds_doc: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Compare an odds.json document with the sportsbook truth (shots named after sports)."""
    odds_total = odds_exact = names_total = names_ok = flagged = wrong = 0
    boosts_total = boosts_exact = 0
    misses: list[str] = []
    for sport in truth["sports"]:
        markets = [m for m in odds_doc["markets"] if m["shot"].endswith(sport["key"])]
        boosts = [b for b in odds_doc["boosts"] if b["shot"].endswith(sport["key"])]
        if not any(s["shot"].endswith(sport["key"]) for s in odds_doc["screenshots"]):
            continue
        used: set[int] = set()
        for ev in sport["events"]:
            shown = [o["shown"] for o in ev["outcomes"]]
            best, best_i = 0.0, -1
            for i, m in enumerate(markets):
                if i in used:
                    continue
                got = [o["raw_name"] for o in m["outcomes"]]
                r = SequenceMatcher(None, norm(" | ".join(shown)), norm(" | ".join(got))).ratio()
                if r > best:
                    best, best_i = r, i
            market = markets[best_i] if best_i >= 0 and best > 0.5 else None
            if market is not None:
                used.add(best_i)
            for k, truth_o in enumerate(ev["outcomes"]):
                odds_total += 1
                names_total += 1
                got_o = None
                if market:
                    named = [o for o in market["outcomes"] if norm(o["raw_name"]) == norm(truth_o["shown"])]
                    got_o = named[0] if named else (
                        market["outcomes"][k] if k < len(market["outcomes"]) else None)
                if got_o is None:
                    misses.append(f"{sport['key']}: {truth_o['shown']} {truth_o['odds']}: not extracted")
                    continue
                if norm(got_o["name"]) == norm(truth_o["shown"]):
                    names_ok += 1
                else:
                    misses.append(f"{sport['key']}: name {got_o['raw_name']!r} != {truth_o['shown']!r}")
                if got_o["odds"] == truth_o["odds"]:
                    odds_exact += 1
                elif got_o["odds"] is None:
                    flagged += 1
                    misses.append(f"{sport['key']}: {truth_o['odds']} flagged: {got_o['flags']}")
                else:
                    wrong += 1
                    misses.append(f"{sport['key']}: {truth_o['odds']} read as {got_o['odds']} (WRONG)")
        for tb in sport["boosts"]:
            boosts_total += 1
            hit = [b for b in boosts if norm(b["selection"]) == norm(tb["shown"])
                   and (b["was"] or {}).get("odds") == tb["was"] and (b["now"] or {}).get("odds") == tb["now"]]
            if hit:
                boosts_exact += 1
            else:
                misses.append(f"{sport['key']}: boost {tb['shown']} {tb['was']}->{tb['now']} not read exactly")
    return {
        "odds_total": odds_total, "odds_exact": odds_exact,
        "odds_exact_pct": round(100 * odds_exact / odds_total, 2) if odds_total else 0.0,
        "odds_flagged": flagged, "odds_wrong": wrong,
        "names_total": names_total, "names_matched": names_ok,
        "names_matched_pct": round(100 * names_ok / names_total, 2) if names_total else 0.0,
        "boosts_total": boosts_total, "boosts_exact": boosts_exact, "misses": misses,
    }


def run_seed(seed: int, workdir: Path) -> dict[str, Any]:
    """One sandbox + one emulator run; the score and timings."""
    from workers.sandbox.server import running_sandbox

    out = workdir / f"seed-{seed}"
    with running_sandbox(seed=seed, history_minutes=1) as sb:
        truth = httpx.get(f"{sb.http_url}/_sandbox/sportsbook/truth", timeout=10).json()
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "workers.emulator", "--sandbox", sb.http_url,
                               "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                              timeout=600, env={k: v for k, v in os.environ.items()
                                                if not k.startswith("PROOFWATCH_")})
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: emulator exited {proc.returncode}: {proc.stderr[-2000:]}")
    doc = json.loads((out / "odds.json").read_text())
    result = score(doc, truth)
    ocr_seconds = [s["seconds"] for s in doc["screenshots"]]
    result.update(seed=seed, screenshots=len(ocr_seconds), wall_seconds=round(wall, 2),
                  ocr_seconds_per_shot=round(sum(ocr_seconds) / len(ocr_seconds), 3),
                  wall_seconds_per_shot=round(wall / len(ocr_seconds), 3))
    return result


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| seed | shots | odds exact | flagged | wrong | names matched | boosts exact | OCR s/shot | wall s/shot |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['seed']} | {r['screenshots']} | {r['odds_exact']}/{r['odds_total']} "
                    f"({r['odds_exact_pct']:.1f} %) | {r['odds_flagged']} | {r['odds_wrong']} | "
                    f"{r['names_matched']}/{r['names_total']} ({r['names_matched_pct']:.1f} %) | "
                    f"{r['boosts_exact']}/{r['boosts_total']} | {r['ocr_seconds_per_shot']:.2f} | "
                    f"{r['wall_seconds_per_shot']:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ocr_accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="7,8,9")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="ocr-bench-") as tmp:
        results = [run_seed(seed, Path(tmp)) for seed in seeds]
    odds_exact = sum(r["odds_exact"] for r in results)
    odds_total = sum(r["odds_total"] for r in results)
    names = sum(r["names_matched"] for r in results)
    names_total = sum(r["names_total"] for r in results)
    total = {"odds_exact_pct": round(100 * odds_exact / odds_total, 2),
             "names_matched_pct": round(100 * names / names_total, 2),
             "odds_wrong": sum(r["odds_wrong"] for r in results),
             "odds_flagged": sum(r["odds_flagged"] for r in results),
             "ocr_seconds_per_shot": round(sum(r["ocr_seconds_per_shot"] for r in results) / len(results), 3),
             "targets": {"odds_exact_pct": 100 * ODDS_TARGET, "names_matched_pct": 100 * NAMES_TARGET}}
    total["pass"] = (total["odds_exact_pct"] >= 100 * ODDS_TARGET
                     and total["names_matched_pct"] >= 100 * NAMES_TARGET)
    from workers.emulator.ocr import engine_version

    doc = {"bench": "ocr_accuracy", "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "engine": engine_version()},
           "total": total, "seeds": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))
    print(f"\nall seeds: odds exact {total['odds_exact_pct']:.2f} % (target >= {100 * ODDS_TARGET:.0f} %), "
          f"names matched {total['names_matched_pct']:.2f} % (target >= {100 * NAMES_TARGET:.0f} %), "
          f"wrong {total['odds_wrong']}, flagged {total['odds_flagged']}, "
          f"OCR {total['ocr_seconds_per_shot']:.2f} s/screenshot -> {'PASS' if total['pass'] else 'FAIL'}")
    for r in results:
        for m in r["misses"]:
            print(f"  seed {r['seed']}: {m}")
    return 0 if total["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
