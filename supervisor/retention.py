"""Keeping the runs directory bounded: old run directories are deleted, newest kept."""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path


def prune_runs(job_dir: Path, keep: int, protect: Collection[str]) -> list[Path]:
    """Delete all but the newest `keep` run directories of a job (never those in `protect`).

    Run ids sort by start time, so name order is age order. Returns what was deleted.
    """
    if keep <= 0 or not job_dir.is_dir():
        return []
    runs = sorted((p for p in job_dir.iterdir() if p.is_dir()), key=lambda p: p.name)
    doomed = [p for p in runs[: max(0, len(runs) - keep)] if p.name not in protect]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed
