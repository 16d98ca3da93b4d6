"""workers/sdk.py and workers/protocol.py: writing and parsing heartbeats."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from workers.protocol import (
    ENV_DATA_DIR,
    ENV_HEARTBEAT,
    ENV_JOB,
    ENV_RUN_DIR,
    ENV_RUN_ID,
    HEARTBEAT_MAX_BYTES,
    MESSAGE_MAX_CHARS,
    Heartbeat,
    HeartbeatError,
    parse_heartbeat,
)
from workers.sdk import Run, read_heartbeat, write_heartbeat

HOUR = 3600.0


def hb_file(tmp_path: Path) -> Path:
    return tmp_path / "heartbeat.json"


def current(path: Path) -> Heartbeat:
    return parse_heartbeat(path.read_bytes())


def env_for(tmp_path: Path) -> dict[str, str]:
    return {
        ENV_HEARTBEAT: str(hb_file(tmp_path)),
        ENV_JOB: "ingestor",
        ENV_RUN_ID: "8bdc51",
        ENV_RUN_DIR: str(tmp_path),
        ENV_DATA_DIR: str(tmp_path / "data"),
    }


def test_sdk_beat_writes_a_valid_heartbeat_with_increasing_seq(tmp_path: Path) -> None:
    run = Run.from_env(env_for(tmp_path), min_interval=0.0)
    before = datetime.now(timezone.utc)
    assert run.beat({"rows": 10}, phase="download", message="page 1 of 4")
    first = current(hb_file(tmp_path))
    assert (first.seq, first.progress, first.phase, first.message, first.blocker) == (
        1, {"rows": 10.0}, "download", "page 1 of 4", None)
    assert before - timedelta(seconds=1) <= first.ts <= datetime.now(timezone.utc)
    seqs = [first.seq]
    for i in range(2, 6):
        assert run.beat({"rows": 10 * i})
        seqs.append(current(hb_file(tmp_path)).seq)
    assert seqs == [1, 2, 3, 4, 5]
    raw = json.loads(hb_file(tmp_path).read_text())
    assert set(raw) == {"seq", "ts", "progress", "phase", "message", "blocker", "progress_at"}


def test_sdk_from_env_reads_the_run_identity(tmp_path: Path) -> None:
    run = Run.from_env(env_for(tmp_path))
    assert run.supervised
    assert (run.job, run.run_id, run.run_dir, run.data_dir, run.heartbeat_path) == (
        "ingestor", "8bdc51", tmp_path, tmp_path / "data", hb_file(tmp_path))


def test_sdk_throttles_beats_within_min_interval(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    run = Run(path, min_interval=HOUR)
    assert run.beat({"rows": 1}, phase="load")  # the first beat is always written
    assert not run.beat({"rows": 2})
    assert not run.beat({"rows": 3}, message="still loading")
    assert current(path).seq == 1 and current(path).progress == {"rows": 1.0}
    assert run.flush()  # the pending one, with the latest values
    hb = current(path)
    assert (hb.seq, hb.progress, hb.message) == (2, {"rows": 3.0}, "still loading")
    assert not run.flush()  # nothing pending any more
    assert current(path).seq == 2


def test_sdk_force_and_phase_change_bypass_the_throttle(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    run = Run(path, min_interval=HOUR)
    run.beat({"rows": 1}, phase="load")
    assert run.beat({"rows": 2}, force=True)
    assert current(path).seq == 2
    assert not run.beat({"rows": 3}, phase="load")  # same phase is no change
    assert run.beat(phase="fit")
    hb = current(path)
    assert (hb.seq, hb.phase, hb.progress) == (3, "fit", {"rows": 3.0})


def test_sdk_merges_counters(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    run = Run(path, min_interval=0.0)
    run.beat({"pages": 1, "rows": 50})
    run.beat({"rows": 80})
    run.beat({"errors": 2})
    assert current(path).progress == {"pages": 1.0, "rows": 80.0, "errors": 2.0}


def test_sdk_blocked_then_unblocked(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    run = Run(path, min_interval=HOUR)
    run.beat({"i": 1})
    run.blocked("adb: no devices/emulators found")  # written at once despite the throttle
    hb = current(path)
    assert (hb.seq, hb.blocker, hb.message) == (2, "adb: no devices/emulators found",
                                                 "adb: no devices/emulators found")
    run.unblocked()
    hb = current(path)
    assert (hb.seq, hb.blocker) == (3, None)


def test_sdk_proof_lists_paths_in_the_heartbeat(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    run = Run(path, min_interval=HOUR)
    run.proof("out/result.json")
    run.proof(tmp_path / "screens" / "1.png", kind="png")
    run.proof("out/result.json")  # declared twice, listed once
    hb = current(path)
    assert hb.proofs == (("out/result.json", "file"), (str(tmp_path / "screens" / "1.png"), "png"))
    assert json.loads(path.read_text())["proofs"] == [
        "out/result.json", {"path": str(tmp_path / "screens" / "1.png"), "kind": "png"}]


def test_sdk_outside_proofwatch_warns_once_and_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.warns(RuntimeWarning, match="PROOFWATCH_HEARTBEAT is not set") as record:
        run = Run.from_env({})
    assert len(record) == 1
    assert not run.supervised
    # later calls are silent no-ops (filterwarnings=error would fail on another warning)
    assert not run.beat({"x": 1}, force=True)
    run.blocked("nope")
    run.unblocked()
    run.proof("x.json")
    assert not run.flush()
    assert list(tmp_path.iterdir()) == []


def test_sdk_from_env_reads_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env_for(tmp_path).items():
        monkeypatch.setenv(key, value)
    run = Run.from_env(min_interval=0.0)
    assert run.beat({"n": 1})
    assert current(hb_file(tmp_path)).progress == {"n": 1.0}


def test_sdk_run_on_an_existing_heartbeat_continues_its_seq(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    write_heartbeat(path, Heartbeat(seq=41, ts=datetime.now(timezone.utc), progress={"n": 3}))
    run = Run(path, min_interval=0.0)
    run.beat({"n": 4})
    assert current(path).seq == 42


def test_sdk_run_on_an_unreadable_heartbeat_starts_at_one(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    path.write_text('{"seq": "one"')
    run = Run(path, min_interval=0.0)
    run.beat({"n": 1})
    assert current(path).seq == 1
    assert read_heartbeat(tmp_path / "missing.json") is None


def test_sdk_write_never_leaves_temp_files(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    run = Run(path, min_interval=0.0)
    for i in range(50):
        run.beat({"i": i}, message="x" * (i * 10))
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat.json"]
    assert current(path).seq == 50


def test_sdk_failed_write_keeps_the_previous_heartbeat_whole(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    write_heartbeat(path, Heartbeat(seq=1, ts=datetime.now(timezone.utc), progress={"n": 1}))
    before = path.read_bytes()
    bad = Heartbeat(seq=2, ts=datetime.now(timezone.utc), progress={"n": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        write_heartbeat(path, bad)  # fails while the temp file is being written
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".hb-*"))


# --- protocol ------------------------------------------------------------------------------

GOOD = {"seq": 7, "ts": "2026-11-25T08:54:46Z", "progress": {"rows": 1200}, "phase": "download",
        "message": "page 12 of 40", "blocker": None}


def test_parse_heartbeat_accepts_the_documented_example() -> None:
    hb = parse_heartbeat(json.dumps(GOOD).encode())
    assert hb == Heartbeat(seq=7, ts=datetime(2026, 11, 25, 8, 54, 46, tzinfo=timezone.utc),
                           progress={"rows": 1200}, phase="download", message="page 12 of 40")
    assert parse_heartbeat(hb.to_json()) == hb


def test_parse_heartbeat_minimal_and_naive_ts_is_utc() -> None:
    hb = parse_heartbeat('{"seq": 0, "ts": "2026-11-25T08:54:46"}')
    assert hb.ts == datetime(2026, 11, 25, 8, 54, 46, tzinfo=timezone.utc)
    assert (hb.progress, hb.phase, hb.message, hb.blocker, hb.proofs) == ({}, "", "", None, ())


def test_parse_heartbeat_truncates_long_messages() -> None:
    hb = parse_heartbeat(json.dumps({**GOOD, "message": "m" * (MESSAGE_MAX_CHARS + 50)}))
    assert hb.message == "m" * MESSAGE_MAX_CHARS


_DROP = object()


def _with(**changes: object) -> str:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not _DROP})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_with(seq="7"), "seq: expected a non-negative integer, got '7'"),
        (_with(seq=-1), "seq: expected a non-negative integer, got -1"),
        (_with(seq=True), "seq: expected a non-negative integer, got True"),
        (_with(seq=_DROP), "seq: expected a non-negative integer, got None"),
        (_with(ts=_DROP), "ts: expected an ISO 8601 string, got None"),
        (_with(ts="yesterday"), "ts: 'yesterday' is not an ISO 8601 timestamp"),
        (_with(progress={"rows": "12"}), "progress.rows: expected a number, got '12'"),
        (_with(progress={"ok": True}), "progress.ok: expected a number, got True"),
        (_with(progress=[1, 2]), "progress: expected an object of name -> number, got [1, 2]"),
        ('{"seq": 1, "ts": "2026-11-25T08:54:46Z", "progress": {"loss": NaN}}',
         "progress.loss: expected a finite number, got nan"),
        ('{"seq": 1, "ts": "2026-11-25T08:54:46Z", "progress": {"loss": Infinity}}',
         "progress.loss: expected a finite number, got inf"),
        (_with(phase=3), "phase: expected a string, got 3"),
        (_with(blocker=["x"]), "blocker: expected a string, got ['x']"),
        (_with(proofs="out.json"), "proofs: expected a list, got 'out.json'"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('"hello"', "expected a JSON object, got str"),
    ],
    ids=[
        "seq-string", "seq-negative", "seq-bool", "seq-missing", "ts-missing", "ts-garbage",
        "progress-string", "progress-bool", "progress-list", "progress-nan", "progress-inf",
        "phase-int", "blocker-list", "proofs-string", "array", "string",
    ],
)
def test_parse_heartbeat_errors_name_the_field(raw: str, message: str) -> None:
    with pytest.raises(HeartbeatError) as info:
        parse_heartbeat(raw.encode())
    assert str(info.value) == message


def test_parse_heartbeat_rejects_invalid_json() -> None:
    with pytest.raises(HeartbeatError, match=r"^not valid JSON: "):
        parse_heartbeat(b'{"seq": "one", "progress": [1,2]')


def test_parse_heartbeat_rejects_oversize_documents_before_parsing() -> None:
    pad = "x" * HEARTBEAT_MAX_BYTES
    raw = json.dumps({**GOOD, "message": pad}).encode()
    with pytest.raises(HeartbeatError) as info:
        parse_heartbeat(raw)
    assert str(info.value) == f"heartbeat is {len(raw)} bytes (limit {HEARTBEAT_MAX_BYTES})"
    at_limit = json.dumps(GOOD).encode().ljust(HEARTBEAT_MAX_BYTES)  # whitespace padding
    assert parse_heartbeat(at_limit).seq == 7


def test_sdk_writes_progress_promptly_but_throttles_liveness_only_beats(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    run = Run(path, min_interval=HOUR, progress_interval=0.0)
    assert run.beat({"n": 1}) is True  # first beat
    assert run.beat({"n": 1}, message="same count") is False  # liveness only: throttled
    assert run.beat({"n": 2}) is True  # progress: written at once, never held back
    assert current(path).progress == {"n": 2.0}
    assert run.beat({"n": 1}) is False  # a counter going down is not progress


def test_sdk_writes_its_temp_file_in_the_scratch_dir_so_the_run_dir_sees_one_event(tmp_path: Path) -> None:
    path = hb_file(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    seen: list[str] = []
    real_mkstemp = tempfile.mkstemp

    def spy(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(name)
        return fd, name

    tempfile.mkstemp = spy  # type: ignore[assignment]
    try:
        Run(path, scratch=str(scratch)).beat({"n": 1}, force=True)
    finally:
        tempfile.mkstemp = real_mkstemp  # type: ignore[assignment]
    assert [Path(s).parent for s in seen] == [scratch]
    assert current(path).progress == {"n": 1.0}
    assert list(scratch.iterdir()) == []
