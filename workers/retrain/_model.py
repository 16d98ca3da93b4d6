"""The classifier: walk-forward fits, the shuffled-label control, the final model and its file.

HistGradientBoostingClassifier with a fixed seed and no early stopping (its validation split
would be a shuffled one), trained on numpy arrays (feature names travel in the artifact). It
handles the NaN of missing tick features natively.

The artifact (`model.joblib`) is a plain dict, so it loads without this package's classes:
format, id, estimator, features, enter threshold, costs, the period it was trained on, and a
sample of feature rows with the probabilities the model gave them -- the verifier
(`python -m workers.retrain.verify`) checks the loaded model reproduces them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier

from workers.retrain._folds import Fold
from workers.retrain.config import ModelParams
from workers.retrain.errors import NotEnoughHistory, RetrainError

FORMAT = "proofwatch.retrain.model/1"
SAMPLE_ROWS = 64


def make_estimator(params: ModelParams) -> HistGradientBoostingClassifier:
    """A fresh, seeded classifier."""
    return HistGradientBoostingClassifier(
        max_iter=params.max_iter, learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes, min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization, early_stopping=False,
        random_state=params.seed)


def _fit(params: ModelParams, X: np.ndarray, y: np.ndarray) -> HistGradientBoostingClassifier:
    """Fit on (X, y). A column with no value in these rows (tick features before the tick
    stream began) is set to 0 for the fit: constant, so no split uses it (scikit-learn cannot
    bin an all-NaN column); predictions still see the real values and NaN."""
    empty = np.isnan(X).all(axis=0)
    if empty.any():
        X = X.copy()
        X[:, empty] = 0.0
    return make_estimator(params).fit(X, y)


@dataclass
class WalkForward:
    """Out-of-fold predictions: P(up) for every row of a test window (NaN elsewhere)."""

    proba: np.ndarray
    fold_of: np.ndarray  # 1-based fold of each row's test window, 0 outside every test window
    train_rows: list[int]
    train_accuracy: list[float]


def _train_rows(ts: np.ndarray, labelled: np.ndarray, fold: Fold, min_rows: int,
                y: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(labelled & (ts >= fold.train_start) & (ts <= fold.train_end))
    if len(idx) < min_rows:
        raise NotEnoughHistory(len(idx), min_rows, "bars whose next move beats the round-trip cost; "
                               "read more --days, or wait for more history",
                               what=f"labelled bars in fold {fold.k}'s train window")
    if np.unique(y[idx]).size < 2:
        raise RetrainError(f"fold {fold.k}: every training label is the same class; the market "
                           "only moved one way in the train window")
    return idx


def walk_forward(X: np.ndarray, y: np.ndarray, ts: np.ndarray, folds: list[Fold], params: ModelParams,
                 min_rows: int, on_fold: Callable[[int], None]) -> WalkForward:
    """Fit one model per fold on its train window; predict its test window."""
    labelled = ~np.isnan(y)
    proba = np.full(len(y), np.nan)
    fold_of = np.zeros(len(y), dtype=np.int64)
    rows, accs = [], []
    for fold in folds:
        train = _train_rows(ts, labelled, fold, min_rows, y)
        test = np.flatnonzero((ts >= fold.test_start) & (ts <= fold.test_end))
        est = _fit(params, X[train], y[train])
        proba[test] = est.predict_proba(X[test])[:, 1]
        fold_of[test] = fold.k
        rows.append(len(train))
        accs.append(float(est.score(X[train], y[train])))
        on_fold(fold.k)
    return WalkForward(proba, fold_of, rows, accs)


def shuffled_control(X: np.ndarray, y: np.ndarray, ts: np.ndarray, folds: list[Fold],
                     params: ModelParams, repeats: int, min_rows: int,
                     on_fold: Callable[[int], None]) -> np.ndarray:
    """The same walk-forward with each train window's labels permuted (seeded), `repeats`
    times: P(up) per repeat and row, shape (repeats, rows), NaN outside the test windows. A
    model that learns nothing real can only score chance here."""
    labelled = ~np.isnan(y)
    proba = np.full((repeats, len(y)), np.nan)
    done = 0
    for r in range(repeats):
        for fold in folds:
            train = _train_rows(ts, labelled, fold, min_rows, y)
            test = np.flatnonzero((ts >= fold.test_start) & (ts <= fold.test_end))
            rng = np.random.default_rng([params.seed, r, fold.k])
            est = _fit(params, X[train], rng.permutation(y[train]))
            proba[r, test] = est.predict_proba(X[test])[:, 1]
            done += 1
            on_fold(done)
    return proba


def fit_final(X: np.ndarray, y: np.ndarray, params: ModelParams) -> HistGradientBoostingClassifier:
    """The model to deploy: every labelled row."""
    labelled = ~np.isnan(y)
    return _fit(params, X[labelled], y[labelled])


def make_artifact(est: HistGradientBoostingClassifier, X: np.ndarray, y: np.ndarray, *,
                  model_id: str, features: list[str], meta: dict[str, Any]) -> dict[str, Any]:
    """The dict saved as model.joblib."""
    labelled = np.flatnonzero(~np.isnan(y))
    sample = X[labelled[-SAMPLE_ROWS:]].copy()
    return {
        "format": FORMAT, "id": model_id, "estimator": est, "features": list(features),
        "classes": [int(c) for c in est.classes_],
        "sample_X": sample, "sample_proba": est.predict_proba(sample)[:, 1],
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        **meta,
    }


def save(artifact: dict[str, Any], path: Path) -> str:
    """Write atomically (temp + fsync + rename); return the file's sha256."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        joblib.dump(artifact, tmp)
        with open(tmp, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


class ArtifactError(ValueError):
    """Raised when a model file is not a usable retrain artifact."""


def load(path: Path) -> dict[str, Any]:
    """Load and sanity-check a model.joblib (a pickle: only load files this job wrote)."""
    try:
        artifact = joblib.load(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such file") from None
    except Exception as exc:  # unpickling can raise anything
        raise ArtifactError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from exc
    if not isinstance(artifact, dict) or artifact.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a retrain model (format "
                            f"{artifact.get('format') if isinstance(artifact, dict) else type(artifact).__name__!r}, "
                            f"expected {FORMAT!r})")
    for key in ("estimator", "features", "sample_X", "sample_proba", "enter"):
        if key not in artifact:
            raise ArtifactError(f"{path}: the artifact has no {key!r}")
    if not hasattr(artifact["estimator"], "predict_proba"):
        raise ArtifactError(f"{path}: the estimator cannot predict probabilities")
    return artifact  # type: ignore[no-any-return]


def predict_up(artifact: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """P(up) from an artifact for rows of its own feature columns."""
    return artifact["estimator"].predict_proba(X)[:, 1]  # type: ignore[no-any-return]
