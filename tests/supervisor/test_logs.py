"""supervisor/logs.py: copy-truncate rotation under a live O_APPEND writer, and tail."""

from __future__ import annotations

import os
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.logs import open_for_child, rotate_if_needed, size_of, tail


@pytest.fixture
def child_fd(tmp_path: Path) -> Iterator[int]:
    fd = open_for_child(tmp_path / "stderr.log")
    yield fd
    os.close(fd)


def test_open_for_child_is_owner_only_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"earlier run\n")
    fd = open_for_child(path)
    try:
        os.write(fd, b"more\n")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"earlier run\nmore\n"
    fresh = tmp_path / "stderr.log"
    os.close(open_for_child(fresh))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("size", "rotated"),
    [(0, False), (99, False), (100, False), (101, True)],
    ids=["empty", "under", "exactly-at-cap", "over"],
)
def test_rotate_only_when_over_the_cap(tmp_path: Path, size: int, rotated: bool) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"x" * size)
    moved = rotate_if_needed(path, max_bytes=100, backups=3)
    assert moved == (size if rotated else 0)
    assert path.stat().st_size == (0 if rotated else size)
    assert (tmp_path / "stdout.log.1").exists() is rotated


def test_rotate_missing_file_is_a_no_op(tmp_path: Path) -> None:
    assert rotate_if_needed(tmp_path / "nope.log", 10, 3) == 0
    assert list(tmp_path.iterdir()) == []


def test_rotate_shifts_backups_and_keeps_at_most_backups(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    generations = [f"generation {i}\n".encode() * 20 for i in range(5)]
    for gen in generations:
        with path.open("ab") as f:
            f.write(gen)
        assert rotate_if_needed(path, max_bytes=100, backups=2) == len(gen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stdout.log", "stdout.log.1", "stdout.log.2"]
    # each backup keeps the newest max_bytes of its generation, after a note of what was dropped
    for name, gen in (("stdout.log.1", generations[4]), ("stdout.log.2", generations[3])):
        head, _, kept = (tmp_path / name).read_bytes().partition(b"\n")
        assert head == f"[proofwatch: {len(gen) - 100} earlier bytes dropped: over log_max_bytes]".encode()
        assert kept == gen[-100:]
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert path.read_bytes() == b""


def test_rotate_without_backups_just_truncates(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"y" * 500)
    assert rotate_if_needed(path, max_bytes=100, backups=0) == 500
    assert [p.name for p in tmp_path.iterdir()] == ["stdout.log"]
    assert size_of(path) == 0


def test_rotate_under_an_append_writer_leaves_no_nul_hole(tmp_path: Path, child_fd: int) -> None:
    path = tmp_path / "stderr.log"
    before = b"".join(f"line {i}\n".encode() for i in range(1000))
    os.write(child_fd, before)
    assert rotate_if_needed(path, max_bytes=len(before) - 1, backups=1) == len(before)
    os.write(child_fd, b"after rotation\n")  # the child's fd is still at its old offset
    assert path.read_bytes() == b"after rotation\n"
    assert (tmp_path / "stderr.log.1").read_bytes().endswith(before[1:])
    assert size_of(path) == len(b"after rotation\n")


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    path.write_text("".join(f"stderr line {i}\n" for i in range(30)) + "fatal: FEED_TOKEN is not set\n")
    assert tail(path, 3) == ["stderr line 28", "stderr line 29", "fatal: FEED_TOKEN is not set"]
    assert len(tail(path)) == 20
    assert tail(path, 100)[0] == "stderr line 0"


def test_tail_keeps_a_last_line_without_newline_and_survives_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    path.write_bytes(b"one\n\xff\xfe two\nthree")
    assert tail(path, 2) == ["\ufffd\ufffd two", "three"]


def test_tail_of_a_missing_or_empty_file_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "missing.log") == []
    (tmp_path / "empty.log").write_bytes(b"")
    assert tail(tmp_path / "empty.log") == []


def test_tail_reads_only_the_end_of_a_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    with path.open("wb") as f:
        f.truncate(2 * 1024**3)  # a sparse 2 GiB file: reading it all would show
        f.seek(0, os.SEEK_END)
        f.write(b"".join(b"row %06d\n" % i for i in range(20000)))
    tracemalloc.start()
    try:
        lines = tail(path, 5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == [f"row {i:06d}" for i in range(19995, 20000)]
    assert peak < 1024**2


def test_tail_drops_the_line_cut_by_the_read_window(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"".join(b"row %07d\n" % i for i in range(50000)))  # 12-byte lines
    lines = tail(path, 100000)  # more than the window holds
    assert 1000 < len(lines) < 50000
    assert all(len(line) == 11 and line.startswith("row ") for line in lines), lines[0]
    assert lines[-1] == "row 0049999"
