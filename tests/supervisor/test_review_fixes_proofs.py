"""Regressions from review: proof files with non-UTF-8 names, and `**` through symlink loops.

1. A job's file named b"out-\\xff.txt" matched by a proof glob became a lone surrogate in
   ProofStatus.path: status.json could not be serialised (the StatusWriter died and took the
   daemon with it), and as run.error SQLite refused it (the recorder requeued the batch
   forever). Proof texts are now valid UTF-8; the StatusWriter survives a document it cannot
   serialise; the recorder quarantines rows that cannot be written even alone.
2. glob.glob(recursive=True) follows directory links, so `a -> .` and `b -> .` made `**` run
   forever. `**` no longer descends into links, and a glob examines at most MAX_GLOB_ENTRIES.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest

import supervisor.proofs as proofs_mod
from status.history import AlertRow, History
from status.models import JobState, ProofStatus
from supervisor.config import ProofSpec
from supervisor.confine import printable
from supervisor.proofs import _Glob, failure_summary, verify_all, verify_spec
from supervisor.recorder import SPLIT_AFTER, Recorder
from tests.supervisor.harness import job, reach, running

STARTED = datetime.now(timezone.utc) - timedelta(minutes=5)
BAD = b"out-\xff.txt"  # a legal Linux file name that is not UTF-8
SHOWN = "out-\\xff.txt"  # how proofs render it: backslash, x, two hex digits


def utf8_clean(proofs: list[ProofStatus]) -> None:
    for p in proofs:  # exactly what status.json and SQLite need
        for text in (p.path, p.kind, p.detail, *p.checks):
            text.encode("utf-8")
        p.model_dump_json()


# --- 1. non-UTF-8 names: the texts --------------------------------------------------------


def test_printable_renders_undecodable_bytes_visibly_and_keeps_valid_text() -> None:
    assert printable(os.fsdecode(BAD)) == SHOWN
    assert printable("plain é ✓") == "plain é ✓"
    assert printable("x\ud800y") == "x\\ud800y"  # a lone surrogate not from a file name (JSON, say)


def test_a_matched_file_with_a_non_utf8_name_is_verified_with_a_printable_label(
        run_dir: Path, data_dir: Path) -> None:
    with open(os.fsencode(run_dir) + b"/" + BAD, "wb") as f:
        f.write(b"the work\n")
    results = verify_spec(ProofSpec(path="*.txt", kind="text"), run_dir, data_dir, STARTED)
    utf8_clean(results)
    assert [(r.path, r.ok) for r in results] == [(SHOWN, True)]


def test_a_failing_non_utf8_proof_gives_a_printable_error(run_dir: Path, data_dir: Path) -> None:
    with open(os.fsencode(run_dir) + b"/" + BAD, "wb") as f:
        f.write(b"tiny")
    results = verify_all([ProofSpec(path="*.txt", kind="text", min_bytes=100)], [], run_dir, data_dir, STARTED)
    utf8_clean(results)
    assert results[0].path == SHOWN and not results[0].ok
    summary = failure_summary(results)
    assert summary is not None and SHOWN in summary
    summary.encode("utf-8")


def test_a_symlink_escape_through_non_utf8_names_is_refused_with_printable_text(
        run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    outside = os.fsencode(tmp_path) + b"/else-\xfe"
    os.mkdir(outside)
    with open(outside + b"/secret.json", "wb") as f:
        f.write(b"{}")
    os.symlink(outside + b"/secret.json", os.fsencode(run_dir) + b"/esc-\xff.json")
    results = verify_spec(ProofSpec(path="*.json", kind="json"), run_dir, data_dir, STARTED)
    utf8_clean(results)
    assert not any(r.ok for r in results)
    assert results[0].detail.startswith("refused: escapes the run dir")
    assert "else-\\xfe/secret.json" in results[0].detail
    assert results[0].sha256 is None  # never read


def test_a_worker_declared_path_with_a_lone_surrogate_is_printable(run_dir: Path, data_dir: Path) -> None:
    with open(os.fsencode(run_dir) + b"/" + BAD, "wb") as f:
        f.write(b"the work\n")
    # as the sdk would send os.fsdecode(name) through JSON: found on disk, printable in the result
    results = verify_all([], [os.fsdecode(BAD), "gone-\ud800.txt"], run_dir, data_dir, STARTED)
    utf8_clean(results)
    assert [(r.path, r.ok) for r in results][0] == (SHOWN, True)
    assert results[-1].path == "gone-\\ud800.txt" and not results[-1].ok


def test_a_declared_non_utf8_path_also_configured_is_verified_once(run_dir: Path, data_dir: Path) -> None:
    with open(os.fsencode(run_dir) + b"/" + BAD, "wb") as f:
        f.write(b"the work\n")
    results = verify_all([ProofSpec(path="*.txt", kind="text")], [os.fsdecode(BAD)], run_dir, data_dir, STARTED)
    assert [r.path for r in results] == [SHOWN]


# --- 1. non-UTF-8 names: the real daemon ----------------------------------------------------

WRITES_BAD_NAME = r'''
import os, sys
from workers.sdk import Run
run = Run.from_env()
run.beat({"i": 1}, force=True)
d = os.environ["PROOFWATCH_RUN_DIR"].encode()
with open(d + b"/out-\xff.txt", "wb") as f:
    f.write(sys.argv[1].encode() * 10)
run.beat({"i": 2}, force=True)
'''


@pytest.mark.anyio
@pytest.mark.parametrize("min_bytes", [1, 10_000], ids=["proven", "unproven"])
async def test_the_daemon_survives_a_proof_file_with_a_non_utf8_name(tmp_path: Path, min_bytes: int) -> None:
    table = (job(tmp_path, "t", WRITES_BAD_NAME, args=', "work"', kind="task")
             + f'[[jobs.t.proofs]]\npath = "*.txt"\nkind = "text"\nmin_bytes = {min_bytes}\n')
    async with running(tmp_path, table) as d:
        want = JobState.SUCCEEDED if min_bytes == 1 else JobState.FAILED
        await reach(d, "t", want)
        await d.status.write_now()  # raised PydanticSerializationError before the fix
        assert not d.finished.is_set() and d.control("ping", None)["ok"]
        doc = json.loads(d.config.status_file.read_bytes())
        [proof, *_] = doc["jobs"]["t"]["proofs"]
        assert proof["path"] == SHOWN
        with anyio.fail_after(5):
            assert await d.recorder.flush()  # the history takes the run (it refused run.error before)
        run = d.jobs["t"].last_run
        assert run is not None
        row = d.history.run(run.run_id)
        assert row is not None and row.state == want.value
        if min_bytes > 1:
            assert row.error is not None and SHOWN in row.error and SHOWN in (run.error or "")
        assert d.recorder.quarantined == 0 and d.status.unserialisable is None


@pytest.mark.anyio
async def test_the_status_writer_keeps_the_last_good_file_for_a_document_it_cannot_serialise(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    table = job(tmp_path, "t", WRITES_BAD_NAME, args=', "work"', kind="task") + '[[jobs.t.proofs]]\npath = "*.txt"\n'
    async with running(tmp_path, table) as d:
        await reach(d, "t", JobState.SUCCEEDED)
        await d.status.write_now()
        good = d.config.status_file.read_bytes()
        run = d.jobs["t"].last_run
        assert run is not None
        kept = run.proofs
        # defence in depth: whatever text slips through some other way must not kill the writer
        run.proofs = [ProofStatus(path="sneaked-\udcff", kind="file", ok=True)]
        with caplog.at_level(logging.ERROR, logger="supervisor.statuswriter"):
            for _ in range(3):
                d.status.changed(urgent=True)
                await anyio.sleep(0.2)
        assert not d.finished.is_set() and d.control("ping", None)["ok"]
        assert d.config.status_file.read_bytes() == good
        assert d.status.unserialisable is not None and "PydanticSerializationError" in d.status.unserialisable
        logged = [r for r in caplog.records if "cannot serialise" in r.getMessage()]
        assert len(logged) == 1  # once, not once per change
        run.proofs = kept
        d.status.changed(urgent=True)
        with anyio.fail_after(5):
            while d.status.unserialisable is not None:
                await anyio.sleep(0.02)
        assert json.loads(d.config.status_file.read_bytes())["jobs"]["t"]["state"] == "SUCCEEDED"


# --- 1c. the recorder: a bad row is quarantined, not retried forever ------------------------

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


async def _drain(recorder: Recorder, timeout: float = 10) -> None:
    """Retry at once (no backoff) until nothing is queued."""
    with anyio.fail_after(timeout):
        while recorder.queued() or not await recorder.flush():
            recorder.retry_now()
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_the_recorder_quarantines_only_the_rows_it_cannot_write(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    history = History(tmp_path / "history.db")
    recorder = Recorder(history, tmp_path / "alerts.jsonl")
    row = {"job": "j", "run_id": None, "kind": "supervisor"}
    called = threading.Event()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.serve)
            recorder.event({**row, "ts": T0, "reason": "before"})
            recorder.event({**row, "ts": T0, "reason": "bad name out-\udcff.txt"})  # SQLite refuses it
            recorder.event({**row, "ts": T0.replace(tzinfo=None), "reason": "naive"})  # never writable
            recorder.run({"run_id": "r1", "job": "j", "state": "FAILED", "started_at": T0,
                          "error": "unproven: out-\udcff.txt: too small"})
            recorder.alert(AlertRow(id="a1", key="k", severity="critical", title="t-\udcff", detail="d",
                                    first_seen=T0, last_seen=T0), {"event": "raised", "key": "k"})
            recorder.call(lambda engine: called.set())  # e.g. the notify outbox: it must not starve
            recorder.event({**row, "ts": T0, "reason": "after"})
            with caplog.at_level(logging.WARNING, logger="supervisor.recorder"):
                await _drain(recorder)
            tg.cancel_scope.cancel()
        assert recorder.quarantined == 1 and called.is_set() and not recorder.failing
        reasons = sorted(e.reason for e in history.events(limit=50))
        assert reasons == sorted(["before", "bad name out-\\xff.txt", "after"])
        run = history.run("r1")
        assert run is not None and run.error == "unproven: out-\\xff.txt: too small"
        assert [a.title for a in history.alerts()] == ["t-\\xff"]
        assert (tmp_path / "alerts.jsonl").read_text().splitlines() == ['{"event": "raised", "key": "k"}']
        dropped = [r for r in caplog.records if "quarantined" in r.getMessage()]
        assert len(dropped) == 1 and "naive" in dropped[0].getMessage()
    finally:
        history.close()


@pytest.mark.anyio
async def test_the_recorder_never_drops_rows_while_the_database_itself_fails(tmp_path: Path) -> None:
    history = History(tmp_path / "history.db")
    real_apply, locked = history.apply, [True]
    attempts = 0

    def apply(batch):  # type: ignore[no-untyped-def]
        nonlocal attempts
        attempts += 1
        if locked[0]:
            raise sqlite3.OperationalError("database is locked")
        real_apply(batch)

    history.apply = apply  # type: ignore[method-assign]
    recorder = Recorder(history, tmp_path / "alerts.jsonl")
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.serve)
            for i in range(5):
                recorder.event({"ts": T0, "job": "j", "run_id": None, "kind": "supervisor", "reason": f"e{i}"})
            with anyio.fail_after(10):
                while attempts < SPLIT_AFTER + 3:  # well past the split: row by row, still locked
                    recorder.retry_now()
                    await anyio.sleep(0.02)
            assert recorder.queued() == 5 and recorder.quarantined == 0
            assert "database is locked" in recorder.failing["history.db"]
            locked[0] = False
            await _drain(recorder)
            tg.cancel_scope.cancel()
        assert sorted(e.reason for e in history.events(limit=50)) == [f"e{i}" for i in range(5)]
        assert recorder.quarantined == 0
    finally:
        history.close()


# --- 2. `**` and symlink loops ----------------------------------------------------------------


def _in_thread(fn, timeout: float = 10):  # type: ignore[no-untyped-def]
    """fn() in a daemon thread; fail (instead of hanging the suite) if it does not return."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "verification did not return (a symlink loop followed?)"
    return out[0]


