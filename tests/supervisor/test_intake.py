"""Reading a run's heartbeat file: change detection, timing, oversize and malformed files."""

from __future__ import annotations

import resource
from datetime import datetime, timedelta, timezone
from pathlib import Path

from supervisor import intake
from supervisor.runs import RunState
from workers.protocol import HEARTBEAT_MAX_BYTES, Heartbeat
from workers.sdk import write_heartbeat

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run_in(tmp_path: Path) -> RunState:
    return RunState("j", "r1", "task", tmp_path, T0)


def beat(run: RunState, seq: int, **progress: float) -> None:
    write_heartbeat(Path(run.heartbeat_path), Heartbeat(seq=seq, ts=T0, progress=dict(progress)))


def test_an_unchanged_file_is_not_read_again(tmp_path):
    run = run_in(tmp_path)
    beat(run, 1, n=1)
    assert intake.read_heartbeat(run, T0).beat
    assert intake.read_heartbeat(run, T0 + timedelta(seconds=1)) == intake.NOTHING


def test_progress_is_dated_when_the_watcher_saw_the_change_not_when_it_was_read(tmp_path):
    run = run_in(tmp_path)
    beat(run, 1, n=1)
    intake.read_heartbeat(run, T0)
    beat(run, 2, n=2)
    seen, read = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    got = intake.read_heartbeat(run, read, seen_at=seen)
    assert got.progressed and run.last_progress_at == seen and run.last_beat_at == seen


def test_a_heartbeat_without_progress_keeps_the_last_progress_time(tmp_path):
    run = run_in(tmp_path)
    beat(run, 1, n=5)
    intake.read_heartbeat(run, T0)
    beat(run, 2, n=5)
    got = intake.read_heartbeat(run, T0 + timedelta(seconds=9))
    assert got.beat and not got.progressed
    assert run.last_progress_at == T0 and run.last_beat_at == T0 + timedelta(seconds=9)


def test_a_100_mb_heartbeat_file_is_refused_without_reading_it(tmp_path):
    run = run_in(tmp_path)
    with open(run.heartbeat_path, "wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: 100 MB that costs no disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = intake.read_heartbeat(run, T0)
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert got.error == f"heartbeat file is {100 * 1024 * 1024} bytes (limit {HEARTBEAT_MAX_BYTES}); not read"
    assert grew_kb < 10_000
    assert intake.read_heartbeat(run, T0) == intake.NOTHING  # reported once, not per rescan


def test_a_malformed_heartbeat_is_reported_once_and_the_next_good_one_is_taken(tmp_path):
    run = run_in(tmp_path)
    Path(run.heartbeat_path).write_text('{"seq": "x"}')
    got = intake.read_heartbeat(run, T0)
    assert got.error == "malformed heartbeat ignored: seq: expected a non-negative integer, got 'x'"
    beat(run, 1, n=1)
    assert intake.read_heartbeat(run, T0).beat and run.progress == {"n": 1.0}


def test_a_deferred_read_dates_progress_by_the_workers_progress_at_within_the_window(tmp_path):
    run = run_in(tmp_path)
    beat(run, 1, n=1)
    intake.read_heartbeat(run, T0)
    # the worker progressed at +1 s, then beat without progress until +4 s; read at +5 s
    progressed_at = T0 + timedelta(seconds=1)
    write_heartbeat(Path(run.heartbeat_path),
                    Heartbeat(seq=9, ts=T0 + timedelta(seconds=4), progress={"n": 2}, progress_at=progressed_at))
    got = intake.read_heartbeat(run, T0 + timedelta(seconds=5), seen_at=T0 + timedelta(seconds=4),
                                first_seen_at=T0 + timedelta(milliseconds=900))
    assert got.progressed and run.last_progress_at == progressed_at
    # a progress_at outside the window of unread changes (a skewed clock) is clamped into it
    write_heartbeat(Path(run.heartbeat_path),
                    Heartbeat(seq=10, ts=T0, progress={"n": 3}, progress_at=T0 - timedelta(hours=1)))
    intake.read_heartbeat(run, T0 + timedelta(seconds=9), seen_at=T0 + timedelta(seconds=8),
                          first_seen_at=T0 + timedelta(seconds=6))
    assert run.last_progress_at == T0 + timedelta(seconds=6)
