"""The retrain builder (`python -m workers.retrain`), a proofwatch `task` job.

May import: workers.sdk, workers.protocol, workers.ingestor.store (the part layout and metadata
names; the job only reads the store -- synthetic.py writes test stores through the ingestor's
own PartStore and Manifest), policies.trading (the pure gates), and pandas, numpy, scikit-learn,
joblib, threadpoolctl, matplotlib (Agg), pyarrow, rich. Never supervisor/ or status/.

    __main__    CLI: arguments -> Settings, exit codes, the verdict as stderr's last line
    config      Settings (validated once, frozen), costs, bar size
    errors      the exception tree
    verify      `python -m workers.retrain.verify model.joblib`: the command proof
    synthetic   stores in the ingestor's layout with a planted signal or none (tests, bench)
    _store      a consistent read of the ingestor's Parquet parts (manifest, compaction race)
    _ticks      ticks reduced to 5-minute aggregates part by part, cached
    _bars       5-minute bars on a strict grid (missing bars explicit), tick aggregates on it
    _features   features strictly from the past; the label
    _folds      walk-forward folds with purge gap and embargo
    _model      the classifier: fold fits, shuffled-label control, final fit, model.joblib
    _evaluate   trade simulation; Sharpe, drawdown, profit factor, expectancy; accuracy, F1
    _ab         the A/B against the incumbent on the shared out-of-fold period
    _registry   data/models/registry.json: atomic promotion, archive, kept candidates
    _report     report.html with embedded plots
    _outputs    metrics.json, walk_forward.csv, atomic writes
    _progress   heartbeats per fold, rich progress bar
    _job        one run, start to end
"""

from workers.retrain.config import BAR_MS, SLIPPAGE, TAKER_FEE, ModelParams, Settings
from workers.retrain.errors import (
    ConfigError,
    DataError,
    NotEnoughHistory,
    RegistryError,
    RetrainError,
)

__all__ = [
    "BAR_MS",
    "ConfigError",
    "DataError",
    "ModelParams",
    "NotEnoughHistory",
    "RegistryError",
    "RetrainError",
    "SLIPPAGE",
    "Settings",
    "TAKER_FEE",
]