@pytest.mark.parametrize("pattern", ["**/*.txt", "**", "sub/**/*.txt", "**/**/*.txt"])
def test_double_star_does_not_follow_symlink_loops(run_dir: Path, data_dir: Path, pattern: str) -> None:
    (run_dir / "sub").mkdir()
    (run_dir / "sub" / "x.txt").write_text("x")
    (run_dir / "top.txt").write_text("t")
    for name in ("a", "b"):
        (run_dir / name).symlink_to(".")
        (run_dir / "sub" / name).symlink_to("..")
    results = _in_thread(lambda: verify_spec(ProofSpec(path=pattern, kind="text"), run_dir, data_dir, STARTED))
    assert all(r.ok for r in results), results
    expected = {"**/*.txt": ["sub/x.txt", "top.txt"], "**": ["sub/x.txt", "top.txt"],
                "sub/**/*.txt": ["sub/x.txt"], "**/**/*.txt": ["sub/x.txt", "top.txt"]}[pattern]
    assert sorted(set(r.path for r in results)) == expected


def test_too_many_entries_fail_the_proof_with_a_clear_detail(
        run_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proofs_mod, "MAX_GLOB_ENTRIES", 50)
    for i in range(60):
        (run_dir / f"f{i:03d}.txt").write_text("x")
    [result] = verify_spec(ProofSpec(path="**/*.txt", kind="text"), run_dir, data_dir, STARTED)
    assert not result.ok and result.path == "**/*.txt"
    assert result.detail.startswith("refused: '**/*.txt' examined more than 50 entries under ")
    assert verify_spec(ProofSpec(path="f001.txt", kind="text"), run_dir, data_dir, STARTED)[0].ok  # no listing


