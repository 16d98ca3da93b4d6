"""`proofwatch verify`: re-check a finished run's recorded artifacts against their sha256,
so nobody can quietly swap or delete the work after it was accepted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from status.rows import RunRow
from supervisor.proofs import DATA_PREFIX, sha256_of



@dataclass(frozen=True)
class Audit:
    """One recorded artifact, checked again."""

    path: str
    verdict: str  # ok | changed | deleted | unrecorded
    detail: str


def find_run(history: Any, job: str, run_id: str | None) -> RunRow | None:
    """The job's newest run, or the one whose id ends with / equals `run_id`."""
    for row in history.runs(job=job, limit=1000):
        if run_id is None or row.run_id == run_id or row.run_id.endswith(run_id):
            return row
    return None


def resolve(path: str, run_dir: Path, data_dir: Path) -> Path:
    """Where a recorded proof path lives."""
    if path.startswith(DATA_PREFIX):
        return data_dir / path[len(DATA_PREFIX):]
    return run_dir / path


def audit(proofs: Sequence[dict[str, Any]], run_dir: Path, data_dir: Path) -> list[Audit]:
    """Compare each recorded, verified file artifact with what is on disk now."""
    out: list[Audit] = []
    for p in proofs:
        recorded = p.get("sha256")
        if not p.get("ok") or not recorded:
            continue  # failed proofs and non-file proofs (command, http, git) have no content hash
        where = resolve(p["path"], run_dir, data_dir)
        try:
            now = sha256_of(where)
        except FileNotFoundError:
            out.append(Audit(p["path"], "deleted", f"{where} no longer exists"))
            continue
        except OSError as exc:
            out.append(Audit(p["path"], "deleted", f"{where}: {exc.strerror}"))
            continue
        if now != recorded:
            out.append(Audit(p["path"], "changed", f"sha256 was {recorded[:16]}…, now {now[:16]}…"))
        else:
            out.append(Audit(p["path"], "ok", f"sha256 {now[:16]}… unchanged"))
    return out
