"""workers/retrain/_registry.py: atomic promotion; former models archived, never deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from workers.retrain._registry import SCHEMA, Registry
from workers.retrain.errors import RegistryError


def _files(tmp_path: Path, name: str) -> list[Path]:
    d = tmp_path / f"run-{name}"
    d.mkdir()
    (d / "model.joblib").write_bytes(f"model {name}".encode())
    (d / "metrics.json").write_text(json.dumps({"id": name}))
    return [d / "model.joblib", d / "metrics.json"]


def _record(reg: Registry, tmp_path: Path, name: str, promoted: bool, keep: int = 48) -> dict[str, object]:
    return reg.record(_files(tmp_path, name), {"id": name, "sha256": "x"}, promoted=promoted,
                      verdict=f"verdict {name}", run_id=f"run-{name}", keep_candidates=keep)


def test_a_promotion_archives_the_previous_model_and_keeps_its_files(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    assert reg.current() is None
    _record(reg, tmp_path, "m1", promoted=True)
    assert reg.current()["id"] == "m1"  # type: ignore[index]
    assert reg.model_path(reg.current()).read_bytes() == b"model m1"  # type: ignore[arg-type]
    _record(reg, tmp_path, "m2", promoted=True)
    doc = reg.read()
    assert doc["schema"] == SCHEMA and doc["current"]["id"] == "m2"
    assert [e["id"] for e in doc["archive"]] == ["m1"] and doc["archive"][0]["replaced_by"] == "m2"
    assert (tmp_path / "models" / "archive" / "m1" / "model.joblib").read_bytes() == b"model m1"
    assert reg.model_path(doc["archive"][0]).exists() and not (tmp_path / "models" / "m1").exists()
    assert [h["id"] for h in doc["history"]] == ["m2", "m1"]
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert leftovers == []  # no temp files or directories left behind


def test_a_candidate_not_promoted_is_kept_and_the_current_model_untouched(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    _record(reg, tmp_path, "m1", promoted=True)
    stored = _record(reg, tmp_path, "c1", promoted=False)
    assert stored["path"] == "candidates/c1/model.joblib"
    doc = reg.read()
    assert doc["current"]["id"] == "m1" and [c["id"] for c in doc["candidates"]] == ["c1"]
    assert (tmp_path / "models" / "candidates" / "c1" / "metrics.json").exists()
    assert doc["history"][0] == {**doc["history"][0], "id": "c1", "promoted": False, "verdict": "verdict c1"}


def test_only_the_newest_candidates_are_kept_and_archived_models_never_pruned(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    _record(reg, tmp_path, "m1", promoted=True)
    _record(reg, tmp_path, "m2", promoted=True)
    for i in range(4):
        _record(reg, tmp_path, f"c{i}", promoted=False, keep=2)
    doc = reg.read()
    assert [c["id"] for c in doc["candidates"]] == ["c3", "c2"]
    assert sorted(p.name for p in (tmp_path / "models" / "candidates").iterdir()) == ["c2", "c3"]
    assert (tmp_path / "models" / "archive" / "m1").is_dir()


def test_an_archive_move_interrupted_by_a_crash_is_finished_by_the_next_run(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    _record(reg, tmp_path, "m1", promoted=True)
    _record(reg, tmp_path, "m2", promoted=True)
    root = tmp_path / "models"
    os.replace(root / "archive" / "m1", root / "m1")  # as if the process died before the move
    _record(reg, tmp_path, "c1", promoted=False)
    assert (root / "archive" / "m1" / "model.joblib").exists() and not (root / "m1").exists()


def test_a_corrupt_registry_fails_loudly_and_is_not_overwritten(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "registry.json").write_text("{oops")
    reg = Registry(root)
    with pytest.raises(RegistryError, match="cannot read the registry"):
        _record(reg, tmp_path, "m1", promoted=True)
    assert (root / "registry.json").read_text() == "{oops"
