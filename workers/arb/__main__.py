"""python -m workers.arb [options]: see the package docstring. Exit 0 done, 1 runtime error
or blocked (the blocker is reported to proofwatch first), 2 bad settings."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from workers.arb._job import SPORTS, Settings, run_job
from workers.arb.errors import ApiError, ArbError, ConfigError, InputError
from workers.arb.sources import latest_odds_json, state_dir_from_run_dir
from workers.sdk import Run

log = logging.getLogger("workers.arb")


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in ("ms", "s", "m", "h", "d"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    raise argparse.ArgumentTypeError(f"{text!r}: not a duration (use e.g. 10m, 90s, 2h)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workers.arb", description=__doc__)
    p.add_argument("--odds-json", type=Path, help="the emulator's odds.json (default: the "
                   "newest verified one in the proofwatch history)")
    p.add_argument("--state-dir", type=Path, help="proofwatch state dir (default: derived "
                   "from PROOFWATCH_RUN_DIR)")
    p.add_argument("--emulator-job", default="emulator")
    p.add_argument("--out", type=Path, help="output dir (default: the run dir, else .)")
    p.add_argument("--api-url", default=os.environ.get("ODDS_API_URL", "http://127.0.0.1:8790"),
                   help="The Odds API v4 base URL (env ODDS_API_URL)")
    p.add_argument("--api-key-env", default="ODDS_API_KEY",
                   help="environment variable holding the API key (default ODDS_API_KEY)")
    p.add_argument("--sports", default=",".join(SPORTS))
    p.add_argument("--regions", default="us")
    p.add_argument("--odds-format", choices=("decimal", "american"), default="decimal")
    p.add_argument("--bankroll", type=float, default=1000.0)
    p.add_argument("--unit", type=float, default=1.0, help="round stakes to this unit")
    p.add_argument("--margin", type=float, default=0.005,
                   help="safety margin: arb only when sum(1/d) < 1 - margin")
    p.add_argument("--max-odds-age", type=_duration, default=600.0)
    p.add_argument("--window", type=_duration, default=5400.0,
                   help="commence-time window for matching (default 90m)")
    p.add_argument("--name-threshold", type=float, default=85.0)
    p.add_argument("--log-level", default="info")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    run = Run.from_env() if os.environ.get("PROOFWATCH_HEARTBEAT") else Run(None)
    try:
        if not 0 <= args.margin < 0.5 or args.bankroll <= 0 or args.unit < 0:
            raise ConfigError("--margin must be in 0..0.5, --bankroll > 0, --unit >= 0")
        run.beat({"inputs": 0}, phase="inputs", message="finding the emulator's odds.json")
        odds_json = args.odds_json
        if odds_json is None:
            state = args.state_dir
            if state is None and os.environ.get("PROOFWATCH_RUN_DIR"):
                state = state_dir_from_run_dir(Path(os.environ["PROOFWATCH_RUN_DIR"]))
            if state is None:
                raise ConfigError("no odds.json: give --odds-json or --state-dir "
                                  "(or run under proofwatch)")
            odds_json = latest_odds_json(state, args.emulator_job)
        run.beat({"inputs": 1}, phase="inputs", message=f"odds.json: {odds_json}")
        key = os.environ.get(args.api_key_env, "")
        settings = Settings(
            odds_json=odds_json, out=args.out or (run.run_dir if run.supervised else Path(".")),
            api_url=args.api_url, api_key=key,
            sports=tuple(x for x in args.sports.split(",") if x), regions=args.regions,
            odds_format=args.odds_format, bankroll=args.bankroll, unit=args.unit,
            margin=args.margin, max_odds_age_s=args.max_odds_age, window_min=args.window / 60,
            name_threshold=args.name_threshold)
        doc = run_job(settings, run)
    except ApiError as exc:
        if exc.blocked:
            run.blocked(str(exc))
        print(f"arb: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"arb: {exc}", file=sys.stderr)
        return 2
    except (InputError, ArbError) as exc:
        print(f"arb: {exc}", file=sys.stderr)
        return 1
    s = doc["summary"]
    print(f"arb: {s['opportunities']} opportunities, {s['matched']} matched, "
          f"{s['unmatched']} unmatched, {s['positive_ev_boosts']} +EV boosts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
