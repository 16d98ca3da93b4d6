"""Resource faults (issue 11), each with the real thing: a full disk (a small tmpfs, filled),
a notifier endpoint that accepts and never answers, a worker flooding stdout, a 100 MB
heartbeat file. The daemon stays alive and responsive through each, loses nothing, and
recovers by itself."""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import psutil
import pytest
import sqlalchemy.exc

from status.history import AlertRow, History
from status.models import JobState
from supervisor.diskfull import ALERT_PREFIX, mount_point, no_space
from supervisor.logs import rotate_if_needed
from supervisor.recorder import Recorder
from tests import _procs as P
from tests.status.test_store import T0
from tests.supervisor.harness import job, reach, running
from tests.supervisor.test_notify import LogWatch, watch  # noqa: F401  (fixture)
from workers.protocol import HEARTBEAT_MAX_BYTES


def header(state_dir: str = "var", data_dir: str = "data", extra: str = "") -> str:
    return (f'[supervisor]\nstate_dir = "{state_dir}"\ndata_dir = "{data_dir}"\nrescan_every = "200ms"\n'
            f'status_min_interval = "50ms"\nallow_root = true\n{extra}\n')


# --- a full disk ----------------------------------------------------------------------------------

@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted on `path` (needs root: the suite runs as root here and in CI)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a {size} tmpfs on {path}: {done.stderr.strip() or done.returncode} "
                    "(the disk-full tests need root, or CAP_SYS_ADMIN, to mount one)")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


def fill(mount: Path) -> Path:
    """Write a filler file until the mount is full (ENOSPC); return it."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 512):
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert os.statvfs(mount).f_bavail == 0
    return filler


def alert_rows(db: Path, key: str) -> list[AlertRow]:
    h = History(db, create=False)
    try:
        return [a for a in h.alerts(limit=1000) if a.key == key]
    finally:
        h.close()


def alert_lines(path: Path, key: str) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()
            if json.loads(line)["key"] == key]


WAITS_FOR_GO = """
import sys, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
run.beat({"n": 1}, force=True)
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
"""


async def test_a_full_state_dir_raises_one_alert_keeps_the_daemon_and_status_json_and_recovers(
        tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        go = tmp_path / "go"
        waiter = job(tmp_path, "waiter", WAITS_FOR_GO, args=f', "{go}"', kind="task")
        async with running(tmp_path, waiter, header=header(state_dir="mnt/state")) as d:
            key = f"{ALERT_PREFIX}{mnt}"
            status_file = d.config.status_file
            await reach(d, "waiter", JobState.RUNNING)
            await d.status.write_now()
            good = status_file.read_bytes()
            assert json.loads(good)["jobs"]["waiter"]["state"] == "RUNNING"

            filler = fill(mnt)
            go.touch()  # the run ends while the disk is full: transitions, events, a status write
            await reach(d, "waiter", JobState.SUCCEEDED)
            await d.wait_until(lambda: key in d.alerts.active and "status.json" in d.disks.failing(mnt), 10)

            alert = d.alerts.active[key]
            assert alert.severity == "critical"
            assert alert.title.startswith(f"disk full: {mnt} (state_dir {mnt / 'state'}): ")
            assert alert.title.endswith(("cannot be written — No space left on device",
                                         "cannot be written — database or disk is full")), alert.title
            assert "cannot be written: status.json (No space left on device)" in alert.detail
            assert d.control("ping", None)["ok"]  # alive, and its reconciler went on (SUCCEEDED above)
            assert status_file.read_bytes() == good  # the previous complete version stays
            assert d.status.failures >= 1 and list(status_file.parent.glob(".status.json.*")) == []
            with anyio.fail_after(1):
                await d.recorder.flush()  # never hangs on a full disk

            filler.unlink()  # space is back
            await d.wait_until(lambda: key not in d.alerts.active, 10)
            assert d.status.failures == 0 and not d.recorder.failing
            assert await d.recorder.flush()
            await d.wait_until(lambda: json.loads(status_file.read_bytes())["jobs"]["waiter"]["state"]
                               == "SUCCEEDED", 10)
            run_id = d.jobs["waiter"].last_run.run_id  # type: ignore[union-attr]
            row = d.history.run(run_id)
            assert row is not None and row.state == "SUCCEEDED"
            moves = [(e.from_state, e.to_state) for e in d.history.events(run_id=run_id)
                     if e.kind == "transition"]
            assert moves == [("PENDING", "STARTING"), ("STARTING", "RUNNING"), ("RUNNING", "VERIFYING"),
                             ("VERIFYING", "SUCCEEDED")]  # every row written, none twice
        [row_] = alert_rows(d.config.history_db, key)  # raised exactly once
        assert row_.resolved_at is not None and (row_.resolution or "").startswith("space is back")
        assert alert_lines(d.config.alerts_log, key) == ["raised", "resolved"]


HOG = """
import os
from workers.sdk import Run
run = Run.from_env()
run.beat({"mb": 0}, force=True)
with open(os.path.join(os.environ["PROOFWATCH_DATA_DIR"], "hog.bin"), "wb") as f:
    while True:
        f.write(b"\\0" * 65536)  # until ENOSPC: the job fails, the daemon must not
