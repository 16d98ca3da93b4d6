"""python -m workers.retrain.verify model.joblib: the command proof of a retrain run.

Loads the model file and checks that it is a usable retrain model: the artifact's format and
keys, one input column per feature it names, the probabilities it recorded for a sample of its
own training rows reproduced exactly, probabilities in [0, 1] for fresh rows (with missing
values), and -- when metrics.json sits next to it (or --metrics names one) -- the same model id
and sha256 as the run's metrics. Exit 0 when every check passes, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def check(model: Path, metrics: Path | None) -> list[str]:
    """The checks passed; raises ValueError with the first failure."""
    from workers.retrain._model import ArtifactError, load, predict_up

    try:
        art = load(model)
    except ArtifactError as exc:
        raise ValueError(str(exc)) from None
    done = [f"loads as {art['format']} (model {art.get('id')})"]
    features = list(art["features"])
    n_in = int(getattr(art["estimator"], "n_features_in_", -1))
    if not features or n_in != len(features):
        raise ValueError(f"the estimator takes {n_in} columns but the artifact names {len(features)} features")
    done.append(f"{len(features)} features")
    sample = np.asarray(art["sample_X"], dtype=np.float64)
    got = predict_up(art, sample)
    want = np.asarray(art["sample_proba"], dtype=np.float64)
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=1e-9):
        worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
        raise ValueError(f"predictions on its {len(sample)} recorded sample rows differ from the recorded "
                         f"ones (max difference {worst:.3g}): not the model that was trained")
    done.append(f"reproduces its {len(sample)} recorded predictions")
    rng = np.random.default_rng(0)
    fresh = sample[rng.integers(0, len(sample), 256)] + rng.normal(0, 0.01, (256, len(features)))
    fresh[rng.random(fresh.shape) < 0.05] = np.nan
    p = predict_up(art, fresh)
    if p.shape != (256,) or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("predict_proba on fresh rows is not a probability per row")
    done.append(f"predicts P(up) in [{p.min():.3f}, {p.max():.3f}] on 256 fresh rows")
    if metrics is not None and metrics.exists():
        doc = json.loads(metrics.read_bytes())
        sha = hashlib.sha256(model.read_bytes()).hexdigest()
        listed = doc.get("model") or {}
        if listed.get("id") != art.get("id") or listed.get("sha256") != sha:
            raise ValueError(f"{metrics.name} describes model {listed.get('id')} ({str(listed.get('sha256'))[:12]}), "
                             f"this file is {art.get('id')} ({sha[:12]})")
        done.append(f"matches {metrics.name} (sha256 {sha[:12]})")
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workers.retrain.verify", description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--metrics", type=Path, help="metrics.json to match (default: next to the model)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    metrics = args.metrics or args.model.with_name("metrics.json")
    try:
        done = check(args.model, metrics)
    except (ValueError, OSError) as exc:
        print(f"{args.model}: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}: ok: " + "; ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
