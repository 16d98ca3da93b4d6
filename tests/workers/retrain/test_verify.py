"""python -m workers.retrain.verify: the command proof refuses anything but the trained model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import joblib
import pytest

from workers.retrain._job import run
from workers.retrain.synthetic import Market
from workers.retrain.verify import main
from workers.sdk import Run

from .conftest import SIGNAL, settings


@pytest.fixture(scope="module")
def model_dir(store_of: Callable[[Market], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify")
    run(settings(store_of(SIGNAL), out / "run", promote=False), Run(None))
    return out / "run"


def test_the_trained_model_passes(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(model_dir / "model.joblib")]) == 0
    said = capsys.readouterr().out
    assert "reproduces its 64 recorded predictions" in said and "matches metrics.json" in said


def test_a_model_whose_predictions_changed_fails(model_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    art = joblib.load(model_dir / "model.joblib")
    art["sample_proba"] = art["sample_proba"] * 0.5
    joblib.dump(art, tmp_path / "model.joblib")
    assert main([str(tmp_path / "model.joblib")]) == 1
    assert "differ from the recorded ones" in capsys.readouterr().err


def test_a_model_that_metrics_json_does_not_describe_fails(model_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.joblib").write_bytes((model_dir / "model.joblib").read_bytes())
    doc = json.loads((model_dir / "metrics.json").read_bytes())
    doc["model"]["sha256"] = "0" * 64
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    assert main([str(tmp_path / "model.joblib")]) == 1
    assert "metrics.json describes model" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not a pickle", None], ids=["empty", "garbage", "missing"])
def test_anything_else_fails_with_the_reason(tmp_path: Path, content: bytes | None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.joblib"
    if content is not None:
        path.write_bytes(content)
    assert main([str(path)]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_a_pickle_of_something_else_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    joblib.dump({"format": "other"}, tmp_path / "model.joblib")
    assert main([str(tmp_path / "model.joblib")]) == 1
    assert "not a retrain model" in capsys.readouterr().err
