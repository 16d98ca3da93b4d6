"""Proofs that are not files: a verifier command, a live HTTP endpoint, git commits of the run.

Each returns one `ProofStatus` labelled by `ProofSpec.label`. They block (subprocess, sockets),
which is fine: the daemon runs verification in a worker thread.

A verifier program and git run as the owner of the run dir when the daemon is root and the run
belongs to a job's own `user` (they read what that job wrote: a crafted model file must not
run code as root), with umask 022 and an environment without the daemon's secrets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from policies.proofs import span
from status.models import ProofStatus
from supervisor._config_check import resolve_command
from supervisor.config import ProofSpec
from supervisor.confine import inside
from supervisor.jobenv import SECRET_NAME
from supervisor.spawn import JOB_UMASK, SpawnError, lookup_user
from workers.protocol import ENV_DATA_DIR, ENV_RUN_DIR

__all__ = ["verify_live"]

DATA_PREFIX = "data:"
TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
_BODY_LIMIT = 1 << 20  # `contains` searches the first MiB of a response
_GIT_TIMEOUT = 30.0


def verify_live(spec: ProofSpec, run_dir: Path, data_dir: Path, started_at: datetime,
                environ: Mapping[str, str] | None = None) -> ProofStatus:
    """Run the command, http or git proof `spec` for a run started at `started_at`.

    `environ` is what a verifier starts from (pass the job's environment); by default the
    daemon's own, without the well-known secret names."""
    base = _without_secrets(os.environ) if environ is None else dict(environ)
    if spec.kind == "command":
        return _command(spec, run_dir, data_dir, base)
    if spec.kind == "http":
        return _http(spec)
    if spec.kind == "git":
        return _git(spec, run_dir, data_dir, started_at, base)
    raise ValueError(f"not a live proof kind: {spec.kind}")


def _without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if not SECRET_NAME.fullmatch(key)}


