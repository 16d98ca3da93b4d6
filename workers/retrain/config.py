"""The retrain builder's settings, validated once at the edge (the CLI) into a frozen object.

Costs (api-reference A.6): BloFin's taker fee is 0.060 % per side (the ccxt default; an
account's tier may differ), slippage defaults to 0.052 % per side, so a round trip costs
2 x (0.060 + 0.052) % = 0.224 %.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from policies.trading import GateSettings
from workers.retrain.errors import ConfigError

BAR_MS = 300_000  # the model's bar: 5 minutes
MINUTE_MS = 60_000
HORIZON_BARS = 1  # the label looks one bar ahead
TAKER_FEE = 0.0006
SLIPPAGE = 0.00052
INST_RE = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)+$")


@dataclass(frozen=True)
class ModelParams:
    """HistGradientBoostingClassifier hyper-parameters (fixed seed: runs are reproducible)."""

    max_iter: int = 100
    learning_rate: float = 0.05
    max_leaf_nodes: int = 8
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    seed: int = 7


@dataclass(frozen=True)
class Settings:
    """Everything one run needs; see `python -m workers.retrain --help`."""

    data_dir: Path
    out_dir: Path
    instruments: tuple[str, ...] = ()  # empty: every instrument in the store
    days: float = 30.0  # history read, counted back from the newest 1m candle
    folds: int = 5
    test_bars: int = 0  # bars per test fold; 0: timeline // (folds + 1), as TimeSeriesSplit
    train_bars: int = 0  # 0: expanding train window; N: rolling window of N bars
    embargo_bars: int = 12  # dropped between train and test on top of the label horizon
    min_bars: int = 432  # 5-minute bars (36 h) an instrument needs before a walk-forward
    min_train_rows: int = 50  # labelled rows the first fold must train on
    fee: float = TAKER_FEE  # per side
    slippage: float = SLIPPAGE  # per side
    enter: float = 0.55  # long when P(up) >= enter, short when P(up) <= 1 - enter
    model: ModelParams = field(default_factory=ModelParams)
    control_repeats: int = 3  # shuffled-label control runs (averaged)
    gates: GateSettings = field(default_factory=GateSettings)
    models_dir: Path | None = None  # default <data_dir>/models
    promote: bool = True  # False: evaluate only, never touch the registry
    keep_candidates: int = 48  # non-promoted candidates kept in models/candidates/
    progress: Literal["auto", "always", "never"] = "auto"
    threads: int = 1  # OpenMP threads per fit (small fits are fastest, and fairest to a busy host, on one)

    def __post_init__(self) -> None:
        for inst in self.instruments:
            if not INST_RE.match(inst):
                raise ConfigError(f"--instruments: {inst!r} is not a BloFin instId (e.g. BTC-USDT)")
        if len(set(self.instruments)) != len(self.instruments):
            raise ConfigError(f"--instruments: duplicates in {','.join(self.instruments)}")
        m, g = self.model, self.gates
        checks = [
            ("--days", self.days > 0, "must be > 0"),
            ("--folds", self.folds >= 5, "must be >= 5 (a walk-forward needs at least 5 folds)"),
            ("--test-bars", self.test_bars >= 0, "must be >= 0 (0: timeline // (folds + 1))"),
            ("--train-bars", self.train_bars >= 0, "must be >= 0 (0: expanding window)"),
            ("--embargo-bars", self.embargo_bars >= 0, "must be >= 0"),
            ("--min-bars", self.min_bars >= 1, "must be >= 1"),
            ("--min-train-rows", self.min_train_rows >= 10, "must be >= 10"),
            ("--fee", 0 <= self.fee < 0.01, "is a fraction per side in [0, 0.01) (0.0006 = 0.06 %)"),
            ("--slippage", 0 <= self.slippage < 0.01,
             "is a fraction per side in [0, 0.01) (0.00052 = 0.052 %)"),
            ("--enter", 0.5 < self.enter < 1, "must be in (0.5, 1): the P(up) that opens a long"),
            ("--max-iter", m.max_iter >= 1, "must be >= 1"),
            ("--learning-rate", 0 < m.learning_rate <= 1, "must be in (0, 1]"),
            ("--max-leaf-nodes", m.max_leaf_nodes >= 2, "must be >= 2"),
            ("--min-samples-leaf", m.min_samples_leaf >= 1, "must be >= 1"),
            ("--l2", m.l2_regularization >= 0, "must be >= 0"),
            ("--control-repeats", self.control_repeats >= 1, "must be >= 1"),
            ("--keep-candidates", self.keep_candidates >= 0, "must be >= 0"),
            ("--threads", self.threads >= 1, "must be >= 1"),
            ("--min-trades", g.min_trades >= 1, "must be >= 1"),
            ("--min-trades-per-arm", g.min_trades_per_arm >= 1, "must be >= 1"),
            ("--leakage-accuracy", 0.5 < g.leakage_accuracy <= 1, "must be in (0.5, 1]"),
            ("--chance-tolerance", 0 < g.chance_tolerance < 0.5, "must be in (0, 0.5)"),
        ]
        for flag, ok, why in checks:
            if not ok:
                raise ConfigError(f"{flag}: {why}")

    @property
    def cost_per_side(self) -> float:
        """Fee plus slippage paid on each entry and each exit."""
        return self.fee + self.slippage

    @property
    def round_trip(self) -> float:
        """What a position costs to open and close; a label must beat it."""
        return 2 * self.cost_per_side

    @property
    def gap_bars(self) -> int:
        """Bars left out between each train window and its test window (purge + embargo)."""
        return HORIZON_BARS + self.embargo_bars

    @property
    def registry_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["data_dir"], doc["out_dir"] = str(self.data_dir), str(self.out_dir)
        doc["models_dir"] = str(self.registry_dir)
        doc["instruments"] = list(self.instruments)
        doc["cost_per_side"], doc["round_trip"] = self.cost_per_side, self.round_trip
        doc["gap_bars"], doc["horizon_bars"] = self.gap_bars, HORIZON_BARS
        return doc
