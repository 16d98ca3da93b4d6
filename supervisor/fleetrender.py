"""`proofwatch fleet` for people: one block per host (a header line, then its jobs)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from policies.fleet import HostState
from supervisor.fleetview import FleetHost, FleetView
from supervisor.render import span

_HOST_STYLE = {HostState.UP: "bold green", HostState.STALE: "bold white on red", HostState.STOPPED: "dim"}
_JOB_STYLE = {"RUNNING": "green", "SUCCEEDED": "bold green", "STARTING": "cyan", "VERIFYING": "cyan",
              "BACKOFF": "yellow", "BLOCKED": "bold yellow", "STALLED": "bold red", "SILENT": "bold red",
              "CRASHED": "bold red", "FAILED": "red", "FATAL": "bold white on red"}


def host_header(h: FleetHost) -> Text:
    """'emubox  up  seen 3s ago  health healthy (92)  2 alerts'."""
    line = Text()
    line.append(h.host, "bold")
    line.append("  ")
    if h.state == HostState.STALE:
        line.append("STALE", _HOST_STYLE[h.state])
        line.append(f" — no report for {span(h.seen_ago)}", "bold red")
        line.append(f" (alerted by {h.alerted_by})" if h.alerted_by else " (not alerted yet)")
    elif h.state == HostState.STOPPED:
        line.append("stopped", _HOST_STYLE[h.state])
        line.append(f"  daemon stopped {span(h.seen_ago)} ago")
    else:
        line.append("up", _HOST_STYLE[h.state])
        line.append(f"  seen {span(h.seen_ago)} ago")
    health = h.health
    if health.label is not None:
        line.append(f"  health {health.label.lower()}" + (f" ({health.score})" if health.score is not None else ""))
    else:
        line.append("  health unknown", "dim")
    line.append(f"  {h.active_alerts} alert" + ("" if h.active_alerts == 1 else "s"),
                "bold yellow" if h.active_alerts else "dim")
    line.append(f"  v{h.version}" + (f" pid {h.pid}" if h.pid else ""), "dim")
    return line


def jobs_table(h: FleetHost) -> Table:
    """The host's jobs: JOB STATE RUN PID HEARTBEAT MESSAGE."""
    table = Table(box=None, header_style="bold", padding=(0, 1, 0, 0), pad_edge=False)
    for col in ("  JOB", "STATE", "RUN", "PID", "HEARTBEAT", "MESSAGE"):
        table.add_column(col, overflow="fold" if col == "MESSAGE" else "ellipsis")
    for j in h.jobs:
        message = Text(f"[{j.phase}] " if j.phase else "", "dim")
        if j.error:
            message.append(j.error.splitlines()[0] if j.error.strip() else j.error, "red")
        else:
            message.append(j.message or (f"waiting: {j.waiting}" if j.waiting else ""))
        table.add_row(f"  {j.name}", Text(j.state, _JOB_STYLE.get(j.state, "dim") if j.live else "dim"),
                      (j.run_id or "-")[-6:], str(j.pid) if j.pid else "-",
                      span(j.heartbeat_age) + (" ago" if j.heartbeat_age is not None else ""), message)
    return table


def fleet_view(view: FleetView) -> RenderableType:
    """Every host, one block each; a stale host's jobs are marked as its last report."""
    if not view.hosts:
        return Text("no host has reported to the shared store yet (is a daemon with this [store] url running?)")
    parts: list[RenderableType] = []
    for h in view.hosts:
        if parts:
            parts.append(Text(""))
        parts.append(host_header(h))
        if not h.jobs:
            parts.append(Text("  no jobs", "dim"))
            continue
        if h.state != HostState.UP:
            parts.append(Text(f"  jobs as last reported {span(h.seen_ago)} ago (not live):", "yellow"))
        parts.append(jobs_table(h))
    parts.append(Text(""))
    parts.append(Text(f"ages by the store's clock at {view.read_at.astimezone():%H:%M:%S}; "
                      f"a host is stale after {span(view.host_stale_after)} without a report", "dim"))
    return Group(*parts)
