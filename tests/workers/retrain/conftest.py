"""Synthetic stores (the ingestor's layout) and fast settings for the retrain tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policies.trading import GateSettings
from workers.retrain import ModelParams, Settings
from workers.retrain.synthetic import Market, write_store

FAST = ModelParams(max_iter=30, max_leaf_nodes=6, min_samples_leaf=20)
SIGNAL = Market(days=3.0, signal=0.5, vol_5m=0.006, seed=3, ticks=40_000, tick_days=1.0)
RANDOM_WALK = Market(days=3.0, signal=0.0, vol_5m=0.005, seed=5)


def settings(data: Path, out: Path, **kw: Any) -> Settings:
    """Settings for a quick run (few boosting iterations, no progress bar)."""
    gates = kw.pop("gates", GateSettings())
    return Settings(data_dir=data, out_dir=out, model=kw.pop("model", FAST), gates=gates,
                    progress="never", **kw)


@pytest.fixture(scope="session")
def store_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Market], Path]:
    """A data dir holding `market`, written once per session and never modified by tests."""
    made: dict[Market, Path] = {}

    def make(market: Market) -> Path:
        if market not in made:
            d = tmp_path_factory.mktemp("store")
            write_store(d, market)
            made[market] = d
        return made[market]

    return make


def copy_store(src: Path, dest: Path) -> Path:
    """A private copy of a data dir (for tests that promote into its models/ registry)."""
    import shutil

    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("models"))
    return dest


def market(**changes: Any) -> Market:
    return dataclasses.replace(Market(), **changes)
