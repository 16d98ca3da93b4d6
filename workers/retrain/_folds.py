"""Walk-forward folds on the 5-minute clock, with a purge gap and an embargo.

Like scikit-learn's TimeSeriesSplit (api-reference G.1), but on time, not on row numbers, so
every instrument shares the same fold boundaries: the last `folds * test_bars` bars of the
timeline are cut into `folds` consecutive test windows (test_bars defaults to
len(timeline) // (folds + 1)); each fold trains on the bars before its test window, minus a gap
of `horizon + embargo` bars right before it. The label of a bar looks `horizon` bars ahead, so
the gap purges every training label that could overlap the test window (AFML ch. 7; G.2), and
the embargo also drops the bars whose features overlap it most. Train windows expand, or roll
over the last `train_bars` bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workers.retrain.config import BAR_MS


@dataclass(frozen=True)
class Fold:
    """One fold; all bounds are bar open times in ms, inclusive."""

    k: int  # 1-based
    train_start: int
    train_end: int
    test_start: int
    test_end: int
    gap_bars: int

    def to_json(self) -> dict[str, int]:
        return {"fold": self.k, "train_start_ms": self.train_start, "train_end_ms": self.train_end,
                "test_start_ms": self.test_start, "test_end_ms": self.test_end,
                "gap_bars": self.gap_bars}


def walk_forward(clock: np.ndarray, *, folds: int, gap_bars: int, test_bars: int = 0,
                 train_bars: int = 0) -> list[Fold]:
    """The folds over `clock` (every bar open time, ascending, BAR_MS apart).

    Raises ValueError when the clock is too short for the first train window to hold a bar."""
    n = len(clock)
    size = test_bars or n // (folds + 1)
    first_test = n - folds * size
    if size < 1 or first_test - gap_bars < 1:
        raise ValueError(f"{n} bars cannot hold {folds} test folds of {size} bars after a train "
                         f"window and a {gap_bars}-bar gap")
    out = []
    for k in range(folds):
        lo = first_test + k * size
        train_hi = lo - gap_bars  # exclusive
        train_lo = max(0, train_hi - train_bars) if train_bars else 0
        out.append(Fold(k + 1, int(clock[train_lo]), int(clock[train_hi - 1]), int(clock[lo]),
                        int(clock[lo + size - 1]), gap_bars))
    return out


def bars_between(a_ms: int, b_ms: int) -> int:
    """Bars strictly between two bar open times."""
    return (b_ms - a_ms) // BAR_MS - 1
