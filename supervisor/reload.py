"""Config reload (SIGHUP or `proofwatch reload`): what changed between two good configs."""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.config import Config


@dataclass(frozen=True)
class ReloadPlan:
    """Jobs to add, remove and update; or why the reload is refused."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    refused: str | None = None

    def summary(self) -> str:
        """'added x; removed y; changed z' or 'no job changed'."""
        parts = [f"{label} {', '.join(names)}" for label, names in
                 (("added", self.added), ("removed", self.removed), ("changed", self.changed)) if names]
        return "; ".join(parts) or "no job changed"


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Compare two configs; paths the daemon holds open cannot change without a restart."""
    held = [
        key for key, a, b in (
            ("supervisor.state_dir", old.state_dir, new.state_dir),
            ("supervisor.data_dir", old.data_dir, new.data_dir),
            ("supervisor.status_file", old.status_file, new.status_file),
        ) if a != b
    ]
    if held:
        return ReloadPlan((), (), (), f"{', '.join(held)} changed: restart the daemon to apply it")
    added = tuple(n for n in new.jobs if n not in old.jobs)
    removed = tuple(n for n in old.jobs if n not in new.jobs)
    changed = tuple(n for n in new.jobs if n in old.jobs and new.jobs[n] != old.jobs[n])
    return ReloadPlan(added, removed, changed)