@pytest.mark.parametrize("pattern", [
    "*.txt", ".*", ".*.txt", "**", "**/*.txt", "**/*", "b/**", "b/**/*.txt", "*/*.txt", "b/*/g.csv", "**/g.csv",
    "a.txt", "b/", "*/", "nope/*.txt", "[ab].txt", "?.txt", "**/**/*.csv", ".hid/*", "**/.d/*", "sub dir/*",
    "lnk.txt", "dangling.txt", "dl/*.csv", "b/**/",
])
def test_globs_match_as_glob_glob_did_without_directory_links_under_double_star(tmp_path: Path, pattern: str) -> None:
    root = tmp_path / "var[1]"  # glob characters in the root are literal
    for f in ["a.txt", ".h.txt", "b/c.txt", "b/.d/e.txt", "b/f/g.csv", ".hid/x.txt", "b/f/h/i.txt", "q.csv",
              "sub dir/z.txt"]:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    (root / "lnk.txt").symlink_to("a.txt")
    (root / "dangling.txt").symlink_to("nowhere")
    (root / "dl").symlink_to("b/f")  # a directory link: `dl/*.csv` still goes through it, `**` does not
    old = sorted(str(Path(p)) for p in glob.glob(os.path.join(glob.escape(str(root)), pattern), recursive=True))
    if "**" in pattern:
        old = [p for p in old if not p.startswith(str(root / "dl") + os.sep)]
    assert sorted(str(root / p) for p in _Glob(str(root)).iglob(pattern)) == old


WRITES_LOOPS = r'''
import os
from workers.sdk import Run
run = Run.from_env()
run.beat({"i": 1}, force=True)
d = os.environ["PROOFWATCH_RUN_DIR"]
os.symlink(".", os.path.join(d, "a"))
os.symlink(".", os.path.join(d, "b"))
with open(os.path.join(d, "out.txt"), "w") as f:
    f.write("the work\n")
run.beat({"i": 2}, force=True)
'''


@pytest.mark.anyio
async def test_the_daemon_verifies_and_shuts_down_despite_symlink_loops_in_the_run_dir(tmp_path: Path) -> None:
    table = job(tmp_path, "t", WRITES_LOOPS, kind="task") + '[[jobs.t.proofs]]\npath = "**/*.txt"\nkind = "text"\n'
    async with running(tmp_path, table) as d:  # running() fails if shutdown takes over 15 s
        await reach(d, "t", JobState.SUCCEEDED, JobState.FAILED)
        assert d.jobs["t"].state == JobState.SUCCEEDED
        run = d.jobs["t"].last_run
        assert run is not None and [p.path for p in run.proofs] == ["out.txt"]
