"""data/models/: the model registry. Promotion replaces `registry.json` atomically; nothing is
ever lost by it.

    models/registry.json            {"schema", "updated_at", "current": entry | null,
                                     "archive": [entry, ...], "candidates": [entry, ...],
                                     "history": [{"id", "run_id", "at", "promoted", "verdict"}]}
    models/<id>/                    the current model: model.joblib, metrics.json
    models/archive/<id>/            every model that was current before (never deleted)
    models/candidates/<id>/         candidates kept but not promoted (the newest --keep-candidates)

Every entry's `path` is relative to models/. Order of a promotion: the new model's directory
is written (temp dir + rename), then registry.json is replaced (temp + fsync + rename: readers
see the old registry or the new one), then the old model's directory is moved under archive/.
A crash after the registry write leaves that move undone; the next run finishes it. Runs
take an exclusive lock on models/.lock, so two retrains never interleave their updates.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workers.atomic import fsync_dir, write_atomic
from workers.retrain.errors import RegistryError

log = logging.getLogger(__name__)

SCHEMA = "proofwatch.retrain.registry/1"
HISTORY_MAX = 500


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Registry:
    """The registry under one models directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "registry.json"

    def read(self) -> dict[str, Any]:
        """The registry document (an empty one when there is none yet)."""
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"schema": SCHEMA, "updated_at": None, "current": None, "archive": [],
                    "candidates": [], "history": []}
        except (OSError, ValueError) as exc:
            raise RegistryError(self.path, f"cannot read the registry ({exc}); fix it or move it "
                                           "aside (the model directories next to it are intact)") from exc
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise RegistryError(self.path, f"not a retrain registry (schema "
                                           f"{doc.get('schema') if isinstance(doc, dict) else None!r}, "
                                           f"expected {SCHEMA!r})")
        for key in ("archive", "candidates", "history"):
            doc.setdefault(key, [])
        doc.setdefault("current", None)
        return doc

    def current(self) -> dict[str, Any] | None:
        """The promoted model's entry, if any."""
        return self.read()["current"]  # type: ignore[no-any-return]

    def model_path(self, entry: dict[str, Any]) -> Path:
        return self.root / str(entry["path"])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record(self, files: list[Path], entry: dict[str, Any], *, promoted: bool,
               verdict: str, run_id: str, keep_candidates: int) -> dict[str, Any]:
        """Store the candidate's files and entry: as the current model (the previous one is
        archived) when `promoted`, else among the kept candidates. Returns the entry stored."""
        model_id = str(entry["id"])
        with self._locked():
            doc = self.read()
            self._finish_moves(doc)
            where = model_id if promoted else f"candidates/{model_id}"
            self._copy_dir(files, self.root / where)
            stored = {**entry, "path": f"{where}/model.joblib", "stored_at": now_iso()}
            old = doc["current"] if promoted else None
            pruned: list[dict[str, Any]] = []
            if promoted:
                if old is not None:
                    old = {**old, "path": f"archive/{old['id']}/model.joblib", "archived_at": now_iso(),
                           "replaced_by": model_id}
                    doc["archive"].insert(0, old)
                doc["current"] = stored
            else:
                doc["candidates"].insert(0, stored)
                pruned = doc["candidates"][keep_candidates:]
                del doc["candidates"][keep_candidates:]
            doc["history"].insert(0, {"id": model_id, "run_id": run_id, "at": now_iso(),
                                      "promoted": promoted, "verdict": verdict})
            del doc["history"][HISTORY_MAX:]
            doc["updated_at"] = now_iso()
            self._write(doc)
            if old is not None:
                self._move(self.root / str(old["id"]), self.root / "archive" / str(old["id"]))
            for gone in pruned:  # only candidates that never were current
                shutil.rmtree(self.root / "candidates" / str(gone["id"]), ignore_errors=True)
        return stored

    def _finish_moves(self, doc: dict[str, Any]) -> None:
        """Complete archive moves a crash interrupted (registry written, directory not moved)."""
        for entry in doc["archive"]:
            target = self.root / "archive" / str(entry["id"])
            source = self.root / str(entry["id"])
            if not target.exists() and source.is_dir():
                log.warning("finishing the archive of %s (interrupted by a crash)", entry["id"])
                self._move(source, target)

    def _copy_dir(self, files: list[Path], dest: Path) -> None:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for src in files:
                shutil.copyfile(src, tmp / src.name)
                with open(tmp / src.name, "rb") as f:
                    os.fsync(f.fileno())
            if dest.exists():  # a rerun of the same id: keep the older copy aside, never delete
                self._move(dest, dest.with_name(f"{dest.name}.replaced-{os.getpid()}"))
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RegistryError(dest, f"cannot store the model: {exc.strerror or exc}") from exc

    def _move(self, source: Path, target: Path) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            fsync_dir(target.parent)
        except OSError as exc:
            raise RegistryError(source, f"cannot move to {target}: {exc.strerror or exc}") from exc

    def _write(self, doc: dict[str, Any]) -> None:
        try:
            write_atomic(self.path, json.dumps(doc, indent=1).encode())
        except OSError as exc:
            raise RegistryError(self.path, f"cannot write: {exc.strerror or exc}") from exc
