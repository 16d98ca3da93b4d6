"""Rendering the status document for people (rich tables); used by the CLI."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Group
from rich.table import Table
from rich.text import Text

from status.models import JobState, StatusDocument

STATE_STYLE = {
    JobState.RUNNING: "green",
    JobState.SUCCEEDED: "bold green",
    JobState.STARTING: "cyan",
    JobState.VERIFYING: "cyan",
    JobState.PENDING: "dim",
    JobState.STOPPED: "dim",
    JobState.BACKOFF: "yellow",
    JobState.BLOCKED: "bold yellow",
    JobState.STALLED: "bold red",
    JobState.SILENT: "bold red",
    JobState.CRASHED: "bold red",
    JobState.FAILED: "red",
    JobState.FATAL: "bold white on red",
}


def span(seconds: float | None) -> str:
    """'3s', '4m12s', '2h05m', '1d3h', or '-' (how the status views write ages)."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def age(now: datetime, then: datetime | None) -> str:
    """The span from `then` to `now` ('3s', '4m12s', ...), or '-'."""
    return "-" if then is None else span((now - then).total_seconds())


def status_view(doc: StatusDocument, *, daemon_up: bool, now: datetime | None = None) -> Group:
    """The `proofwatch status` screen."""
    now = now or datetime.now(timezone.utc)
    sup = doc.supervisor
    if daemon_up:
        head = Text(f"proofwatch {sup.version} on {sup.host}, pid {sup.pid}, up {age(now, sup.started_at)}", "bold")
    else:
        head = Text(
            f"daemon NOT running — status.json last written {age(now, doc.updated_at)} ago "
            f"(start it with: proofwatch run --config {sup.config})",
            "bold red",
        )
    if doc.host.score is not None:
        host_style = {"HEALTHY": "green", "DEGRADED": "yellow", "WARNING": "bold yellow"}.get(doc.host.label or "", "bold red")
        head = Text.assemble(head, "   host ", (f"{doc.host.label} {doc.host.score}/100", host_style))
    jobs = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("JOB", "STATE", "RUN", "PID", "BEAT", "PROGRESS", "COUNTERS", "MESSAGE"):
        jobs.add_column(col, overflow="fold" if col == "MESSAGE" else "ellipsis", no_wrap=col != "MESSAGE")
    for name, js in doc.jobs.items():
        counters = " ".join(f"{k}={v:g}" for k, v in list(js.progress.items())[:4])
        msg = js.error if js.state in (JobState.FAILED, JobState.CRASHED, JobState.FATAL) and js.error else (
            js.blocker or js.message or js.error or "")
        if js.state == JobState.BACKOFF and js.next_start_at:
            msg = f"restart in {age(js.next_start_at, now) if js.next_start_at > now else '0s'}; {msg}"
        jobs.add_row(
            name,
            Text(js.state.value, STATE_STYLE.get(js.state, "")),
            (js.run_id or "-")[-6:],
            f"{js.pid}*" if js.pid and js.adopted else str(js.pid or "-"),
            age(now, js.last_heartbeat_at),
            age(now, js.last_progress_at),
            counters,
            msg.splitlines()[0] if msg else "",
        )
    parts: list[Text | Table] = [head]
    store = store_line(doc, now)
    if store is not None:
        parts.append(store)
    parts.append(jobs)
    if any(js.adopted and js.pid for js in doc.jobs.values()):
        parts.append(Text("* re-adopted after a supervisor restart: exit status will be unknown, "
                          "judged by heartbeats and proofs", "dim"))
    if doc.alerts:
        al = Table(box=None, pad_edge=False, header_style="bold", title="active alerts", title_justify="left")
        for col in ("SEVERITY", "KEY", "COUNT", "FIRST", "TITLE"):
            al.add_column(col)
        for a in doc.alerts:
            style = "bold red" if a.severity == "critical" else "yellow"
            al.add_row(Text(a.severity.value, style), a.key, str(a.count), age(now, a.first_seen) + " ago", a.title)
        parts.append(al)
    else:
        parts.append(Text("no active alerts", "green"))
    return Group(*parts)


def store_line(doc: StatusDocument, now: datetime) -> Text | None:
    """One line about the history store: only a shared store, or one that cannot be written."""
    st = doc.store
    if st.ok:
        if st.kind == "sqlite":
            return None
        return Text(f"history: {st.kind} {st.target} ok" + (f", {st.queued} row{'' if st.queued == 1 else 's'} queued" if st.queued else ""),
                    "dim")
    since = f" for {age(now, st.failing_since)}" if st.failing_since else ""
    return Text(f"history store {st.kind} {st.target} UNREACHABLE{since}: {st.error or 'unknown error'} — "
                f"{st.queued} row{'' if st.queued == 1 else 's'} queued, written when it is back; supervision and alerts go on",
                "bold yellow")


def health_view(doc: StatusDocument, now: datetime | None = None) -> Group:
    """The `proofwatch health` screen."""
    now = now or datetime.now(timezone.utc)
    host = doc.host
    if host.score is None:
        return Group(Text("no host sample yet (the daemon samples every [health].interval)", "yellow"))
    style = {"HEALTHY": "bold green", "DEGRADED": "yellow", "WARNING": "bold yellow"}.get(host.label or "", "bold red")
    s = host.sample
    head = Text.assemble((f"{host.label} {host.score}/100", style),
                         f"  on {doc.supervisor.host}, sampled {age(now, host.sampled_at)} ago")
    gauges = Table(box=None, pad_edge=False, show_header=False)
    gauges.add_column(style="bold")
    gauges.add_column()
    load = s.get("load") or []
    gauges.add_row("CPU", f"{s.get('cpu_pct', '?')}% of {s.get('cores', '?')} cores"
                   f" ({s.get('expected_cpu_pct', 0)}% expected load)")
    gauges.add_row("load", " ".join(f"{x:.2f}" for x in load) if load else "unavailable")
    gauges.add_row("memory", f"{s.get('mem_pct', '?')}%   swap {s.get('swap_pct', '?')}%")
    for mount, pct in (s.get("disks") or {}).items():
        gauges.add_row(f"disk {mount}", f"{pct}%" if pct != "unavailable" else "unavailable")
    temp = s.get("temp_c")
    gauges.add_row("temperature", f"{temp} C ({s.get('temp_source')})" if temp != "unavailable" else "unavailable")
    for name, check in (s.get("checks") or {}).items():
        gauges.add_row(f"check {name}", f"{check.get('status')}: {check.get('detail', '')}")
    parts: list[Text | Table] = [head, gauges]
    if host.reasons:
        parts.append(Text("reasons:", "bold"))
        parts.extend(Text(f"  - {r}") for r in host.reasons)
    top = Table(box=None, pad_edge=False, header_style="bold", title="top processes by CPU", title_justify="left")
    for col in ("PID", "NAME", "CPU%", "RSS MB", "JOB", "EXPECTED"):
        top.add_column(col)
    for p in s.get("top_cpu") or []:
        top.add_row(str(p["pid"]), p["name"], f"{p['cpu_pct']:.1f}", f"{p['rss'] / 1e6:.0f}",
                    p.get("job") or "-", "yes" if p.get("expected") else "")
    parts.append(top)
    return Group(*parts)
