"""Example service: runs forever, heartbeating a counter every second. Exits cleanly on
SIGTERM.

    python -m workers.examples.tick [INTERVAL]
"""

from __future__ import annotations

import signal
import sys
import time

from workers.sdk import Run


def main(argv: list[str]) -> int:
    interval = float(argv[0]) if argv else 1.0
    run = Run.from_env()
    stopping = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    ticks = 0
    while not stopping:
        ticks += 1
        run.beat({"ticks": ticks}, phase="ticking", message=f"tick {ticks}")
        time.sleep(interval)
    print(f"stopped after {ticks} ticks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
