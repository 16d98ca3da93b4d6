"""Example task that gets stuck: progresses for a few steps, then keeps heartbeating with the
same counters (alive, not working) — the case proofwatch flags as STALLED.

    python -m workers.examples.stall [STEPS_BEFORE_STUCK]
"""

from __future__ import annotations

import sys
import time

from workers.sdk import Run


def main(argv: list[str]) -> int:
    steps = int(argv[0]) if argv else 3
    run = Run.from_env()
    for i in range(1, steps + 1):
        run.beat({"pages": i}, phase="crawling", message=f"page {i}", force=True)
        time.sleep(0.5)
    print("waiting for a lock that never frees...", file=sys.stderr, flush=True)
    while True:  # stuck: liveness without progress
        run.beat({"pages": steps}, message="waiting for lock", force=True)
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
