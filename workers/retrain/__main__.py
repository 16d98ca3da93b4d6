"""python -m workers.retrain: the retrain builder (a proofwatch `task` job).

Reads the ingestor's store (<data dir>/candles_1m, ticks, ticks/manifest.json), builds 5-minute
bars and features, walks forward with a gradient-boosted direction classifier, simulates
out-of-fold trades with fees and slippage, applies the gates (policies/trading.py) and writes
its proofs to the run dir: model.joblib, metrics.json, walk_forward.csv, report.html. A
candidate that passes the promotion gate becomes current in <data dir>/models/registry.json.

Exit codes: 0 when the run is sound, promoted or not (insufficient trades and "kept, not
promoted" are verdicts, not failures); 1 when a gate fails the run (leakage suspected, not
converged), when there is not enough history, or on a runtime error -- the last line of
stderr says which; 2 for a bad command line.
"""

from __future__ import annotations

import os

# Before pyarrow loads: jemalloc hands freed memory back to the OS; the default (mimalloc)
# keeps ~130 MiB more resident after reading a million ticks (bench/retrain_e2e.py).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from policies.trading import GateSettings  # noqa: E402
from workers.protocol import ENV_DATA_DIR, ENV_HEARTBEAT, ENV_RUN_DIR  # noqa: E402
from workers.retrain.config import SLIPPAGE, TAKER_FEE, ModelParams, Settings  # noqa: E402
from workers.retrain.errors import RetrainError  # noqa: E402
from workers.sdk import Run  # noqa: E402

log = logging.getLogger("workers.retrain")


