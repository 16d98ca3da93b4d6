"""The bench's report writer rewrites only a regular file: `--out /dev/null` once replaced the
device with a file (a temp file renamed over it), which broke every later `> /dev/null`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bench import _report
from bench.__main__ import parse_args


def test_out_that_is_not_a_regular_file_is_refused_before_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--out", "/dev/null"])
    assert exit_.value.code == 2
    assert "--out /dev/null: not a regular file" in capsys.readouterr().err
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)


def test_a_directory_is_refused_and_a_markdown_file_is_written(tmp_path: Path) -> None:
    with pytest.raises(_report.OutError):
        _report.write(tmp_path, "compare", "body")
    out = tmp_path / "PERF.md"
    _report.write(out, "compare", "the figures")
    assert "<!-- bench:compare:begin -->\nthe figures\n<!-- bench:compare:end -->" in out.read_text()
    assert parse_args(["--out", str(out)]).out == out
