"""Example job that dies at start, before its first heartbeat (a bad credential, say).

    python -m workers.examples.crash [EXIT_CODE]
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    code = int(argv[0]) if argv else 3
    print("loading credentials from $EXAMPLE_TOKEN", flush=True)
    print("error: EXAMPLE_TOKEN is not set; cannot authenticate to the feed", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
