"""supervisor/beatcmd.py: `proofwatch beat` merges with the previous heartbeat."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from supervisor.beatcmd import BeatError, parse_counter, send_beat
from workers.protocol import Heartbeat, parse_heartbeat
from workers.sdk import write_heartbeat

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def on_disk(path: Path) -> Heartbeat:
    return parse_heartbeat(path.read_bytes())


def test_beat_first_heartbeat_starts_at_seq_one(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    hb = send_beat(path, ["files=12"], phase="copy", message="copied 12", now=T0)
    assert hb == on_disk(path)
    assert (hb.seq, hb.ts, hb.progress, hb.phase, hb.message, hb.blocker) == (
        1, T0, {"files": 12.0}, "copy", "copied 12", None)
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat.json"]


def test_beat_continues_seq_and_merges_counters(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    write_heartbeat(path, Heartbeat(seq=7, ts=T0, progress={"files": 3, "bytes": 900},
                                    phase="copy", message="copied 3", proofs=(("a.txt", "file"),)))
    hb = send_beat(path, ["files=4", "errors=1"], proofs=["b.txt", "a.txt", "png:c.png"])
    assert hb.seq == 8
    assert hb.progress == {"files": 4.0, "bytes": 900, "errors": 1.0}
    assert (hb.phase, hb.message) == ("copy", "copied 3")  # kept when not given
    assert hb.proofs == (("a.txt", "file"), ("b.txt", "file"), ("c.png", "png"))
    assert on_disk(path) == hb


def test_beat_blocked_then_unblock(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    send_beat(path, ["n=1"])
    blocked = send_beat(path, [], blocked="waiting for VPN")
    assert (blocked.seq, blocked.blocker) == (2, "waiting for VPN")
    still = send_beat(path, ["n=2"])
    assert still.blocker == "waiting for VPN"  # a blocker stays until cleared
    cleared = send_beat(path, [], unblock=True)
    assert (cleared.seq, cleared.blocker, cleared.progress) == (4, None, {"n": 2.0})
    assert on_disk(path).blocker is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("files", "--progress 'files': expected NAME=NUMBER, e.g. files=12"),
        ("=12", "--progress '=12': expected NAME=NUMBER, e.g. files=12"),
        ("  =12", "--progress '  =12': expected NAME=NUMBER, e.g. files=12"),
        ("files=twelve", "--progress 'files=twelve': 'twelve' is not a number"),
        ("files=", "--progress 'files=': '' is not a number"),
        ("files=nan", "--progress 'files=nan': 'nan' is not a finite number"),
        ("files=inf", "--progress 'files=inf': 'inf' is not a finite number"),
    ],
    ids=["no-equals", "no-name", "blank-name", "word", "empty-value", "nan", "inf"],
)
def test_beat_bad_progress_is_refused_with_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "heartbeat.json"
    send_beat(path, ["files=1"])
    before = path.read_bytes()
    with pytest.raises(BeatError) as info:
        send_beat(path, ["ok=2", text])
    assert str(info.value) == message
    assert path.read_bytes() == before  # nothing half-written


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("files=12", ("files", 12.0)), (" rows = 1.5", ("rows", 1.5)), ("loss=-0.25", ("loss", -0.25))],
    ids=["int", "spaces", "negative-float"],
)
def test_beat_parse_counter(text: str, parsed: tuple[str, float]) -> None:
    assert parse_counter(text) == parsed


def test_beat_without_a_file_names_the_env_var() -> None:
    with pytest.raises(BeatError, match="PROOFWATCH_HEARTBEAT is not set"):
        send_beat(None, ["files=1"])


def test_beat_into_a_vanished_run_dir_says_so(tmp_path: Path) -> None:
    gone = tmp_path / "runs" / "x" / "heartbeat.json"
    with pytest.raises(BeatError) as info:
        send_beat(gone, ["files=1"])
    assert str(info.value) == f"{gone.parent}: no such directory (is this run still alive?)"
