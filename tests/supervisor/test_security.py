"""Security by default: no job runs as root unasked, a job with its own `user` runs as that user
and sees nothing of the daemon's state, the daemon's files are owner-only, proof and log paths
stay inside their roots, and secrets appear nowhere: not in a job's environment, the state
dir, the logs, the API or the CLI's output. Real processes, real users, real files."""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import psutil
import pytest

from status.models import JobState
from supervisor._config_check import check_config
from supervisor._proof_live import verify_live
from supervisor.config import ConfigError, ProofSpec, load_config
from supervisor.confine import Escape, open_inside
from supervisor.logs import rotate_if_needed, tail
from supervisor.proofs import verify_spec
from supervisor.spawn import SpawnError, identity_for, write_private
from tests import _procs as P
from tests._procs import script
from tests.supervisor.harness import HEADER, job, reach, running
from tests.supervisor.test_cli import PROOFWATCH, pw, wait_for
from tests.supervisor.test_notify import Receiver

S = JobState
STRICT = HEADER.replace("allow_root = true\n", "")  # what a production config says: nothing
REFUSAL = ('refusing to run job "{}" as root: set user = "<name>" for the job, '
           'or allow_root = true (see README "Security")')
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can switch users")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this host")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory another user can traverse (pytest's own tmp dirs are 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="pw-security-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- root: refused unless asked for -----------------------------------------------------------

@needs_root
async def test_a_root_daemon_refuses_a_job_with_neither_user_nor_allow_root(tmp_path: Path) -> None:
    tables = [job(tmp_path, "plain", P.EXIT_OK), job(tmp_path, "trusted", P.EXIT_OK, allow_root=True)]
    async with running(tmp_path, *tables, header=STRICT) as d:
        await reach(d, "plain", S.CRASHED)
        run = d.jobs["plain"].last_run
        assert run is not None and run.pid is None  # nothing was spawned
        assert run.error == "could not start: " + REFUSAL.format("plain")
        assert d.alerts.active["plain:crashed"].title == f"plain: crashed — could not start: {REFUSAL.format('plain')}"
        await reach(d, "trusted", S.SUCCEEDED)  # allow_root = true on the job itself


@pytest.mark.parametrize(("user", "allow_root", "euid", "expected"), [
    (None, False, 1000, None),  # not root: nothing to refuse, nobody to switch to
    (None, True, 0, None),
    ("root", False, 0, None),  # user = "root" says it out loud
    ("nobody", False, 0, "nobody"),
], ids=["non-root-daemon", "allow-root", "user-root", "user-nobody"])
def test_whom_a_job_runs_as(user: str | None, allow_root: bool, euid: int, expected: str | None,
                            nobody: pwd.struct_passwd) -> None:
    run_as = identity_for("j", user, allow_root, euid=euid)
    assert (run_as.name if run_as else None) == expected
    if run_as is not None:
        assert (run_as.uid, run_as.gid) == (nobody.pw_uid, nobody.pw_gid)
        assert run_as.env() == {"HOME": nobody.pw_dir, "USER": "nobody", "LOGNAME": "nobody"}


@pytest.mark.parametrize(("user", "euid", "message"), [
    (None, 0, REFUSAL.format("j")),
    ("nobody", 1000, 'cannot run job "j" as user "nobody": the daemon runs as uid 1000, '
                     "and only root can switch users"),
    ("no-such-user-pw", 0, 'no such user "no-such-user-pw" on this host'),
], ids=["root-unasked", "switch-without-root", "unknown-user"])
def test_who_a_job_cannot_run_as(user: str | None, euid: int, message: str, nobody: pwd.struct_passwd) -> None:
    with pytest.raises(SpawnError) as info:
        identity_for("j", user, False, euid=euid)
    assert str(info.value) == message


def test_an_unknown_user_is_a_config_error_naming_job_and_user(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[jobs.x]\ncommand = "true"\nuser = "no-such-user-pw"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f'{path}:3: jobs.x.user: no such user "no-such-user-pw" on this host '
                               "(create it, e.g. useradd --system --no-create-home no-such-user-pw, "
                               "or fix the name)")


def test_check_warns_about_jobs_a_root_daemon_would_refuse(tmp_path: Path, nobody: pwd.struct_passwd) -> None:
    (tmp_path / "c.toml").write_text('[jobs.plain]\ncommand = "true"\n'
                                     '[jobs.trusted]\ncommand = "true"\nallow_root = true\n'
                                     '[jobs.own]\ncommand = "true"\nuser = "nobody"\n')
    findings = {f.key: f for f in check_config(load_config(tmp_path / "c.toml"), os.environ, euid=0)}
    assert findings["jobs.plain.user"].level == "warning"
    assert findings["jobs.plain.user"].message.endswith(REFUSAL.format("plain").removeprefix("refusing"))
    assert "jobs.trusted.user" not in findings
    own = [f for f in check_config(load_config(tmp_path / "c.toml"), os.environ, euid=0) if f.key == "jobs.own.user"]
    assert own[0].level == "warning"  # pytest's tmp dir is 0700 root: nobody cannot get in
    assert own[0].message.startswith(f'user "nobody" cannot reach the state_dir\'s parent {tmp_path}: ')
    as_user = {f.key: f for f in check_config(load_config(tmp_path / "c.toml"), os.environ, euid=1000)}
    assert "jobs.plain.user" not in as_user and as_user["jobs.own.user"].level == "error"


# --- a job with its own user ------------------------------------------------------------------

# A shell job (nobody cannot run this test's Python): reports who it is and what it can read,
# then beats per the protocol (temp file in $PROOFWATCH_SCRATCH, rename) until told to finish.
AS_USER = r"""
state=$(dirname "$(dirname "$(dirname "$PROOFWATCH_RUN_DIR")")")
n=0
while [ ! -e "$state/status.json" ] && [ $n -lt 200 ]; do n=$((n+1)); sleep 0.05; done  # jobs start first
{
  echo "id $(id -u) $(id -g) home=$HOME user=$USER logname=$LOGNAME umask=$(umask)"
  for f in status.json history.db; do cat "$state/$f" 2>&1 >/dev/null | sed "s|$state/||"; done
  ls "$state" 2>&1 >/dev/null | sed "s|$state|STATE|"
  ls "$state/runs" 2>&1 >/dev/null | sed "s|$state|STATE|"
  ls "$state/tmp" 2>&1 >/dev/null | sed "s|$state|STATE|"
  env | grep -c "^PROOFWATCH_API_TOKEN=" || true
} > "$PROOFWATCH_RUN_DIR/report.txt"
echo made > "$PROOFWATCH_RUN_DIR/made.txt"
i=0
while [ ! -e "$PROOFWATCH_RUN_DIR/go" ] && [ $i -lt 3000 ]; do
  i=$((i+1))
  printf '{"seq": %d, "ts": "%s", "progress": {"n": %d}, "phase": "work", "message": "as %s"}' \
    "$i" "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" "$i" "$(id -un)" > "$PROOFWATCH_SCRATCH/hb.tmp"
  mv "$PROOFWATCH_SCRATCH/hb.tmp" "$PROOFWATCH_HEARTBEAT"
  sleep 0.05
done
"""

SOCKET_PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
sys.exit(0)
"""


def user_job(nobody: pwd.struct_passwd) -> str:
    return (f'[jobs.worker]\nkind = "task"\nuser = "nobody"\ncommand = ["/bin/sh", "-c", {json.dumps(AS_USER)}]\n'
            '[[jobs.worker.proofs]]\npath = "made.txt"\nkind = "text"\ncontains = "made"\n'
            '[[jobs.worker.proofs]]\nkind = "command"\n'
            f'command = ["/bin/sh", "-c", "id -u; test $(id -u) = {nobody.pw_uid}"]\n')


@needs_root
async def test_a_user_job_runs_as_that_user_beats_and_cannot_see_the_daemons_state(
    open_dir: Path, nobody: pwd.struct_passwd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROOFWATCH_API_TOKEN", "never-in-a-job-1234")
    async with running(open_dir, user_job(nobody), header=STRICT) as d:
        cfg = d.config
        await reach(d, "worker", S.RUNNING)
        await d.wait_until(lambda: d.jobs["worker"].run is not None
                           and d.jobs["worker"].run.progress.get("n", 0) >= 3, 10)
        run = d.jobs["worker"].run
        assert run is not None and run.pid is not None
        assert psutil.Process(run.pid).uids().real == nobody.pw_uid
        assert run.message == "as nobody"

        report = (run.run_dir / "report.txt").read_text().splitlines()
        assert report[0] == (f"id {nobody.pw_uid} {nobody.pw_gid} home={nobody.pw_dir} user=nobody "
                             "logname=nobody umask=0022")
        assert report[1:] == ["cat: status.json: Permission denied", "cat: history.db: Permission denied",
                              "ls: cannot open directory 'STATE': Permission denied",
                              "ls: cannot open directory 'STATE/runs': Permission denied",
                              "ls: cannot open directory 'STATE/tmp': Permission denied",
                              "0"]  # no PROOFWATCH_API_TOKEN in its environment

        # the path down to its run dir is traverse-only; the run dir and scratch dir are its own
        assert [mode(p) for p in (cfg.state_dir, cfg.runs_dir, run.run_dir.parent)] == [0o711] * 3
        assert (os.stat(run.run_dir).st_uid, mode(run.run_dir)) == (nobody.pw_uid, 0o700)
        scratch = cfg.state_dir / "tmp" / str(nobody.pw_uid)
        assert (os.stat(scratch).st_uid, mode(scratch)) == (nobody.pw_uid, 0o700)
        assert mode(cfg.state_dir / "tmp") == 0o711
        made = run.run_dir / "made.txt"
        assert (os.stat(made).st_uid, mode(made)) == (nobody.pw_uid, 0o644)  # umask 022
        # every file of the daemon's in the (now traversable) state dir is owner-only
        for name in ("status.json", "history.db", "proofwatch.sock"):
            assert mode(cfg.state_dir / name) == 0o600, name
        assert not [p.name for p in cfg.state_dir.iterdir() if p.is_file() and mode(p) & 0o077]

        python3 = shutil.which("python3", path="/usr/bin:/bin:/usr/local/bin")
        if python3 is not None:  # the socket, tried for real (nobody cannot run our venv's Python)
            probe = await anyio.to_thread.run_sync(lambda: subprocess.run(
                [python3, "-c", SOCKET_PROBE, str(cfg.socket_path)], user=nobody.pw_uid,
                group=nobody.pw_gid, extra_groups=[], capture_output=True, check=False))
            assert probe.returncode == 13, probe.stderr

        (run.run_dir / "go").touch()
        await reach(d, "worker", S.SUCCEEDED)
        verifier = next(p for p in d.jobs["worker"].last_run.proofs if p.kind == "command")
        assert verifier.ok and f"\n{nobody.pw_uid}" in verifier.detail  # ran as nobody too


@needs_root
async def test_a_user_job_cannot_redirect_the_daemons_writes_through_links(
    open_dir: Path, nobody: pwd.struct_passwd
) -> None:
    """The job owns its run dir: a link it plants where the daemon writes its pid file is
    replaced, and the file outside stays as it was."""
    victim = open_dir / "victim.txt"
    victim.write_text("untouched\n")
    body = (f'ln -s {victim} "$PROOFWATCH_RUN_DIR/pid.planted"; '
            'mv "$PROOFWATCH_RUN_DIR/pid.planted" "$PROOFWATCH_RUN_DIR/pid"; '
            f'ln -s {victim} "$PROOFWATCH_RUN_DIR/stderr.log.1"; '
            """printf '{"seq": 1, "ts": "%s"}' "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" > "$PROOFWATCH_HEARTBEAT"; """
            "exec sleep 30")
    table = f'[jobs.linker]\nuser = "nobody"\ncommand = ["/bin/sh", "-c", {json.dumps(body)}]\n'
    async with running(open_dir, table, header=STRICT) as d:
        await reach(d, "linker", S.RUNNING)  # its links are planted
        run = d.jobs["linker"].run
        assert run is not None
        backup = run.run_dir / "stderr.log.1"
        assert backup.is_symlink()
        assert victim.read_text() == "untouched\n"  # the pid file went beside it, not through it
        # a rotation must not write through the planted backup link either
        run.stderr_path.write_bytes(b"x" * 4096)
        assert rotate_if_needed(run.stderr_path, 1024, 1) == 4096
        # the planted link is replaced by the real backup (a temp file renamed over it)
        assert not backup.is_symlink() and victim.read_text() == "untouched\n"


def test_the_pid_file_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "pid").symlink_to(victim)
    write_private(run_dir / "pid", "123 4.5\n")
    assert victim.read_text() == "untouched\n"
    assert not (run_dir / "pid").is_symlink() and (run_dir / "pid").read_text() == "123 4.5\n"
    assert mode(run_dir / "pid") == 0o600 and sorted(p.name for p in run_dir.iterdir()) == ["pid"]


# --- owner-only by default --------------------------------------------------------------------

async def test_the_state_dir_and_the_daemons_files_are_owner_only(tmp_path: Path) -> None:
    async with running(tmp_path, job(tmp_path, "boom", P.CRASH_AT_START)) as d:
        await reach(d, "boom", S.CRASHED)
        await d.recorder.flush()
        cfg = d.config
        assert mode(cfg.state_dir) == 0o700
        assert stat.S_ISSOCK(os.lstat(cfg.socket_path).st_mode) and mode(cfg.socket_path) == 0o600
        await d.status.write_now()
        for path in (cfg.status_file, cfg.alerts_log, d.jobs["boom"].last_run.stderr_path):
            assert mode(path) == 0o600, path
        assert mode(d.jobs["boom"].last_run.run_dir) == 0o700
        assert mode(cfg.runs_dir / "boom") == 0o700


# --- paths stay inside their roots ------------------------------------------------------------

STARTED = datetime.now(timezone.utc) - timedelta(minutes=1)


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    run_dir, data_dir = tmp_path / "var" / "runs" / "j" / "r1", tmp_path / "data"
    run_dir.mkdir(parents=True)
    data_dir.mkdir()
    return run_dir, data_dir


def test_a_data_proof_linked_out_of_the_data_dir_is_refused_unread(roots: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, data_dir = roots
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    (data_dir / "models").mkdir()
    (data_dir / "models" / "registry.json").symlink_to(secret)
    results = verify_spec(ProofSpec(path="data:models/registry.json", kind="json", required_keys=["x"]),
                          run_dir, data_dir, STARTED)
    assert results[0].detail == (f"refused: escapes the data dir: resolves outside {data_dir} "
                                 f"(symlink escape to {secret})")
    assert results[0].sha256 is None and not any(r.ok for r in results)
    assert not any("hunter2" in r.detail for r in results)


def test_a_fifo_in_place_of_a_proof_is_refused_without_hanging(roots: tuple[Path, Path]) -> None:
    run_dir, data_dir = roots
    os.mkfifo(run_dir / "out.json")
    began = time.monotonic()
    [result, count] = verify_spec(ProofSpec(path="*.json", kind="json"), run_dir, data_dir, STARTED)
    assert time.monotonic() - began < 5
    assert (result.path, result.ok, result.detail) == ("out.json", False, "refused: not a regular file")
    assert count.detail.startswith("missing: ")


def test_a_link_swapped_in_after_the_path_check_is_caught_on_the_open_file(roots: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = roots
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    (run_dir / "proof.txt").symlink_to(outside)  # what a job could swap in after a path check
    with pytest.raises(Escape) as info:
        open_inside(run_dir, run_dir / "proof.txt")
    assert info.value.real == str(outside)
    (run_dir / "inside.txt").write_text("ok")
    fd = open_inside(run_dir, run_dir / "inside.txt")
    os.close(fd)


@pytest.mark.parametrize(("repo", "detail"), [
    ("../other", "refused: '../other' must stay inside the run dir {run} (no absolute paths, no '..')"),
    ("data:../x", "refused: 'data:../x' must stay inside the data dir {data} (no absolute paths, no '..')"),
    ("data:/etc", "refused: 'data:/etc' must stay inside the data dir {data} (no absolute paths, no '..')"),
    ("linked", "refused: 'linked' escapes the run dir: resolves outside {run} (symlink escape to {out})"),
], ids=["dotdot", "data-dotdot", "data-absolute", "symlink"])
def test_a_git_proof_repo_stays_inside_its_root(roots: tuple[Path, Path], tmp_path: Path, repo: str, detail: str) -> None:
    run_dir, data_dir = roots
    (tmp_path / "out").mkdir()
    (run_dir / "linked").symlink_to(tmp_path / "out", target_is_directory=True)
    result = verify_live(ProofSpec(kind="git", repo=repo), run_dir, data_dir, STARTED)
    assert (result.ok, result.detail) == (False, detail.format(run=run_dir, data=data_dir, out=tmp_path / "out"))


def test_log_tails_never_follow_a_link(tmp_path: Path) -> None:
    (tmp_path / "stderr.log").symlink_to("/etc/passwd")
    assert tail(tmp_path / "stderr.log") == []
    os.mkfifo(tmp_path / "stdout.log")
    assert tail(tmp_path / "stdout.log") == []


def test_logs_refuses_job_names_and_run_ids_that_are_not_plain_names(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(HEADER + '[jobs.x]\ncommand = "true"\n')
    (tmp_path / "var" / "runs" / "x").mkdir(parents=True)
    bad_job = pw("logs", "../../etc", "--config", "config.toml", cwd=tmp_path)
    assert bad_job.returncode == 2
    assert "'../../etc' is not a job name" in bad_job.stderr
    bad_run = pw("logs", "x", "--run", "../../../etc/passwd", "--config", "config.toml", cwd=tmp_path)
    assert bad_run.returncode == 2
    assert "--run '../../../etc/passwd' is not a run id" in bad_run.stderr
    (tmp_path / "elsewhere" / "20990101T000000000Z-abcdef").mkdir(parents=True)
    (tmp_path / "elsewhere" / "20990101T000000000Z-abcdef" / "stdout.log").write_text("secret\n")
    (tmp_path / "var" / "runs" / "x" / "20990101T000000000Z-abcdef").symlink_to(
        tmp_path / "elsewhere" / "20990101T000000000Z-abcdef", target_is_directory=True)
    linked = pw("logs", "x", "--config", "config.toml", cwd=tmp_path)
    assert linked.returncode == 2 and "resolves outside" in linked.stderr
    assert "secret" not in linked.stdout


async def test_the_api_refuses_a_run_id_that_is_not_one(tmp_path: Path) -> None:
    async with running(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as d:
        await reach(d, "ok", S.SUCCEEDED)
        transport = httpx.AsyncHTTPTransport(uds=str(d.config.socket_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://proofwatch") as client:
            bad = await client.get("/api/runs/...")
            assert bad.status_code == 404
            assert "not a run id" in bad.json()["error"]
            good = await client.get(f"/api/runs/{d.jobs['ok'].last_run.run_id}")
            assert good.status_code == 200 and good.json()["logs"]["stdout"] == ["done"]


# --- secrets appear nowhere -------------------------------------------------------------------

SECRETS = {
    "PROOFWATCH_API_TOKEN": "pwapi-7Hq2Lx9Vd4Ks8Tz1",
    "HOOK_TOKEN": "hooktok-3Bn6Wm1Qp8Rf5Yc2",
    "HOOK_SECRET": "hmac-9Gv4Jt7Ne2Xs6Ua3",
    "JOB_HB_TOKEN": "hbtok-5Dk8Zr3Lw1Pm7Ci4",
    "DEADMAN_TOKEN": "dmtok-2Fy7Ho4Sb9Vn1Eq6",
}
LITERAL = "literal-8Mx3Kq6Zt1Wb4Nd"  # a secret written into the config itself (by mistake)

# Tells everything it got: its environment on stdout and stderr, in a file, in its heartbeats.
ENV_DUMP = """
import json, os, sys, time
from pathlib import Path
from workers.sdk import Run
env = dict(os.environ)
print(json.dumps(env)); print(json.dumps(env), file=sys.stderr, flush=True)
Path(os.environ["PROOFWATCH_RUN_DIR"], "env.json").write_text(json.dumps(env))
run = Run.from_env()
i = 0
while True:
    i += 1
    run.beat({"n": i}, message=";".join(f"{k}={v}" for k, v in env.items() if "TOK" in k or "SECRET" in k
                                        or "HOOK" in k or "DEADMAN" in k)[:400], force=True)
    time.sleep(0.1)
"""


def test_daemon_log_lines_mask_secrets_in_tracebacks_too() -> None:
    from supervisor.launch import _RedactingFormatter
    from supervisor.notify import register_secret

    register_secret("tb-secret-4Rk8Vw2Jn6")
    try:
        raise RuntimeError("POST https://hooks.example.com/x/tb-secret-4Rk8Vw2Jn6 failed")
    except RuntimeError:
        record = logging.LogRecord("supervisor.x", logging.ERROR, __file__, 1, "delivery failed: %s",
                                   ("tb-secret-4Rk8Vw2Jn6",), sys.exc_info())
    text = _RedactingFormatter("%(levelname)s %(message)s").format(record)
    assert "RuntimeError" in text and "delivery failed: ***" in text
    assert "tb-secret-4Rk8Vw2Jn6" not in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_secrets_never_appear_in_state_logs_api_or_cli_output(tmp_path: Path) -> None:
    receiver = Receiver().start()
    api_port = free_port()
    dump, crash = script(tmp_path, "dump", ENV_DUMP), script(tmp_path, "crash", P.CRASH_AT_START)
    config = (HEADER + f'deadman_url = "http://127.0.0.1:{receiver.port}/ping/${{DEADMAN_TOKEN}}"\n'
              'deadman_every = "1s"\n'
              f'\n[api]\nlisten = "127.0.0.1:{api_port}"\ntoken = "${{PROOFWATCH_API_TOKEN}}"\n'
              '\n[alerts]\ngroup_wait = "50ms"\n[[alerts.sinks]]\nkind = "webhook"\n'
              f'url = "http://127.0.0.1:{receiver.port}/hook/${{HOOK_TOKEN}}"\nsecret = "${{HOOK_SECRET}}"\n'
              f'\n[jobs.dump]\nkind = "service"\ncommand = ["{sys.executable}", "{dump}"]\n'
              'heartbeat_token = "${JOB_HB_TOKEN}"\n'
              f'\n[jobs.crash]\ncommand = ["{sys.executable}", "{crash}"]\n')
    (tmp_path / "config.toml").write_text(config)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}, **SECRETS}
    seen: dict[str, str] = {}  # where -> text, every output to search

    def cli(*args: str) -> None:
        done = subprocess.run([*PROOFWATCH, *args, "--config", "config.toml"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        seen[f"proofwatch {' '.join(args)}"] = done.stdout + done.stderr

    with (tmp_path / "daemon.out").open("wb") as out, (tmp_path / "daemon.err").open("wb") as err:
        daemon = subprocess.Popen([*PROOFWATCH, "run", "--config", "config.toml", "--log-level", "debug"],
                                  cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    try:
        status_file = tmp_path / "var" / "status.json"

        def job_state(name: str) -> str | None:
            try:
                return json.loads(status_file.read_text())["jobs"][name]["state"]  # type: ignore[no-any-return]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                return None

        wait_for("dump RUNNING and crash CRASHED",
                 lambda: job_state("dump") == "RUNNING" and job_state("crash") == "CRASHED")
        wait_for("an alert delivered", lambda: any(p.startswith("/hook/") for p, _, _ in receiver.requests))
        run_id = json.loads(status_file.read_text())["jobs"]["dump"]["run_id"]
        token = {"Authorization": f"Bearer {SECRETS['PROOFWATCH_API_TOKEN']}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as tcp:
            for path in ("/api/status", "/api/jobs/dump", f"/api/runs/{run_id}", "/api/host/samples",
                         "/metrics", "/openapi.json", "/", "/static/app.js", f"/api/runs/{run_id}/heartbeat"):
                reply = tcp.get(path, headers=token)
                seen[f"GET {path}"] = reply.text
            assert tcp.get("/api/status", headers=token).status_code == 200
            wrong = tcp.get("/api/status", headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401
            seen["GET /api/status (wrong token)"] = wrong.text
            beat = {"seq": 10**6, "ts": datetime.now(timezone.utc).isoformat(), "progress": {"n": 10**6}}
            remote = tcp.post(f"/api/runs/{run_id}/heartbeat", json=beat,
                              headers={"Authorization": f"Bearer {SECRETS['JOB_HB_TOKEN']}"})
            assert remote.status_code == 200, remote.text
            seen["POST heartbeat"] = remote.text
        for args in (("check",), ("status",), ("status", "--json"), ("alerts", "--all"), ("history", "--events"),
                     ("logs", "dump"), ("logs", "dump", "--stderr"), ("logs", "crash", "--stderr"),
                     ("proofs", "crash"), ("health",)):
            cli(*args)
        # a config error that would echo the secret it is about
        (tmp_path / "config.toml").write_text(config.replace('heartbeat_token = "${JOB_HB_TOKEN}"',
                                                             f'heartbeat_token = ["{LITERAL}"]'))
        cli("reload")
        cli("check")
        assert "heartbeat_token: expected a string" in seen["proofwatch reload"]
        (tmp_path / "config.toml").write_text(config)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        receiver.stop()
    assert daemon.returncode == 143, (tmp_path / "daemon.err").read_text()

    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("config.toml",)):
        seen[str(path.relative_to(tmp_path))] = path.read_bytes().decode("utf-8", "replace")
    assert "var/history.db" in seen and "var/proofwatch.log" in seen and "daemon.err" in seen
    leaks = [f"{name} in {where}" for where, text in seen.items()
             for name, value in (*SECRETS.items(), ("LITERAL", LITERAL)) if value in text]
    assert leaks == []
    assert "PROOFWATCH_API_TOKEN" not in json.loads(seen[f"var/runs/dump/{run_id}/env.json"])
