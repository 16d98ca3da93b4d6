"""Example task that claims success without doing the work: it reports "3 screenshots
captured" and exits 0, but its "screenshots" are text files with a .png name. proofwatch
verifies them and marks the run FAILED ("unproven: ...: not a PNG").

    python -m workers.examples.fake
"""

from __future__ import annotations

import sys
import time

from workers.sdk import Run


def main() -> int:
    run = Run.from_env()
    shots = run.run_dir / "screens"
    shots.mkdir(exist_ok=True)
    for i in range(1, 4):
        time.sleep(0.3)
        (shots / f"screen-{i}.png").write_text("TODO: capture the real screen here\n" * 400)
        run.beat({"screens": i}, phase="capture", message=f"captured screen {i}")
    print("done: 3 screenshots captured")  # the claim; the proofs say otherwise
    return 0


if __name__ == "__main__":
    sys.exit(main())
