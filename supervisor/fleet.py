"""The daemon's part in a fleet (a shared store only): report this host, watch the others.

Every `[fleet] report_every` the FleetWatch writes this host's row (its jobs, their states and
heartbeat times, its health), reads every host's row, raises the stale-host alert for a host
that has not reported for `host_stale_after` (once fleet-wide: the daemon that wins the claim
raises it), and reads the latest run of each job a local job waits for on another host
(`after = ["job@host"]`). Nothing here blocks supervision: a store that cannot be reached is
reported in status.json (`fleet.error`) and tried again at the next report.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from policies.triggers import DepRun
from status.models import FleetStatus

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)


class FleetWatch:
    """Owned by the daemon when `[store] url` is set."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._status = FleetStatus()
        self._remote: dict[tuple[str, str], DepRun | None] = {}

    def status(self) -> FleetStatus:
        """The `fleet` section of status.json."""
        return self._status

    def remote_dep(self, job: str, host: str) -> DepRun | None:
        """The latest run of `job` on `host` as last read from the shared history (None: none
        known yet)."""
        return self._remote.get((job, host))

    async def serve(self) -> None:
        """Report and watch until cancelled."""
        raise NotImplementedError  # filled in by the fleet work (issue 12)

    async def stopped(self, *, leaving: bool) -> None:
        """The daemon is stopping: the last report says so (a stopped host is not stale)."""
        return None