"""


async def test_a_job_filling_the_data_dir_fails_alone_and_the_alert_names_the_mount(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "dmnt", "2m") as dmnt:
        tables = [job(tmp_path, "hog", HOG, kind="task"), job(tmp_path, "steady", P.BEATS_FOREVER)]
        async with running(tmp_path, *tables, header=header(data_dir="dmnt/data")) as d:
            key = f"{ALERT_PREFIX}{dmnt}"
            await reach(d, "steady", JobState.RUNNING)
            await reach(d, "hog", JobState.FAILED)
            await d.wait_until(lambda: key in d.alerts.active, 10)
            alert = d.alerts.active[key]
            assert alert.title == (f"disk full: {dmnt} (data_dir {dmnt / 'data'}): 0 B free of 2.0 MiB"
                                   " — writes will fail")
            assert "No space left on device" in d.alerts.active["hog:failed"].detail  # its stderr tail
            steady = d.jobs["steady"]
            ticks = steady.run.progress["ticks"]  # type: ignore[union-attr]
            await d.wait_until(lambda: steady.run is not None and steady.run.progress.get("ticks", 0) >= ticks + 5, 10)
            assert steady.state == JobState.RUNNING

            (dmnt / "data" / "hog.bin").unlink()
            await d.wait_until(lambda: key not in d.alerts.active, 10)
            assert await d.recorder.flush()
        [row] = alert_rows(d.config.history_db, key)
        assert row.count == 1 and row.severity == "critical" and row.resolved_at is not None


async def test_the_recorder_keeps_rows_while_sqlite_reports_a_full_disk_and_writes_each_once(
        tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "3m") as mnt:
        history = History(mnt / "history.db")
        failed, recovered = anyio.Event(), anyio.Event()
        reasons: list[tuple[str, str | None]] = []

        def on_write(what: str, path: Path, exc: BaseException | None) -> None:
            reasons.append((what, no_space(exc)))
            if exc is not None and what == "history.db":
                failed.set()
            elif exc is None and what == "alerts.jsonl" and failed.is_set():
                recovered.set()

        recorder = Recorder(history, mnt / "alerts.jsonl", on_write=on_write)
        row = {"ts": T0, "job": "j", "run_id": None, "kind": "supervisor"}
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(recorder.serve)
                recorder.event({**row, "reason": "before"})
                assert await recorder.flush()
                filler = fill(mnt)
                for i in range(3000):  # ~1 MB: more than any slack the WAL file has left
                    recorder.event({**row, "reason": f"event {i:05d} " + "x" * 300})
                recorder.alert(AlertRow(id="a1", key="k", severity="critical", title="t", detail="d",
                                        first_seen=T0, last_seen=T0), {"event": "raised", "key": "k"})
                with anyio.fail_after(5):
                    await failed.wait()
                assert ("history.db", "database or disk is full") in reasons
                assert recorder.failing["history.db"] == "database or disk is full"
                with anyio.fail_after(1):
                    assert not await recorder.flush()  # at once: nothing hangs on a full disk
                assert recorder.queued() == 3002  # the events and the alert row, none dropped...
                assert recorder.failing.get("alerts.jsonl") in (None, "No space left on device")
                alerts_log = mnt / "alerts.jsonl"
                assert not alerts_log.exists() or alerts_log.read_bytes() in (b"", b'{"event": "raised", "key": "k"}\n')

                filler.unlink()
                recorder.retry_now()
                with anyio.fail_after(5):
                    await recovered.wait()
                assert await recorder.flush() and recorder.queued() == 0
                tg.cancel_scope.cancel()
            reasons_in_db = [e.reason for e in history.events(limit=5000)]
            assert reasons_in_db[0] == "before" and len(reasons_in_db) == 3001
            assert len(set(reasons_in_db)) == 3001  # each once
            assert alerts_log.read_text().splitlines() == ['{"event": "raised", "key": "k"}']
            assert [a.key for a in history.alerts()] == ["k"]
        finally:
            history.close()


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "Disk quota exceeded"),
        (sqlite3.OperationalError("database or disk is full"), "database or disk is full"),
        (sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full")),
         "database or disk is full"),
        (OSError(errno.EACCES, "Permission denied"), None),
        (sqlite3.OperationalError("database is locked"), None),
    ],
    ids=["enospc", "edquot", "sqlite-full", "sqlalchemy-wrapped", "eacces", "sqlite-locked"],
)
def test_no_space_recognises_a_full_disk_or_quota_through_wrappers(exc: BaseException, reason: str | None) -> None:
    assert no_space(exc) == reason


def test_rotation_on_a_full_disk_truncates_without_a_backup_and_never_raises(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        out = mnt / "stdout.log"
        out.write_bytes(b"flood\n" * 50_000)
        fill(mnt)
        assert mount_point(out) == mnt
        assert rotate_if_needed(out, 100_000, 2) == 300_000  # the backup cannot be written...
        assert out.stat().st_size == 0 and sorted(p.name for p in mnt.iterdir()) == ["filler", "stdout.log"]
        assert os.statvfs(mnt).f_bavail > 0  # ...and truncating freed the space


# --- a notifier endpoint that hangs --------------------------------------------------------------

class Tarpit:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.cond:
                self.held.append(conn)
                self.cond.notify_all()

    def connections(self) -> int:
        with self.cond:
            return len(self.held)

    def close(self) -> None:
        self.server.close()
        with self.cond:
            for conn in self.held:
                conn.close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    pit = Tarpit()
    yield pit
    pit.close()


async def test_a_webhook_that_never_answers_is_cut_at_its_timeout_and_retried_while_all_else_goes_on(
        tmp_path: Path, tarpit: Tarpit, watch: LogWatch) -> None:  # noqa: F811
    notes = tmp_path / "notes.jsonl"
    sinks = (f'[alerts]\ngroup_wait = "0s"\n'
             f'[[alerts.sinks]]\nkind = "webhook"\nname = "hang"\nurl = "http://127.0.0.1:{tarpit.port}/hook"\n'
             f'timeout = "500ms"\n'
             f'[[alerts.sinks]]\nkind = "file"\nname = "notes"\npath = "{notes}"\n')
    tables = [job(tmp_path, "boom", P.CRASH_AT_START, kind="task"),
              job(tmp_path, "mute", P.NEVER_BEATS, kind="task", startup_grace="1s"),
              sinks]
    async with running(tmp_path, *tables, header=header()) as d:
        await reach(d, "boom", JobState.CRASHED)
        await watch.wait_for("-> notes delivered")
        await watch.wait_for("-> hang: attempt 1 failed")
        first = [i for i, line in enumerate(watch.lines) if "-> notes delivered" in line or "-> hang: attempt 1" in line]
        assert "-> notes delivered" in watch.lines[first[0]]  # the other sink was not held up
        assert tarpit.connections() >= 1
        await reach(d, "mute", JobState.SILENT)  # the reconciler keeps detecting meanwhile
        await watch.wait_for("-> hang: attempt 2 failed")  # retried per the outbox's policy
        assert tarpit.connections() >= 2
        assert d.control("ping", None)["ok"]
    fails = [line for line in watch.lines if "-> hang: attempt" in line]
    for line in fails[:2]:
        assert "timed out after 0.5s (ReadTimeout)" in line, line
        ms = float(line.split(" failed after ")[1].split(" ms")[0])
        assert 450 <= ms < 1500, line  # cut at the sink's timeout, not the dispatcher's safety net
    history = History(d.config.history_db, create=False)
    try:
        from status.outbox import Outbox

        rows = [r for r in Outbox(history.engine).rows() if r.sink == "hang"]
    finally:
        history.close()
    assert rows and all(r.delivered_at is None for r in rows)
    assert any((r.last_error or "").startswith("timed out after 0.5s") and r.attempts >= 2 for r in rows)
    assert [json.loads(line)["alerts"][0]["key"] for line in notes.read_text().splitlines()][:1] == ["boom:crashed"]


# --- a worker flooding stdout --------------------------------------------------------------------

FLOOD = """
import sys, time
from workers.sdk import Run
run = Run.from_env()
run.beat({"bytes": 0}, phase="flooding", force=True)
line = "flood " * 16 + "\\n"
out = sys.stdout
written, until = 0, time.monotonic() + float(sys.argv[1])
while time.monotonic() < until:
    for _ in range(10000):
        out.write(line)
    written += 10000 * len(line)
