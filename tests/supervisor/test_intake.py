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


def test_without_progress_at_progress_is_dated_at_the_read_never_earlier(tmp_path):
    run = run_in(tmp_path)
    beat(run, 1, n=1)
    intake.read_heartbeat(run, T0)
    beat(run, 2, n=2)  # a writer that sends no progress_at
    read = T0 + timedelta(seconds=3)
    got = intake.read_heartbeat(run, read, since=T0 + timedelta(seconds=1))
    assert got.progressed and run.last_progress_at == read and run.last_beat_at == read


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
    got = intake.read_heartbeat(run, T0 + timedelta(seconds=5), since=T0 + timedelta(milliseconds=900))
    assert got.progressed and run.last_progress_at == progressed_at


def test_progress_at_outside_the_window_is_clamped_into_it(tmp_path):
    run = run_in(tmp_path)
    beat(run, 1, n=1)
    intake.read_heartbeat(run, T0)
    write_heartbeat(Path(run.heartbeat_path),
                    Heartbeat(seq=10, ts=T0, progress={"n": 3}, progress_at=T0 - timedelta(hours=1)))
    intake.read_heartbeat(run, T0 + timedelta(seconds=9), since=T0 + timedelta(seconds=6))
    assert run.last_progress_at == T0 + timedelta(seconds=6)  # a skewed clock: not before the window
    write_heartbeat(Path(run.heartbeat_path),
                    Heartbeat(seq=11, ts=T0, progress={"n": 4}, progress_at=T0 + timedelta(hours=1)))
    intake.read_heartbeat(run, T0 + timedelta(seconds=12), since=T0 + timedelta(seconds=10))
    assert run.last_progress_at == T0 + timedelta(seconds=12)  # nor after the read


def test_a_read_ahead_of_the_watcher_is_not_dated_by_a_stale_event(tmp_path):
    """Regression (bench, N = 200): the file was read before the watcher delivered its newest
    change; progress was dated by the older event, ~0.85 s early."""
    run = run_in(tmp_path)
    beat(run, 1, n=1)
    intake.read_heartbeat(run, T0)
    newest = T0 + timedelta(seconds=2)
    write_heartbeat(Path(run.heartbeat_path),
                    Heartbeat(seq=2, ts=newest, progress={"n": 2}, progress_at=newest))
    # the only change the watcher reported so far was at +1 s; the read at +2.1 s sees newer content
    intake.read_heartbeat(run, T0 + timedelta(seconds=2.1), since=T0 + timedelta(seconds=1))
    assert run.last_progress_at == newest
