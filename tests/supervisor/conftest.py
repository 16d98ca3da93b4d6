"""Fixtures shared by the supervisor tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run's directory, where the supervisor would make it."""
    d = tmp_path / "var" / "runs" / "job" / "r1"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The shared data dir."""
    d = tmp_path / "data"
    d.mkdir()
    return d