out.flush()
run.beat({"bytes": written}, phase="done", force=True)
time.sleep(600)
"""


async def test_a_worker_flooding_stdout_stays_within_the_rotation_cap_and_the_daemon_keeps_up(
        tmp_path: Path) -> None:
    tables = [job(tmp_path, "flood", FLOOD, args=', "2"', kind="service"),
              job(tmp_path, "steady", P.BEATS_FOREVER)]
    async with running(tmp_path, *tables, header=header(extra='log_max_bytes = "1MB"\nlog_backups = 2')) as d:
        cap, backups = d.config.supervisor.log_max_bytes, d.config.supervisor.log_backups
        await reach(d, "flood", JobState.RUNNING)
        await reach(d, "steady", JobState.RUNNING)
        flood, steady = d.jobs["flood"].run, d.jobs["steady"]
        assert flood is not None
        out = flood.stdout_path
        seen = {"log": 0, "backups": 0}
        ticks = [steady.run.progress["ticks"]]  # type: ignore[union-attr]
        changed_at = [time.monotonic()]
        gaps: list[float] = []

        def sample() -> bool:
            """On every change the daemon reports (a heartbeat, a rotation): the files on disk,
            and how long since the daemon last took a heartbeat of the other job."""
            files = sorted(out.parent.glob("stdout.log.*"))
            assert len(files) <= backups, files
            for f in files:
                size = f.stat().st_size if f.exists() else 0
                assert size <= cap + 100, (f.name, size)  # the newest max_bytes and one note line
                seen["backups"] = max(seen["backups"], size)
            seen["log"] = max(seen["log"], out.stat().st_size if out.exists() else 0)
            now, t = time.monotonic(), steady.run.progress["ticks"] if steady.run else 0
            if t != ticks[-1]:
                ticks.append(t)
                gaps.append(now - changed_at[0])
                changed_at[0] = now
            return flood.phase == "done"

        await d.wait_until(sample, 20)
        written = int(flood.progress["bytes"])
        # the other job's heartbeats went on being read all through the flood, at the rescan pace
        assert len(ticks) >= 5 and max(gaps) < 1.0, (ticks, gaps)
        await d.wait_until(lambda: sample() and out.stat().st_size <= cap, 5)  # the last rotation
        total = sum(f.stat().st_size for f in out.parent.glob("stdout.log*"))
        assert written > 5 * (backups + 1) * cap, written  # the flood was far over the cap...
        assert total <= (backups + 1) * (cap + 100), total  # ...and the disk holds at most the cap
        assert flood.rotated_bytes > written / 2  # what rotation moved out (the daemon counts it)
        assert seen["log"] < written / 4, seen  # rotated all along, not only at the end


# --- a 100 MB heartbeat file ---------------------------------------------------------------------

FAT_BEAT = """
import os, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
run.beat({"n": 1}, force=True)
run_dir = Path(os.environ["PROOFWATCH_RUN_DIR"])
while not (run_dir / "fat").exists():
    time.sleep(0.02)