def _as_owner(run_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Popen arguments that run a program as the run dir's owner (when root and that is
    someone else); sets HOME, USER and LOGNAME in `env` to match."""
    if os.geteuid() != 0:
        return {}
    st = os.stat(run_dir)
    if st.st_uid == 0:
        return {}
    try:
        who = lookup_user(str(st.st_uid))
    except SpawnError:  # an account deleted meanwhile: its ids, no supplementary groups
        return {"user": st.st_uid, "group": st.st_gid, "extra_groups": []}
    env.update(who.env())
    return {"user": who.uid, "group": who.gid, "extra_groups": list(who.groups)}


def _result(spec: ProofSpec, ok: bool, detail: str, checks: list[str] | None = None) -> ProofStatus:
    return ProofStatus(path=spec.label, kind=spec.kind, ok=ok, detail=detail, checks=checks or [])


# --- command -------------------------------------------------------------------------------------

def _command(spec: ProofSpec, run_dir: Path, data_dir: Path, base: dict[str, str]) -> ProofStatus:
    if _STOPPING.is_set():
        return _result(spec, False, "interrupted: the supervisor is shutting down (not started)")
    argv = resolve_command(spec.command or [])  # a bare "python" is the daemon's interpreter
    env = {**base, ENV_RUN_DIR: str(run_dir), ENV_DATA_DIR: str(data_dir)}
    who = _as_owner(run_dir, env)
    timeout = spec.timeout_seconds
    with tempfile.TemporaryFile() as out:
        began = time.monotonic()
        try:
            proc = subprocess.Popen(argv, cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, umask=JOB_UMASK,
                                    **who)
        except OSError as exc:
            return _result(spec, False, f"cannot start the verifier {argv[0]!r}: "
                                        f"{(exc.strerror or str(exc)).lower()}")
        with _LOCK:
            _RUNNING.add(proc)
            if _STOPPING.is_set():  # interrupted between the check above and the start
                _INTERRUPTED.add(proc.pid)
                _kill_group(proc)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return _result(spec, False, _with_tail(f"timed out after {span(timeout)} (killed)", _tail(out)))
        finally:
            _RUNNING.discard(proc)
        took = time.monotonic() - began
        tail = _tail(out)
    if proc.pid in _INTERRUPTED:
        _INTERRUPTED.discard(proc.pid)
        return _result(spec, False, _with_tail("interrupted: the supervisor is shutting down", tail))
    if code == 0:
        return _result(spec, True, _with_tail(f"exited 0 in {span(took)}", tail),
                       ["exit 0", f"within {span(timeout)}"])
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    last = tail.splitlines()[-1].strip() if tail.strip() else "no output"
    return _result(spec, False, _with_tail(f"verifier {how}: {last}", tail))


_RUNNING: set[subprocess.Popen[bytes]] = set()  # verifiers running now (in worker threads)
_INTERRUPTED: set[int] = set()


_LOCK = threading.Lock()
_STOPPING = threading.Event()


def interrupt_verifiers() -> int:
    """Kill every running verifier and start no new one (the supervisor is shutting down);
    return how many were killed."""
    with _LOCK:
        _STOPPING.set()
        procs = list(_RUNNING)
        for proc in procs:
            _INTERRUPTED.add(proc.pid)
            _kill_group(proc)
    return len(procs)


def allow_verifiers() -> None:
    """Let verifiers run again (a new daemon in the same process, as in tests)."""
    _STOPPING.clear()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the verifier's whole session: it has had its time, and a hang gets no grace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _tail(out: IO[bytes]) -> str:
    out.seek(0, os.SEEK_END)
    size = out.tell()
    out.seek(max(0, size - _TAIL_BYTES))
    lines = out.read().decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-TAIL_LINES:])


def _with_tail(summary: str, tail: str) -> str:
    return f"{summary}\noutput (last {TAIL_LINES} lines):\n{tail}" if tail.strip() else summary


# --- http ----------------------------------------------------------------------------------------

def _http(spec: ProofSpec) -> ProofStatus:
    url, timeout = spec.url or "", spec.timeout_seconds
    began = time.monotonic()
    body = bytearray()
    import httpx  # lazily: only http proofs need it

    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            with client.stream("GET", url) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= _BODY_LIMIT or time.monotonic() - began > timeout:
                        break
    except httpx.TimeoutException:
        return _result(spec, False, f"timed out after {span(timeout)}")
    except httpx.TransportError as exc:
        return _result(spec, False, f"not answering: {exc or type(exc).__name__}")
    except httpx.HTTPError as exc:
        return _result(spec, False, f"request failed: {exc}")
    took = time.monotonic() - began
    if took > timeout:
        return _result(spec, False, f"timed out after {span(timeout)} (answered {response.status_code} "
                                    f"but the body took {span(took)})")
    status = f"{response.status_code} {response.reason_phrase}".strip()
    if not response.is_success:
        return _result(spec, False, f"answered {status}")
    checks = [f"HTTP {status}", f"answered in {span(took)}"]
    text = bytes(body).decode(response.encoding or "utf-8", "replace")
    missing = [f"/{p}/" for p in spec.contains if re.search(p, text, re.MULTILINE) is None]
    if missing:
        return _result(spec, False, f"answered {status} but the body does not contain {', '.join(missing)}",
                       checks)
    checks.extend(f"body contains /{p}/" for p in spec.contains)
    return _result(spec, True, f"answered {status} in {span(took)}", checks)


# --- git -----------------------------------------------------------------------------------------

def _repo_path(repo: str, run_dir: Path, data_dir: Path) -> tuple[Path, str | None]:
    """Where the repo is, and why it is refused (or None). An absolute `repo` (or "~/...") is
    the operator's own choice and stays as written; "data:..." and a relative one must stay
    inside the data dir or the run dir: no absolute part, no "..", no symlink out."""
    if repo.startswith(DATA_PREFIX):
        root, rel, name = data_dir, Path(repo[len(DATA_PREFIX):]), "the data dir"
    else:
        rel = Path(repo).expanduser()
        if rel.is_absolute():
            return rel, None
        root, name = run_dir, "the run dir"
    if rel.is_absolute() or ".." in rel.parts:
        return root, f"refused: {repo!r} must stay inside {name} {root} (no absolute paths, no '..')"
    path = root / rel
    if not inside(root, path):
        return path, (f"refused: {repo!r} escapes {name}: resolves outside {root} "
                      f"(symlink escape to {os.path.realpath(path)})")
    return path, None


def _git(spec: ProofSpec, run_dir: Path, data_dir: Path, started_at: datetime,
         base: dict[str, str]) -> ProofStatus:
    repo, refused = _repo_path(spec.repo or "", run_dir, data_dir)
    if refused is not None:
        return _result(spec, False, refused)
    if not repo.is_dir():
        return _result(spec, False, f"no such directory: {repo}")
    since = started_at.astimezone(timezone.utc)
    argv = ["git", "-C", str(repo), "log", f"--since={since:%Y-%m-%d %H:%M:%S} +0000",
            "--format=%H%x09%ct%x09%s", spec.branch or "--branches", "--"]
    env = {**base, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    who = _as_owner(run_dir, env)
    try:
        done = subprocess.run(argv, capture_output=True, env=env, stdin=subprocess.DEVNULL,
                              timeout=_GIT_TIMEOUT, check=False, umask=JOB_UMASK, **who)
    except FileNotFoundError:
        return _result(spec, False, "cannot run git: it is not installed (no git on PATH)")
    except subprocess.TimeoutExpired:
        return _result(spec, False, f"git log timed out after {span(_GIT_TIMEOUT)}")
    if done.returncode != 0:
        return _result(spec, False, _git_error(done.stderr.decode("utf-8", "replace"), repo, spec.branch))
    floor = int(since.timestamp())
    commits: list[tuple[int, str, str]] = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        sha, _, rest = line.partition("\t")
        stamp, _, subject = rest.partition("\t")
        if stamp.isdigit() and int(stamp) >= floor:
            commits.append((int(stamp), sha, subject))
    where = f"on {spec.branch}" if spec.branch else "on any branch"
    if len(commits) < spec.min_commits:
        found = f"only {len(commits)}" if commits else "no commits"
        return _result(spec, False, f"{found} {where} since the run started {started_at.isoformat()} "
                                    f"(min_commits is {spec.min_commits})")
    _, sha, subject = max(commits)
    n = len(commits)
    return _result(spec, True, f"{n} commit{'s' if n != 1 else ''} {where} since the run started; "
                               f"newest {sha[:10]}: {subject}",
                   [f">= {spec.min_commits} commit{'s' if spec.min_commits != 1 else ''} during the run",
                    f"newest: {subject}"])


def _git_error(stderr: str, repo: Path, branch: str | None) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = "\n".join(lines)
    if "not a git repository" in text:
        return f"not a git repository: {repo}"
    if branch and any(s in text for s in ("bad revision", "unknown revision", "ambiguous argument")):
        return f"no branch {branch!r} in {repo}"
    return f"git log failed: {lines[-1] if lines else 'no error output'}"
