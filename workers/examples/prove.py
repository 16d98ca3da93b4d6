"""Example task that works and proves it: processes items with heartbeats, writes a result
file, and exits 0. proofwatch verifies result.json before calling it SUCCEEDED.

    python -m workers.examples.prove [ITEMS] [SECONDS_PER_ITEM]
"""

from __future__ import annotations

import json
import sys
import time

from workers.sdk import Run


def main(argv: list[str]) -> int:
    items = int(argv[0]) if argv else 10
    pause = float(argv[1]) if len(argv) > 1 else 0.5
    run = Run.from_env()
    total = 0
    for i in range(1, items + 1):
        time.sleep(pause)
        total += i * i
        run.beat({"items": i}, phase="working", message=f"item {i}/{items}")
    out = run.run_dir / "result.json"
    out.write_text(json.dumps({"items": items, "sum_of_squares": total}))
    run.proof(out)
    run.beat(phase="done", message=f"wrote {out.name}", force=True)
    print(f"processed {items} items; sum of squares {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
