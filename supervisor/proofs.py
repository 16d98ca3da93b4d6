"""Verifying a run's proofs when it ends.

File proofs (file, text/log, json, jsonl, png, jpeg, parquet, sqlite) must resolve inside the
run dir or the data dir (no `..`, no absolute paths elsewhere, no symlink escapes: refused and
never read; judged again on the file actually opened, so a link swapped in meanwhile is caught,
and only regular files are read, so a FIFO cannot hang the verifier), be fresh (modified after the run started), not empty and at least `min_bytes`,
pass their kind's content checks (`_proof_kinds`), match at least `min_count` such files, and,
with `max_age`, the newest match must be younger than that when checked. Each matched file is
recorded with size, sha256, mtime and the checks it passed. Command, http and git proofs
(`_proof_live`) yield one record each. Every failing proof is reported, never just the first.
The verdicts themselves are pure functions in `policies.proofs`.

Globs follow `glob.glob(..., recursive=True)` (a leading-dot name is matched only by a pattern
starting with "."), except that `**` never descends into a symlinked directory (a job's
`a -> .` would make it loop forever) and at most `MAX_GLOB_ENTRIES` directory entries are
examined per proof (more fails the proof instead of pinning the verifier). Every text a proof
produces (paths, labels, details) is valid UTF-8: a file name's undecodable bytes read `\xff`.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Union

from policies.proofs import (age_check, age_problem, count_check, count_problem, fresh_problem,
                             size_check, size_problem)
from status.models import ProofStatus
from supervisor._proof_kinds import ProofFailed, check_content
from supervisor._proof_live import verify_live
from supervisor.config import FILE_PROOF_KINDS, ProofSpec
from supervisor.confine import Escape, inside, open_inside, printable

__all__ = ["DATA_PREFIX", "MAX_GLOB_ENTRIES", "DeclaredProof", "failure_summary", "verify_all", "verify_spec"]

log = logging.getLogger(__name__)

DATA_PREFIX = "data:"
MAX_GLOB_ENTRIES = 100_000  # directory entries one proof's glob may examine before it fails

# What a worker declares through the sdk: a path, or (path, kind) as in `run.proof(path, kind="png")`.
DeclaredProof = Union[str, "os.PathLike[str]", Sequence[str], Mapping[str, str]]


def verify_all(
    specs: Sequence[ProofSpec],
    extra: Sequence[DeclaredProof],
    run_dir: Path,
    data_dir: Path,
    started_at: datetime,
    *,
    now: datetime | None = None,
    config_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[ProofStatus]:
    """Check the configured proofs and those the worker declared through the sdk.

    `config_dir` anchors relative JSON Schema paths (pass the config file's directory);
    `now` is when max_age is judged (default: the wall clock); `environ` is what verifier
    programs start from (pass the job's environment, `supervisor.jobenv.job_environment`).
    """
    started_at = _aware(started_at)
    now = _aware(now) if now is not None else datetime.now(timezone.utc)
    out: list[ProofStatus] = []
    for spec in specs:
        out.extend(_guarded(spec, spec.label, run_dir, data_dir, started_at, now, config_dir, environ))
    seen = {p.path for p in out}  # printable labels (see _printable)
    for item in extra:
        declared = _declared(item)
        if isinstance(declared, ProofStatus):
            out.append(declared)
            continue
        path, kind = declared
        rel = _relative_declared(path, run_dir, data_dir)  # raw: it is opened, so never made printable
        if printable(rel) in seen:
            continue  # already verified as a configured proof (the configured kind wins)
        seen.add(printable(rel))
        if kind not in FILE_PROOF_KINDS:
            out.append(ProofStatus(path=rel, kind=kind, ok=False,
                                   detail=f"refused: a worker may declare only file proofs "
                                          f"(kind {kind!r} is not one of {', '.join(sorted(FILE_PROOF_KINDS))})"))
            continue
        pattern = glob.escape(rel) if glob.has_magic(rel) else rel  # a declared path is literal
        # validated with a stand-in path: pydantic refuses a lone surrogate (a non-UTF-8 file
        # name as Python decodes it), yet that raw name is what must be opened
        spec = ProofSpec.model_validate({"path": "declared", "kind": kind}).model_copy(update={"path": pattern})
        out.extend(_guarded(spec, rel, run_dir, data_dir, started_at, now, config_dir, environ))
    return [_printable(p) for p in out]


def verify_spec(
    spec: ProofSpec,
    run_dir: Path,
    data_dir: Path,
    started_at: datetime,
    *,
    now: datetime | None = None,
    config_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[ProofStatus]:
    """Check one proof: one ProofStatus per matched file (plus one per unmet count or age)."""
    started_at = _aware(started_at)
    now = _aware(now) if now is not None else datetime.now(timezone.utc)
    if not spec.is_file_kind:
        return [_printable(verify_live(spec, run_dir, data_dir, started_at, environ))]
    return [_printable(p) for p in _verify_files(spec, run_dir, data_dir, started_at, now, config_dir)]


def failure_summary(proofs: Sequence[ProofStatus]) -> str | None:
    """'unproven: out.json: missing: nothing matched; ...' or None when all passed."""
    bad = [f"{p.path}: {p.detail.splitlines()[0] if p.detail else 'failed'}" for p in proofs if not p.ok]
    return "unproven: " + "; ".join(bad) if bad else None


def _guarded(spec: ProofSpec, label: str, run_dir: Path, data_dir: Path, started_at: datetime,
             now: datetime, config_dir: Path | None, environ: Mapping[str, str] | None) -> list[ProofStatus]:
    """verify_spec, but a verifier bug fails this proof only, never the others."""
    try:
        return verify_spec(spec, run_dir, data_dir, started_at, now=now, config_dir=config_dir,
                           environ=environ)
    except Exception as exc:
        log.exception("proof %s (%s) crashed while being verified", label, spec.kind)
        return [ProofStatus(path=label, kind=spec.kind, ok=False,
                            detail=f"verification crashed: {type(exc).__name__}: {exc}")]


def _printable(proof: ProofStatus) -> ProofStatus:
    """`proof` with every text valid UTF-8 (in place): a lone surrogate (a file name's byte that
    is not UTF-8, a worker's declared path, a verifier's output) would make status.json
    unserialisable and the history refuse the run's error."""
    proof.path, proof.kind, proof.detail = printable(proof.path), printable(proof.kind), printable(proof.detail)
    proof.checks = [printable(c) for c in proof.checks]
    return proof


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.astimezone()  # naive means local time


def _root_and_pattern(path: str, run_dir: Path, data_dir: Path) -> tuple[Path, str, str]:
    if path.startswith(DATA_PREFIX):
        return data_dir, path[len(DATA_PREFIX):], DATA_PREFIX
    return run_dir, path, ""


def _escaped(spec: ProofSpec, match: Path, root: Path, prefix: str, real: str) -> ProofStatus:
    where = "the data dir" if prefix else "the run dir"
    return ProofStatus(path=printable(str(match)), kind=spec.kind, ok=False,
                       detail=f"refused: escapes {where}: resolves outside {printable(str(root))} "
                              f"(symlink escape to {printable(real)})")


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_fd(fd: int) -> str:
    h, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, 1 << 20, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


def _fd_path(fd: int, fallback: Path) -> Path:
    """A path that reopens exactly the file behind `fd` (whatever is at `fallback` by now)."""
    via = Path(f"/proc/self/fd/{fd}")
    return via if via.exists() else fallback


class _TooMany(Exception):
    """More than MAX_GLOB_ENTRIES directory entries examined (not an OSError: never swallowed)."""


class _Glob:
    """`glob.glob(pattern, root_dir=root, recursive=True)`, except that `**` never descends
    into a symlinked directory and at most `limit` entries are examined (then _TooMany).

    glob.glob (3.11) recurses into directory links, so a job's `a -> .` and `b -> .` make
    `**` branch forever; here `**` matches zero or more real directories, as pathlib's does
    (a trailing `**` still yields a link itself, which is then judged like any match).
    Everything else is glob.glob's, kept so proof patterns mean what they meant: literal
    parts checked with lexists/isdir, `*`/`?`/`[..]` not matching a leading dot unless the
    pattern part starts with one, other parts following links one level (`out/*.json`
    through a link `out` is refused later as an escape, not silently skipped), a trailing
    `**` yielding files and directories, results relative to the root.
    """

    def __init__(self, root: str, limit: int | None = None) -> None:
        self.root = root
        self.left = MAX_GLOB_ENTRIES if limit is None else limit

    def iglob(self, pattern: str, dironly: bool = False) -> Iterator[str]:
        dirname, basename = os.path.split(pattern)
        if not glob.has_magic(pattern):
            if basename:
                if os.path.lexists(self._abs(pattern)):
                    yield pattern
            elif os.path.isdir(self._abs(dirname)):  # "dir/" matches a directory only
                yield pattern
            return
        dirs: Iterable[str] = self.iglob(dirname, True) if dirname and glob.has_magic(dirname) else [dirname]
        for d in dirs:
            if basename == "**":
                names: Iterable[str] = self._recursive(d, dironly)
            elif glob.has_magic(basename):
                names = self._matching(d, basename, dironly)
            else:
                names = [basename] if os.path.lexists(self._abs(os.path.join(d, basename))) else []
            for name in names:
                yield os.path.join(d, name) if d else name

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _scan(self, rel: str) -> list[os.DirEntry[str]]:
        """The entries of a directory (none when it cannot be listed), counted against the cap."""
        try:
            with os.scandir(self._abs(rel)) as it:
                entries = []
                for entry in it:
                    self.left -= 1
                    if self.left < 0:
                        raise _TooMany
                    entries.append(entry)
                return entries
        except OSError:
            return []

    def _matching(self, rel: str, pattern: str, dironly: bool) -> list[str]:
        names = []
        for entry in self._scan(rel):
            try:
                if dironly and not entry.is_dir():  # follows a link, as glob.glob: one level only
                    continue
            except OSError:
                continue
            if entry.name.startswith(".") and not pattern.startswith("."):
                continue
            names.append(entry.name)
        return fnmatch.filter(names, pattern)

    def _recursive(self, rel: str, dironly: bool) -> Iterator[str]:
        """"" (the directory itself), then every non-hidden name below it (only real
        directories when `dironly`), descending only into real directories, never a link:
        as pathlib's `**` in 3.11 (`entry.is_dir(follow_symlinks=False)`)."""
        yield ""
        stack = [""]
        while stack:  # iterative: a deep tree cannot exhaust the recursion limit
            sub = stack.pop()
            for entry in self._scan(os.path.join(rel, sub) if sub else rel):
                if entry.name.startswith("."):
                    continue
                try:
                    real_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if dironly and not real_dir:
                    continue  # "**/x": x is looked for in real directories only, never through a link
                name = os.path.join(sub, entry.name) if sub else entry.name
                yield name
                if real_dir:
                    stack.append(name)


def _verify_files(spec: ProofSpec, run_dir: Path, data_dir: Path, started_at: datetime,
                  now: datetime, config_dir: Path | None) -> list[ProofStatus]:
    where = spec.path or ""
    root, pattern, prefix = _root_and_pattern(where, run_dir, data_dir)
    if os.path.isabs(pattern) or ".." in Path(pattern).parts:
        return [ProofStatus(path=where, kind=spec.kind, ok=False,
                            detail=f"refused: {where!r} must stay inside {root} (no absolute paths, no '..')")]
    # only the pattern is a glob, never the root (a state_dir like "var[1]" must still match)
    try:
        matches = sorted(root / p for p in _Glob(str(root)).iglob(pattern))
    except _TooMany:
        return [ProofStatus(path=where, kind=spec.kind, ok=False,
                            detail=f"refused: {where!r} examined more than {MAX_GLOB_ENTRIES} entries under "
                                   f"{printable(str(root))} (a huge tree?); use a narrower pattern")]
    results: list[ProofStatus] = []
    newest: datetime | None = None
    is_glob = glob.has_magic(pattern)
    stale = 0
    for match in matches:
        if not inside(root, match):  # refused before it is even opened (a device, say)
            results.append(_escaped(spec, match, root, prefix, os.path.realpath(match)))
            continue
        label = prefix + printable(str(match.relative_to(root)))  # the name may not be UTF-8
        try:  # judged again by the file actually opened: the job may swap links meanwhile
            fd = open_inside(root, match)
        except Escape as exc:
            results.append(_escaped(spec, match, root, prefix, exc.real))
            continue
        except (FileNotFoundError, IsADirectoryError):
            continue  # a directory matched by "**" or a dangling link inside the root
        except OSError as exc:
            results.append(ProofStatus(path=label, kind=spec.kind, ok=False,
                                       detail=f"refused: {(exc.strerror or str(exc)).lower()}"))
            continue
        try:
            result = _verify_file(spec, fd, match, label, started_at, config_dir)
        finally:
            os.close(fd)
        if is_glob and not result.ok and result.detail.startswith("stale"):
            stale += 1  # left over from an earlier run: not this run's work, but not a failure
            continue
        results.append(result)
        if result.mtime is not None:
            newest = result.mtime if newest is None else max(newest, result.mtime)
    passed = [r for r in results if r.ok]
    if (problem := count_problem(len(results), len(passed), spec.min_count)) is not None:
        if stale:
            problem += f" ({stale} older file{'s' if stale != 1 else ''} from before this run ignored)"
        results.append(ProofStatus(path=where, kind=spec.kind, ok=False, detail=problem))
    elif is_glob or spec.min_count > 1:
        for r in passed:
            r.checks.append(count_check(spec.min_count))
    if spec.max_age is not None and newest is not None:
        if (problem := age_problem(newest, now, spec.max_age)) is not None:
            results.append(ProofStatus(path=where, kind=spec.kind, ok=False, detail=problem))
        else:
            for r in passed:
                r.checks.append(age_check(spec.max_age))
    return results


def _verify_file(spec: ProofSpec, fd: int, match: Path, label: str, started_at: datetime,
                 config_dir: Path | None) -> ProofStatus:
    checks: list[str] = []
    path = _fd_path(fd, match)
    try:
        st = os.fstat(fd)
        mtime = datetime.fromtimestamp(st.st_mtime, timezone.utc)
        problem = fresh_problem(mtime, started_at)
        if problem is None:
            checks.append("fresh")
            problem = size_problem(st.st_size, spec.min_bytes)
        if problem is None:
            checks.append(size_check(spec.min_bytes))
            try:
                check_content(spec, path, checks, config_dir=config_dir)
            except ProofFailed as exc:
                problem = exc.detail
        digest = _sha256_fd(fd)
    except OSError as exc:
        return ProofStatus(path=label, kind=spec.kind, ok=False,
                           detail=f"unreadable: {(exc.strerror or str(exc)).lower()}", checks=checks)
    return ProofStatus(path=label, kind=spec.kind, ok=problem is None, detail=problem or "ok",
                       size=st.st_size, sha256=digest, mtime=mtime, checks=checks)


def _declared(item: object) -> tuple[str, str] | ProofStatus:
    """(path, kind) from what the sdk sent, or a failed ProofStatus saying why it is unusable."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item), "file"
    if isinstance(item, Mapping):
        path, kind = item.get("path"), item.get("kind", "file")
    elif isinstance(item, Sequence) and len(item) == 2:
        path, kind = item[0], item[1]
    else:
        path, kind = None, None
    if isinstance(path, (str, os.PathLike)) and os.fspath(path) and isinstance(kind, str):
        return os.fspath(path), kind
    return ProofStatus(path=repr(item)[:80], kind="file", ok=False,
                       detail="refused: a declared proof must be a path or (path, kind)")


def _relative_declared(path: str, run_dir: Path, data_dir: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        return path
    for root, prefix in ((run_dir, ""), (data_dir, DATA_PREFIX)):
        try:
            return prefix + str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return path  # refused by verify_spec as absolute
