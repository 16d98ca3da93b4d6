"""`proofwatch logs`: print (and follow) a run's output, across rotations and new runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console

from supervisor.config import Config
from supervisor.logs import tail


def latest_run_dir(cfg: Config, job: str, run_id: str | None) -> Path | None:
    """The directory of the given run, or of the job's newest run."""
    base = cfg.runs_dir / job
    if run_id:
        matches = sorted(p for p in base.glob(f"*{run_id}*") if p.is_dir()) if base.is_dir() else []
        return matches[-1] if matches else None
    if not base.is_dir():
        return None
    runs = sorted(p for p in base.iterdir() if p.is_dir())
    return runs[-1] if runs else None


def follow_run(
    cfg: Config, job: str, run_dir: Path, name: str, lines: int, follow: bool, out: Console
) -> None:
    """Print the last lines; with `follow`, keep printing, switching to newer runs."""
    path = run_dir / name
    out.print(f"==> {path} <==", style="dim", highlight=False)
    for line in tail(path, lines):
        out.print(line, markup=False, highlight=False)
    if not follow:
        return
    pos = path.stat().st_size if path.exists() else 0
    try:
        while True:
            time.sleep(0.25)
            newest = latest_run_dir(cfg, job, None)
            if newest is not None and newest != run_dir:
                run_dir, path, pos = newest, newest / name, 0
                out.print(f"==> {path} (new run) <==", style="dim", highlight=False)
            try:
                size = os.path.getsize(path)
            except FileNotFoundError:
                continue
            if size < pos:  # rotated (copy-truncate)
                pos = 0
            if size > pos:
                with path.open("rb") as f:
                    f.seek(pos)
                    data = f.read(size - pos)
                pos = size
                out.print(data.decode("utf-8", errors="replace"), end="", markup=False, highlight=False)
    except KeyboardInterrupt:
        return
