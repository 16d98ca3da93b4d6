"""supervisor/proofs.py: a proof is fresh, big enough, inside its root, and hashed."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from supervisor.config import ProofSpec
from supervisor.proofs import failure_summary, verify_all, verify_spec
from tests.supervisor.test_proof_kinds import png_bytes

STARTED = datetime.now(timezone.utc) - timedelta(minutes=5)


def write(path: Path, data: bytes, *, age_before_start: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age_before_start is not None:
        t = (STARTED - timedelta(seconds=age_before_start)).timestamp()
        os.utime(path, (t, t))
    return path


def check(spec: ProofSpec, run_dir: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    return verify_spec(spec, run_dir, data_dir, STARTED)


def test_proof_fresh_file_is_ok_with_size_and_sha256(run_dir: Path, data_dir: Path) -> None:
    body = b'{"opportunities": []}'
    write(run_dir / "arbs.json", body)
    [result] = check(ProofSpec(path="arbs.json", kind="json"), run_dir, data_dir)
    assert (result.path, result.kind, result.ok, result.detail) == ("arbs.json", "json", True, "ok")
    assert result.size == len(body)
    assert result.sha256 == hashlib.sha256(body).hexdigest()
    assert result.mtime is not None and result.mtime >= STARTED
    assert result.checks == ["fresh", "not empty", "valid JSON"]
    assert failure_summary([result]) is None


def test_proof_stale_file_fails(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "model.joblib", b"m" * 100, age_before_start=60)
    results = check(ProofSpec(path="model.joblib"), run_dir, data_dir)
    assert [r.ok for r in results] == [False, False]
    assert results[0].detail.startswith("stale: modified ")
    assert f"before the run started {STARTED.isoformat()}" in results[0].detail
    assert results[0].sha256 == hashlib.sha256(b"m" * 100).hexdigest()  # recorded all the same
    assert results[1].detail == "missing: 1 matched, 0 valid; min_count is 1"
    summary = failure_summary(results)
    assert summary is not None and summary.startswith("unproven: model.joblib: stale: ")


def test_proof_missing_file_fails(run_dir: Path, data_dir: Path) -> None:
    [result] = check(ProofSpec(path="out.json"), run_dir, data_dir)
    assert not result.ok
    assert result.detail == "missing: nothing matched; min_count is 1"
    assert failure_summary([result]) == "unproven: out.json: missing: nothing matched; min_count is 1"


@pytest.mark.parametrize(
    ("size", "ok", "detail"),
    [(9999, False, "too small: 9999 bytes < min_bytes 10000"), (10000, True, "ok")],
    ids=["one-byte-short", "exactly-min_bytes"],
)
def test_proof_min_bytes(run_dir: Path, data_dir: Path, size: int, ok: bool, detail: str) -> None:
    write(run_dir / "model.joblib", b"\0" * size)
    results = check(ProofSpec(path="model.joblib", min_bytes=10000), run_dir, data_dir)
    assert (results[0].ok, results[0].detail, results[0].size) == (ok, detail, size)
    assert all(r.ok for r in results) is ok


@pytest.mark.parametrize(
    ("fresh", "stale", "ok"),
    [(3, 0, True), (4, 0, True), (2, 0, False), (2, 1, False), (3, 2, True), (0, 0, False)],
    ids=["exactly-min_count", "more", "too-few", "stale-does-not-count", "stale-ignored-when-enough", "none"],
)
def test_proof_glob_needs_min_count_fresh_files(
    run_dir: Path, data_dir: Path, fresh: int, stale: int, ok: bool
) -> None:
    for i in range(fresh):
        write(run_dir / "screens" / f"fresh{i}.png", png_bytes())
    for i in range(stale):
        write(run_dir / "screens" / f"stale{i}.png", png_bytes(), age_before_start=5)
    write(run_dir / "screens" / "notes.txt", b"not a screenshot")
    results = check(ProofSpec(path="screens/*.png", kind="png", min_count=3), run_dir, data_dir)
    per_file = [r for r in results if r.path != "screens/*.png"]
    # files left over from an earlier run are neither counted nor failures of this run
    assert sorted(r.path for r in per_file) == sorted(f"screens/fresh{i}.png" for i in range(fresh))
    assert all(r.ok for r in results) is ok
    if not ok:
        found = f"{fresh} matched, {fresh} valid" if fresh else "nothing matched"
        ignored = f" ({stale} older file from before this run ignored)" if stale else ""
        assert results[-1].path == "screens/*.png"
        assert results[-1].detail == f"missing: {found}; min_count is 3{ignored}"


def test_proof_recursive_glob(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "a" / "b" / "x.csv", b"1,2\n")
    write(run_dir / "y.csv", b"3,4\n")
    results = check(ProofSpec(path="**/*.csv", min_count=2), run_dir, data_dir)
    assert sorted(r.path for r in results) == ["a/b/x.csv", "y.csv"]
    assert all(r.ok for r in results)


@pytest.mark.parametrize(
    "path",
    ["../r0/arbs.json", "sub/../../r0/arbs.json", "/etc/passwd", "data:../secrets.txt", "data:/etc/passwd"],
    ids=["dotdot", "nested-dotdot", "absolute", "data-dotdot", "data-absolute"],
)
def test_proof_paths_escaping_their_root_are_refused(run_dir: Path, data_dir: Path, path: str) -> None:
    write(run_dir.parent / "r0" / "arbs.json", b"{}")  # exists, fresh: only the path is wrong
    write(data_dir.parent / "secrets.txt", b"{}")
    [result] = check(ProofSpec(path=path), run_dir, data_dir)
    assert not result.ok
    assert result.path == path
    assert result.detail.startswith(f"refused: {path!r} must stay inside ")
    assert result.sha256 is None


@pytest.mark.parametrize("target", ["file", "dir"], ids=["file-link", "dir-link"])
def test_proof_symlink_escape_is_refused(run_dir: Path, data_dir: Path, tmp_path: Path, target: str) -> None:
    outside = write(tmp_path / "elsewhere" / "arbs.json", b'{"opportunities": [1]}')
    if target == "file":
        (run_dir / "arbs.json").symlink_to(outside)
        spec = ProofSpec(path="arbs.json")
    else:
        (run_dir / "out").symlink_to(outside.parent, target_is_directory=True)
        spec = ProofSpec(path="out/*.json")
    results = check(spec, run_dir, data_dir)
    assert not any(r.ok for r in results)
    assert results[0].detail == (f"refused: escapes the run dir: resolves outside {run_dir} "
                                 f"(symlink escape to {outside})")
    assert results[0].sha256 is None and results[0].size is None  # nothing read outside
    assert results[-1].detail == "missing: 1 matched, 0 valid; min_count is 1"


def test_proof_symlink_inside_the_run_dir_is_fine(run_dir: Path, data_dir: Path) -> None:
    real = write(run_dir / "real" / "arbs.json", b"{}")
    (run_dir / "arbs.json").symlink_to(real)
    [result] = check(ProofSpec(path="arbs.json"), run_dir, data_dir)
    assert result.ok


def test_proof_data_prefix_resolves_in_the_data_dir(run_dir: Path, data_dir: Path) -> None:
    write(data_dir / "models" / "m.joblib", b"model")
    write(run_dir / "models" / "m.joblib", b"decoy")
    [result] = check(ProofSpec(path="data:models/m.joblib"), run_dir, data_dir)
    assert (result.path, result.ok) == ("data:models/m.joblib", True)
    assert result.sha256 == hashlib.sha256(b"model").hexdigest()


def test_proof_run_dir_with_glob_characters_in_its_path(tmp_path: Path, data_dir: Path) -> None:
    # regression: the root was globbed too, so a state_dir like "var[1]" matched nothing
    run_dir = tmp_path / "var[1]" / "r1"
    write(run_dir / "arbs.json", b"{}")
    [result] = check(ProofSpec(path="arbs.json"), run_dir, data_dir)
    assert (result.path, result.ok) == ("arbs.json", True)


def test_verify_all_checks_sdk_declared_absolute_paths_inside_the_run_dir(
    run_dir: Path, data_dir: Path
) -> None:
    write(run_dir / "extra" / "report.txt", b"report")
    write(data_dir / "ticks.parquet", b"PAR1")
    results = verify_all([], [str(run_dir / "extra" / "report.txt"), str(data_dir / "ticks.parquet")],
                         run_dir, data_dir, STARTED)
    assert [(r.path, r.ok) for r in results] == [("extra/report.txt", True), ("data:ticks.parquet", True)]


def test_verify_all_refuses_sdk_declared_paths_outside_both_roots(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    outside = write(tmp_path / "elsewhere.txt", b"x")
    [result] = verify_all([], [str(outside)], run_dir, data_dir, STARTED)
    assert not result.ok
    assert result.detail.startswith("refused: ")


def test_verify_all_checks_a_declared_stale_proof(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "old.txt", b"x", age_before_start=1)
    results = verify_all([], ["old.txt"], run_dir, data_dir, STARTED)
    assert results[0].detail.startswith("stale: ")
    assert failure_summary(results) is not None


def test_verify_all_does_not_verify_a_configured_proof_twice(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "arbs.json", b"{}")
    write(run_dir / "screens" / "1.png", png_bytes())
    results = verify_all(
        [ProofSpec(path="arbs.json", kind="json"), ProofSpec(path="screens/*.png", kind="png")],
        ["arbs.json", str(run_dir / "arbs.json"), str(run_dir / "screens" / "1.png"), "arbs.json"],
        run_dir, data_dir, STARTED,
    )
    assert [(r.path, r.kind) for r in results] == [("arbs.json", "json"), ("screens/1.png", "png")]


def test_verify_all_declared_proof_missing_is_reported(run_dir: Path, data_dir: Path) -> None:
    results = verify_all([], ["out/result.json"], run_dir, data_dir, STARTED)
    assert failure_summary(results) == "unproven: out/result.json: missing: nothing matched; min_count is 1"


def test_proof_records_every_check_it_passed(run_dir: Path, data_dir: Path) -> None:
    for i in range(3):
        write(run_dir / "screens" / f"{i}.png", png_bytes(1280, 720))  # ~1 KB of flat grey
    results = check(ProofSpec(path="screens/*.png", kind="png", min_count=3, min_bytes=500), run_dir, data_dir)
    assert [r.checks for r in results] == [["fresh", ">= 500 bytes", "PNG 1280x720", ">= 3 files"]] * 3


def test_proof_naive_started_at_means_local_time(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "out.txt", b"x")
    naive = STARTED.astimezone().replace(tzinfo=None)
    [result] = verify_spec(ProofSpec(path="out.txt"), run_dir, data_dir, naive)
    assert result.ok
