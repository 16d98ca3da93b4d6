"""Remote heartbeats: `POST /api/runs/{run_id}/heartbeat` with the job's heartbeat_token goes
through the same intake as the heartbeat file (validation, high-water progress, progress_at
clamped to [since, now]); `proofwatch beat --url` sends them from another machine."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx

from status.models import JobState
from tests import _procs as P
from tests.supervisor.harness import job, reach
from tests.supervisor.test_api import GOOD, Served, serving

S = JobState
HB_TOKEN = "hb-token-remote-9d2e"
HB = {"Authorization": f"Bearer {HB_TOKEN}"}


def remote_job(tmp_path: Path, **keys: object) -> str:
    """A job whose local process never beats: a worker elsewhere reports for it."""
    settings: dict[str, object] = {"stall_after": "1s", "startup_grace": "60s", "heartbeat_token": HB_TOKEN}
    return job(tmp_path, "remote", P.NEVER_BEATS, **{**settings, **keys})


def beat(seq: int, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": datetime.now(timezone.utc).isoformat(), **fields}


async def started(s: Served) -> str:
    await reach(s.daemon, "remote", S.STARTING)
    run = s.daemon.jobs["remote"].run
    assert run is not None
    return run.run_id


async def pw_beat(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`proofwatch beat ARGS` in a child process (the daemon keeps serving meanwhile)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    done = await anyio.run_process([sys.executable, "-m", "supervisor.cli", "beat", *args],
                                   env={**base, **(env or {})}, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_a_remote_heartbeat_resets_a_stall(tmp_path: Path) -> None:
    async with serving(tmp_path, remote_job(tmp_path)) as s:
        run_id = await started(s)
        env = {"PROOFWATCH_URL": s.daemon.api.url, "PROOFWATCH_HEARTBEAT_TOKEN": HB_TOKEN,
               "PROOFWATCH_RUN_ID": run_id}
        code, out, err = await pw_beat("-p", "items=1", "-m", "remote 1", env=env)
        assert code == 0, err
        assert out.strip() == f"remote run {run_id}: seq 1, RUNNING, progress"
        await reach(s.daemon, "remote", S.STALLED)  # 1 s without progress
        assert "remote:stalled" in s.daemon.alerts.active

        code, out, err = await pw_beat("-p", "items=2", "-m", "remote 2", env=env)

        assert code == 0, err
        assert out.strip() == f"remote run {run_id}: seq 2, RUNNING, progress"
        run = s.daemon.jobs["remote"].run
        assert run.state == S.RUNNING and run.progress == {"items": 2.0} and run.message == "remote 2"
        assert "remote:stalled" not in s.daemon.alerts.active
        local = Path(run.heartbeat_path).read_text()  # what the intake read: the heartbeat file
        assert '"seq":2' in local and '"items":2.0' in local


async def test_remote_heartbeats_need_the_jobs_own_token(tmp_path: Path) -> None:
    tables = (remote_job(tmp_path), job(tmp_path, "plain", P.NEVER_BEATS, startup_grace="60s"))
    async with serving(tmp_path, *tables) as s:
        run_id = await started(s)
        url = f"/api/runs/{run_id}/heartbeat"
        for headers in ({}, {"Authorization": "Bearer wrong"}, GOOD):  # the API token is not the job's
            reply = await s.tcp.post(url, json=beat(1), headers=headers)
            assert reply.status_code == 401, (headers, reply.text)
            assert HB_TOKEN not in reply.text
        await reach(s.daemon, "plain", S.STARTING)
        plain = s.daemon.jobs["plain"].run.run_id
        refused = await s.tcp.post(f"/api/runs/{plain}/heartbeat", json=beat(1), headers=HB)
        assert refused.status_code == 403 and "has no heartbeat_token" in refused.json()["error"]
        assert s.daemon.jobs["remote"].state == S.STARTING  # nothing got in
        code, _, err = await pw_beat("--url", s.daemon.api.url, "--token", "wrong", "--run", run_id, "-p", "n=1")
        assert code == 1 and "the daemon refused the heartbeat (401): wrong bearer token" in err
        assert (await s.unix.post(url, json=beat(1))).status_code == 200  # the owner's socket is trusted


async def test_remote_heartbeats_pass_the_same_validation_and_progress_rules(tmp_path: Path) -> None:
    async with serving(tmp_path, remote_job(tmp_path, stall_after="1h")) as s:
        run_id = await started(s)
        url = f"/api/runs/{run_id}/heartbeat"
        bad = await s.tcp.post(url, json={"seq": "one", "ts": "now"}, headers=HB)
        assert bad.status_code == 422
        assert bad.json()["error"] == "malformed heartbeat: seq: expected a non-negative integer, got 'one'"
        assert (await s.tcp.post(url, content=b"{", headers=HB)).status_code == 422
        first = (await s.tcp.post(url, json=beat(1, progress={"rows": 10}), headers=HB)).json()
        assert first["state"] == "RUNNING" and first["progressed"] is True
        again = await s.tcp.post(url, json=beat(1, progress={"rows": 11}), headers=HB)
        assert again.status_code == 409 and "seq 1 was already received" in again.json()["error"]
        lower = (await s.tcp.post(url, json=beat(2, progress={"rows": 9}), headers=HB)).json()
        assert lower["progressed"] is False  # below the high-water mark: liveness only
        assert s.daemon.jobs["remote"].run.progress == {"rows": 9.0}
        # progress_at from a wrong clock is clamped into [since, now], as for a local worker
        before = datetime.now(timezone.utc)
        ancient = (before - timedelta(days=3)).isoformat()
        dated = (await s.tcp.post(url, json=beat(3, progress={"rows": 12}, progress_at=ancient), headers=HB)).json()
        assert dated["progressed"] is True
        assert datetime.fromisoformat(dated["last_progress_at"]) >= before - timedelta(seconds=5)
        run = s.daemon.jobs["remote"].run
        await s.daemon.recorder.flush()
        errors = [e.reason for e in s.daemon.history.events(run_id=run_id) if e.kind == "heartbeat_error"]
        assert errors[0].startswith("remote heartbeat refused: seq: expected a non-negative integer")
        assert run.state == S.RUNNING


async def test_a_remote_worker_learns_its_run_has_ended(tmp_path: Path) -> None:
    async with serving(tmp_path, remote_job(tmp_path)) as s:
        run_id = await started(s)
        assert (await s.unix.post("/api/jobs/remote/stop")).status_code == 200
        await reach(s.daemon, "remote", S.STOPPED)
        ended = await s.tcp.post(f"/api/runs/{run_id}/heartbeat", json=beat(1), headers=HB)
        assert ended.status_code == 409
        assert ended.json()["error"] == f"run {run_id} of remote has ended (STOPPED): stop sending heartbeats for it"
        unknown = await s.tcp.post("/api/runs/20200101T000000000Z-abcdef/heartbeat", json=beat(1), headers=HB)
        assert unknown.status_code == 404


async def test_beat_url_merges_with_the_heartbeat_the_daemon_has(tmp_path: Path) -> None:
    async with serving(tmp_path, remote_job(tmp_path, stall_after="1h")) as s:
        run_id = await started(s)
        args = ["--url", s.daemon.api.url, "--token", HB_TOKEN, "--run", run_id]
        assert (await pw_beat(*args, "-p", "files=3", "--phase", "copy", "-m", "3 of 9"))[0] == 0
        assert (await pw_beat(*args, "-p", "bytes=900", "--proof", "png:shot.png"))[0] == 0
        state = (await s.tcp.get(f"/api/runs/{run_id}/heartbeat", headers=HB)).json()
        assert state["heartbeat"]["seq"] == 2
        assert state["heartbeat"]["progress"] == {"files": 3.0, "bytes": 900.0}
        assert (state["heartbeat"]["phase"], state["heartbeat"]["message"]) == ("copy", "3 of 9")
        assert s.daemon.jobs["remote"].run.declared_proofs == [("shot.png", "png")]
        missing = await pw_beat("--url", s.daemon.api.url, "--token", HB_TOKEN, "-p", "n=1")
        assert missing[0] == 2 and "--run (or PROOFWATCH_RUN_ID) is required with --url" in missing[2]


async def test_beat_url_says_when_the_daemon_cannot_be_reached(tmp_path: Path) -> None:
    with anyio.fail_after(30):
        code, _, err = await pw_beat("--url", "http://127.0.0.1:9", "--token", "t", "--run", "r", "-p", "n=1")
    assert code == 1 and "http://127.0.0.1:9: cannot reach the daemon" in err
    assert "Traceback" not in err


def test_heartbeat_body_schema_accepts_what_the_sdk_writes() -> None:
    from supervisor.api._models import HeartbeatBody
    from workers.protocol import Heartbeat

    hb = Heartbeat(seq=4, ts=datetime.now(timezone.utc), progress={"n": 2}, phase="p", message="m",
                   proofs=(("a.txt", "file"), ("b.png", "png")), progress_at=datetime.now(timezone.utc))
    parsed = HeartbeatBody.model_validate_json(hb.to_json())
    assert parsed.seq == 4 and len(parsed.proofs) == 2
    assert httpx.Request("POST", "http://x", content=hb.to_json()).content  # sendable as it is
