"""workers/atomic.py: the one atomic writer every worker uses for its proofs."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.atomic import temp_name, write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "odds.json"
    path.write_text("old")
    write_atomic(path, b'{"new": true}')
    assert path.read_bytes() == b'{"new": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["odds.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path: Path) -> None:
    path = tmp_path / "arbs.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert not temp_name(path).exists()


def test_a_missing_directory_raises_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nope" / "x.csv", b"a,b\n")
    assert not (tmp_path / "nope").exists()
