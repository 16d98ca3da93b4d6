"""workers/retrain/_folds.py: walk-forward folds with a purge gap and an embargo."""

from __future__ import annotations

import numpy as np
import pytest

from workers.retrain._folds import bars_between, walk_forward
from workers.retrain.config import BAR_MS, HORIZON_BARS

CLOCK = np.arange(1000, dtype=np.int64) * BAR_MS


def test_expanding_folds_tile_the_end_of_the_clock_like_timeseriessplit() -> None:
    folds = walk_forward(CLOCK, folds=5, gap_bars=13)
    size = 1000 // 6
    assert [f.k for f in folds] == [1, 2, 3, 4, 5]
    assert folds[-1].test_end == CLOCK[-1]
    for a, b in zip(folds, folds[1:]):
        assert b.test_start == a.test_end + BAR_MS  # consecutive test windows
        assert b.train_start == a.train_start == 0  # expanding
    assert all((f.test_end - f.test_start) // BAR_MS + 1 == size for f in folds)


@pytest.mark.parametrize("gap", [HORIZON_BARS, 13, 40])
def test_no_training_label_reaches_into_its_test_window(gap: int) -> None:
    for f in walk_forward(CLOCK, folds=6, gap_bars=gap):
        # the last training bar's label looks HORIZON_BARS ahead; it must end before the test
        assert f.train_end + HORIZON_BARS * BAR_MS < f.test_start
        assert bars_between(f.train_end, f.test_start) == gap


def test_rolling_windows_keep_a_fixed_number_of_training_bars() -> None:
    folds = walk_forward(CLOCK, folds=5, gap_bars=13, train_bars=200)
    lengths = [(f.train_end - f.train_start) // BAR_MS + 1 for f in folds]
    assert lengths[0] == 1000 - 5 * 166 - 13  # the first fold has fewer bars than the window
    assert lengths[1:] == [200] * 4 and folds[-1].train_start > folds[0].train_start


def test_test_bars_overrides_the_fold_size() -> None:
    folds = walk_forward(CLOCK, folds=5, gap_bars=13, test_bars=24)
    assert folds[0].test_start == CLOCK[1000 - 5 * 24]


def test_a_clock_too_short_for_the_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold 5 test folds"):
        walk_forward(CLOCK[:40], folds=5, gap_bars=13)
