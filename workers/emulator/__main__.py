"""python -m workers.emulator: the emulator builder (a proofwatch `task` job).

Captures sportsbook screens -- headless Chromium (`--backend browser`, the default: every
--url, or the sandbox's sport pages) or an Android emulator / phone over adb (`--backend adb`)
-- OCRs them with Tesseract and writes screens/*.png, extractions/*.json and odds.json to the
run dir ($PROOFWATCH_RUN_DIR, or --out).

Exit codes: 0 when at least one market was extracted; 1 when a step is blocked (the blocker,
with the exact command, exit code and output, is reported to proofwatch and is the last line
of stderr) or nothing was extracted; 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from workers.emulator._job import Settings, run_job
from workers.emulator.adb import AdbSettings
from workers.emulator.errors import Blocked, ConfigError, EmulatorError
from workers.emulator.extract import DEFAULT_MIN_CONF
from workers.protocol import ENV_HEARTBEAT, ENV_RUN_DIR
from workers.sandbox.odds_model import SPORTS
from workers.sdk import Run

log = logging.getLogger("workers.emulator")
DEFAULT_SANDBOX = "http://127.0.0.1:8790"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m workers.emulator",
        description="Capture sportsbook screens (headless Chromium or adb) and extract odds "
                    "with Tesseract OCR, with screenshots and odds.json as proof.")
    a = p.add_argument
    a("--backend", choices=("browser", "adb"), default="browser")
    a("--out", help=f"where outputs go (default ${ENV_RUN_DIR} or .)")
    a("--book", default="sandbook", help="the bookmaker key recorded in the outputs")
    a("--min-conf", type=float, default=DEFAULT_MIN_CONF,
      help="Tesseract confidence (0-100) below which a value is flagged, not used "
           "(default %(default)s)")
    a("--odds-format", choices=("american", "decimal", "fractional"),
      help="the book's fixed odds format (default: inferred per section)")
    a("--no-reread", action="store_true", help="do not re-OCR doubtful cells")
    b = p.add_argument_group("browser backend")
    b.add_argument("--url", action="append", default=[],
                   help="a page to capture (repeatable; default: the sandbox's sport pages)")
    b.add_argument("--sandbox", default=DEFAULT_SANDBOX,
                   help="sandbox base URL for the default pages (default %(default)s)")
    b.add_argument("--window", default="1000x1200", help="viewport WIDTHxHEIGHT (default %(default)s)")
    b.add_argument("--chromium", help="Chromium binary (default: chromium on PATH)")
    b.add_argument("--page-wait", type=float, default=60.0,
                   help="retry a page that cannot be reached for this long (default %(default)s s)")
    d = p.add_argument_group("adb backend")
    d.add_argument("--adb", default="adb", help="adb binary (default: adb on PATH)")
    d.add_argument("--serial", help="device serial (adb -s); default: the only/first ready device")
    d.add_argument("--avd", help="boot this AVD first: EMULATOR -avd NAME EMULATOR_ARGS")
    d.add_argument("--emulator", default="emulator", help="emulator binary (default %(default)s)")
    d.add_argument("--emulator-args", default="-no-window -no-audio -no-snapshot",
                   help="(default %(default)r)")
    d.add_argument("--boot-timeout", type=float, default=300.0,
                   help="seconds for an AVD to reach sys.boot_completed=1 (default %(default)s)")
    d.add_argument("--device-wait", type=float, default=0.0,
                   help="without --avd: seconds to wait for a device to be ready (default 0)")
    d.add_argument("--apk", action="append", default=[], help="APK to `adb install -r` (repeatable)")
    d.add_argument("--activity", help="app activity to start, e.g. com.book.app/.MainActivity")
    d.add_argument("--shots", type=int, default=3, help="screenshots to take (default %(default)s)")
    d.add_argument("--tap", action="append", default=[], help="X,Y to tap before capturing (repeatable)")
    d.add_argument("--swipe", default="540,1500,540,700",
                   help="X1,Y1,X2,Y2 swipe between captures ('' for none; default %(default)s)")
    d.add_argument("--settle", type=float, default=1.5,
                   help="seconds for the UI to settle after launch/tap/swipe (default %(default)s)")
    d.add_argument("--keep-emulator", action="store_true", help="leave a booted AVD running")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Validate the command line into Settings (ConfigError names the flag)."""
    try:
        width, height = (int(x) for x in args.window.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--window {args.window!r}: use WIDTHxHEIGHT, e.g. 1000x1200") from None
    urls = tuple(args.url) or tuple(f"{args.sandbox.rstrip('/')}/sportsbook/{s.key}" for s in SPORTS)
    if not 0 <= args.min_conf <= 100:
        raise ConfigError(f"--min-conf {args.min_conf}: must be within 0..100")
    if args.shots < 1:
        raise ConfigError(f"--shots {args.shots}: must be >= 1")
    taps = tuple(_ints(t, 2, "--tap") for t in args.tap)
    swipe = _ints(args.swipe, 4, "--swipe") if args.swipe else None
    out = Path(args.out or os.environ.get(ENV_RUN_DIR) or ".")
    adb = AdbSettings(adb=args.adb, serial=args.serial, avd=args.avd, emulator=args.emulator,
                      emulator_args=tuple(shlex.split(args.emulator_args)),
                      boot_timeout=args.boot_timeout, device_wait=args.device_wait,
                      apks=tuple(args.apk), activity=args.activity, shots=args.shots,
                      taps=taps, swipe=swipe, settle=args.settle,  # type: ignore[arg-type]
                      keep_emulator=args.keep_emulator)
    return Settings(backend=args.backend, urls=urls, out=out, book=args.book, width=width,
                    height=height, chromium=args.chromium, page_wait=args.page_wait, min_conf=args.min_conf,
                    odds_format=args.odds_format, reread=not args.no_reread, adb=adb)


def _ints(text: str, n: int, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise ConfigError(f"{flag} {text!r}: expected {n} comma-separated integers")
    return values


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run = Run.from_env() if os.environ.get(ENV_HEARTBEAT) else Run(None)
    try:
        settings = settings_from(parse_args(sys.argv[1:] if argv is None else argv))
        doc = run_job(settings, run)
    except Blocked as exc:
        run.blocked(str(exc))
        print(f"emulator: BLOCKED: {exc}", file=sys.stderr)
        return exc.exit_code
    except EmulatorError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return exc.exit_code
    summary = doc["summary"]
    line = (f"{summary['screenshots']} screenshots, {summary['markets']} markets "
            f"({summary['complete_markets']} complete), {summary['odds_read']}/"
            f"{summary['outcomes']} odds read, {summary['flagged']} flagged, "
            f"{summary['boosts']} boosts")
    run.beat(phase="done", message=line, force=True)
    if not summary["markets"]:
        print(f"emulator: no market extracted: {line}", file=sys.stderr)
        return 1
    print(f"emulator: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