tmp = run_dir.parent / ".fat-heartbeat"
with open(tmp, "wb") as f:
    f.truncate(100 * 1024 * 1024)  # 100 MB (sparse: no disk, but every byte would be read)
os.replace(tmp, os.environ["PROOFWATCH_HEARTBEAT"])
while not (run_dir / "go").exists():
    time.sleep(0.02)
run.beat({"n": 2}, message="back to normal", force=True)
time.sleep(600)
"""


async def test_a_100_mb_heartbeat_is_refused_unread_and_the_run_recovers_with_the_next_beat(
        tmp_path: Path) -> None:
    tables = [job(tmp_path, "fat", FAT_BEAT), job(tmp_path, "steady", P.BEATS_FOREVER)]
    async with running(tmp_path, *tables, header=header()) as d:
        await reach(d, "fat", JobState.RUNNING)
        await reach(d, "steady", JobState.RUNNING)
        run = d.jobs["fat"].run
        assert run is not None
        error = f"heartbeat file is {100 * 1024 * 1024} bytes (limit {HEARTBEAT_MAX_BYTES}); not read"
        rss = psutil.Process().memory_info().rss
        tracemalloc.start()
        try:
            (run.run_dir / "fat").touch()
            await d.wait_until(lambda: error in run.heartbeat_errors, 10)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        grew = psutil.Process().memory_info().rss - rss
        assert peak < 8 * 1024 * 1024, peak  # a read would have allocated 100 MB at once
        assert grew < 30 * 1024 * 1024, grew
        assert d.jobs["fat"].state == JobState.RUNNING  # refused, not crashed

        (run.run_dir / "go").touch()
        await d.wait_until(lambda: run.progress.get("n") == 2.0, 10)
        assert run.message == "back to normal" and d.jobs["fat"].state == JobState.RUNNING
        assert await d.recorder.flush()
        events = [e.reason for e in d.history.events(run_id=run.run_id) if e.kind == "heartbeat_error"]
    assert events == [error]


async def test_a_daemon_starting_on_a_full_disk_still_adopts_and_runs(tmp_path: Path) -> None:
    """A run found by its environment gets its pid file written at adoption; on a full state
    dir that write fails, and the daemon must start anyway (not crash-loop under systemd)."""
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        head = header(state_dir="mnt/state")
        table = job(tmp_path, "svc", "import time\ntime.sleep(60)\n", kind="service", start="manual")
        async with running(tmp_path, table, header=head) as d:  # creates the state dir and history
            pass
        keep = History(d.config.history_db, create=False)  # like a daemon killed -9: -wal/-shm stay
        keep.runs(limit=1)
        run_dir = d.config.runs_dir / "svc" / "20990101T000000000Z-abcdef"
        run_dir.mkdir(parents=True)
        env = {**os.environ, "PROOFWATCH_RUN_ID": run_dir.name, "PROOFWATCH_RUN_DIR": str(run_dir)}
        leader = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
        filler = fill(mnt)
        try:
            async with running(tmp_path, table, header=head) as d2:
                run = d2.jobs["svc"].run
                assert run is not None and run.adopted and run.pid == leader.pid
                assert not (run_dir / "pid").exists()  # could not be written: noted in the log
            filler.unlink()
        finally:
            leader.kill()
            leader.wait()
            keep.close()