def parse_args(argv: list[str]) -> argparse.Namespace:
    s = Settings.__dataclass_fields__
    mp, g = ModelParams(), GateSettings()
    p = argparse.ArgumentParser(
        prog="python -m workers.retrain", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Walk-forward retrain of the 5-minute direction model, with leakage, regime, "
                    "trade-count and promotion gates.",
        epilog="Under proofwatch the data dir and run dir come from $PROOFWATCH_DATA_DIR and "
               "$PROOFWATCH_RUN_DIR.")
    a = p.add_argument
    a("--data-dir", help=f"the ingestor's data dir (default ${ENV_DATA_DIR} or ./data)")
    a("--out", help=f"where the proofs go (default ${ENV_RUN_DIR} or .)")
    a("--instruments", default="", help="comma-separated instIds (default: every instrument in the store)")
    a("--days", type=float, default=s["days"].default, help="history to read, in days (default %(default)s)")
    a("--folds", type=int, default=s["folds"].default, help="walk-forward test folds, >= 5 (default %(default)s)")
    a("--test-bars", type=int, default=0, help="5-minute bars per test fold (default: timeline // (folds + 1))")
    a("--train-bars", type=int, default=0, help="rolling train window in bars (default 0: expanding)")
    a("--embargo-bars", type=int, default=s["embargo_bars"].default,
      help="bars dropped between train and test besides the 1-bar label horizon (default %(default)s)")
    a("--min-bars", type=int, default=s["min_bars"].default,
      help="5-minute bars of history needed to run (default %(default)s = 36 h)")
    a("--min-train-rows", type=int, default=s["min_train_rows"].default,
      help="labelled rows the first fold must train on (default %(default)s)")
    a("--fee", type=float, default=TAKER_FEE, help="fee per side, a fraction (default %(default)s: BloFin taker)")
    a("--slippage", type=float, default=SLIPPAGE, help="slippage per side, a fraction (default %(default)s)")
    a("--enter", type=float, default=s["enter"].default,
      help="P(up) that opens a long; 1 - this opens a short (default %(default)s)")
    a("--max-iter", type=int, default=mp.max_iter, help="boosting iterations (default %(default)s)")
    a("--learning-rate", type=float, default=mp.learning_rate, help="(default %(default)s)")
    a("--max-leaf-nodes", type=int, default=mp.max_leaf_nodes, help="(default %(default)s)")
    a("--min-samples-leaf", type=int, default=mp.min_samples_leaf, help="(default %(default)s)")
    a("--l2", type=float, default=mp.l2_regularization, help="L2 regularisation (default %(default)s)")
    a("--seed", type=int, default=mp.seed, help="random seed of every fit (default %(default)s)")
    a("--control-repeats", type=int, default=s["control_repeats"].default,
      help="shuffled-label control runs, averaged (default %(default)s)")
    a("--min-trades", type=int, default=g.min_trades, help="no Sharpe below this (default %(default)s)")
    a("--min-trades-per-arm", type=int, default=g.min_trades_per_arm,
      help="trades each A/B arm needs for a promotion (default %(default)s)")
    a("--leakage-accuracy", type=float, default=g.leakage_accuracy,
      help="out-of-fold accuracy that means leakage (default %(default)s)")
    a("--chance-tolerance", type=float, default=g.chance_tolerance,
      help="how far from the base rate the shuffled control may score (default %(default)s)")
    a("--models-dir", help="the model registry (default <data dir>/models)")
    a("--no-promote", action="store_true", help="evaluate only; leave the registry alone")
    a("--keep-candidates", type=int, default=s["keep_candidates"].default,
      help="non-promoted candidates kept in models/candidates (default %(default)s)")
    a("--threads", type=int, default=s["threads"].default,
      help="OpenMP threads per model fit (default %(default)s)")
    a("--progress", choices=["auto", "always", "never"], default="auto",
      help="rich progress bar on stderr (auto: when stderr is a terminal)")
    a("--log-level", default="info")
    a("--debug", action="store_true", help="tracebacks on errors")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    data_dir = Path(args.data_dir or os.environ.get(ENV_DATA_DIR) or "data").resolve()
    out = Path(args.out or os.environ.get(ENV_RUN_DIR) or ".").resolve()
    return Settings(
        data_dir=data_dir, out_dir=out,
        instruments=tuple(i.strip() for i in args.instruments.split(",") if i.strip()),
        days=args.days, folds=args.folds, test_bars=args.test_bars, train_bars=args.train_bars,
        embargo_bars=args.embargo_bars, min_bars=args.min_bars, min_train_rows=args.min_train_rows,
        fee=args.fee, slippage=args.slippage, enter=args.enter,
        model=ModelParams(max_iter=args.max_iter, learning_rate=args.learning_rate,
                          max_leaf_nodes=args.max_leaf_nodes, min_samples_leaf=args.min_samples_leaf,
                          l2_regularization=args.l2, seed=args.seed),
        control_repeats=args.control_repeats,
        gates=GateSettings(min_trades=args.min_trades, min_trades_per_arm=args.min_trades_per_arm,
                           leakage_accuracy=args.leakage_accuracy, chance_tolerance=args.chance_tolerance),
        models_dir=Path(args.models_dir).resolve() if args.models_dir else None,
        promote=not args.no_promote, keep_candidates=args.keep_candidates, progress=args.progress,
        threads=args.threads)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from workers.retrain._progress import in_terminal, log_handler

    if in_terminal(args.progress):  # log lines print above the progress bar, not through it
        logging.basicConfig(level=args.log_level.upper(), format="%(name)s: %(message)s",
                            handlers=[log_handler()])
    else:
        logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pw: Run | None = None
    try:
        settings = settings_from(args)
        from workers.retrain._job import run

        pw = Run.from_env() if os.environ.get(ENV_HEARTBEAT) else Run(None)
        outcome = run(settings, pw)
    except RetrainError as exc:
        if args.debug:
            raise
        _last_words(pw, f"retrain: FAILED: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: keep the traceback in the log, the verdict last
        if args.debug:
            raise
        log.error("unexpected error", exc_info=True)
        _last_words(pw, f"retrain: FAILED: unexpected {type(exc).__name__}: {exc} (traceback above)")
        return 1
    if outcome.exit_code:
        _last_words(pw, f"retrain: FAILED: {outcome.verdict}")
        return outcome.exit_code
    print(f"retrain: SUCCEEDED: {outcome.verdict}")
    print(f"proofs in {settings.out_dir}: model.joblib, metrics.json, walk_forward.csv, report.html")
    return 0


def _last_words(pw: Run | None, line: str) -> None:
    """The verdict as the heartbeat's message and as the last line of stderr."""
    if pw is not None:
        pw.beat(phase="failed", message=line, force=True)
    logging.shutdown()
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
