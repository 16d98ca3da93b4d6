"""Example job that runs but never heartbeats (an old script nobody instrumented): proofwatch
marks it SILENT after startup_grace.

    python -m workers.examples.mute [SECONDS]
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    time.sleep(float(argv[0]) if argv else 3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
