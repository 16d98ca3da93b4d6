"""Verifying a run's proofs when it ends (the file-level checks every kind shares).

Every proof must resolve inside the run dir or the data dir (no `..`, no symlink escapes), be
fresh (modified after the run started), match at least `min_count` files of at least
`min_bytes`, and is recorded with size and sha256. Kind-specific content checks come with the
proof issue; until then a kind other than "file" is checked at the file level only.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from status.models import ProofStatus
from supervisor.config import ProofSpec

DATA_PREFIX = "data:"


def _root_and_pattern(path: str, run_dir: Path, data_dir: Path) -> tuple[Path, str]:
    if path.startswith(DATA_PREFIX):
        return data_dir, path[len(DATA_PREFIX):]
    return run_dir, path


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_spec(
    spec: ProofSpec, run_dir: Path, data_dir: Path, started_at: datetime
) -> list[ProofStatus]:
    """Check one declared proof; one ProofStatus per matched file (or one failure)."""
    root, pattern = _root_and_pattern(spec.path, run_dir, data_dir)
    where = f"{spec.path}"
    if os.path.isabs(pattern) or ".." in Path(pattern).parts:
        return [ProofStatus(path=where, kind=spec.kind, ok=False,
                            detail=f"refused: {spec.path!r} must stay inside {root}")]
    # escape the root: only the pattern is a glob (a state_dir like "var[1]" must still match)
    matches = sorted(Path(p) for p in glob.glob(os.path.join(glob.escape(str(root)), pattern), recursive=True))
    results: list[ProofStatus] = []
    fresh_ok = 0
    for m in matches:
        rel = str(m.relative_to(root)) if _inside(root, m) else str(m)
        label = (DATA_PREFIX + rel) if root == data_dir and spec.path.startswith(DATA_PREFIX) else rel
        if not _inside(root, m):
            results.append(ProofStatus(path=label, kind=spec.kind, ok=False,
                                       detail=f"refused: resolves outside {root} (symlink escape)"))
            continue
        if not m.is_file():
            continue
        st = m.stat()
        mtime = datetime.fromtimestamp(st.st_mtime, timezone.utc)
        problem = None
        if mtime < started_at:
            problem = f"stale: modified {mtime.isoformat()} before the run started {started_at.isoformat()}"
        elif st.st_size < spec.min_bytes:
            problem = f"too small: {st.st_size} bytes < min_bytes {spec.min_bytes}"
        ok = problem is None
        fresh_ok += ok
        results.append(ProofStatus(path=label, kind=spec.kind, ok=ok, detail=problem or "ok",
                                   size=st.st_size, sha256=_sha256(m), mtime=mtime))
    if fresh_ok < spec.min_count:
        found = f"{len(matches)} matched, {fresh_ok} valid" if matches else "nothing matched"
        results.append(ProofStatus(path=where, kind=spec.kind, ok=False,
                                   detail=f"missing: {found}; min_count is {spec.min_count}"))
    return results


def verify_all(
    specs: Sequence[ProofSpec],
    extra: Sequence[str],
    run_dir: Path,
    data_dir: Path,
    started_at: datetime,
) -> list[ProofStatus]:
    """Check the configured proofs and those the worker declared through the sdk."""
    out: list[ProofStatus] = []
    for spec in specs:
        out.extend(verify_spec(spec, run_dir, data_dir, started_at))
    seen = {p.path for p in out}
    for path in extra:
        rel = _relative_declared(path, run_dir, data_dir)
        if rel in seen:
            continue  # already verified as a configured proof
        seen.add(rel)
        out.extend(verify_spec(ProofSpec(path=rel, kind="file"), run_dir, data_dir, started_at))
    return out


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


def failure_summary(proofs: Sequence[ProofStatus]) -> str | None:
    """'unproven: out.json: missing: nothing matched; ...' or None when all passed."""
    bad = [f"{p.path}: {p.detail}" for p in proofs if not p.ok]
    return "unproven: " + "; ".join(bad) if bad else None
