"""Tables, ratios and the target checks of the peer comparison (Markdown for stdout and
docs/PERFORMANCE.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ORDER = {"proofwatch": 0, "supervisord": 1, "monit": 2}

TITLES = [
    ("spawn", "1. Spawn: start until all N children are running"),
    ("crash", "2. Crash: SIGKILL a child; noticed, and replacement running (kills alternate proofwatch / "
              "supervisord)"),
    ("hang", "3. Hang: the child stays alive but stops making progress (stall_after = 5 s)"),
    ("steady", "4. Steady state: the supervisor's own CPU and RSS"),
    ("ingest", "5. Heartbeat ingest: every job heartbeating at 10 Hz (proofwatch only)"),
    ("status", "6. Status write cost (proofwatch only)"),
]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "ms":
        return f"{value:.0f} ms" if abs(value) >= 100 else f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "%":
        return f"{value:.2f} %"
    if unit in ("MB", "KB"):
        return f"{value:.1f} {unit}"
    if unit == "/s":
        return f"{value:.1f} /s"
    return f"{value:g}"


def _pw(records: Sequence[dict[str, Any]], key: str, n: int) -> dict[str, Any] | None:
    return next((r for r in records if r["supervisor"] == "proofwatch" and r["key"] == key
                 and r["n_jobs"] == n and not r.get("unsupported")), None)


def ratio(records: Sequence[dict[str, Any]], rec: dict[str, Any]) -> str:
    """Peer median / proofwatch median for the same key and N (> 1: proofwatch is lower)."""
    if rec["supervisor"] == "proofwatch" or rec.get("unsupported"):
        return ""
    key = rec["key"]
    pw = _pw(records, key, rec["n_jobs"])
    a, b = rec["summary"]["median"], pw["summary"]["median"] if pw else None
    if a is None or b is None or b <= 0:
        return ""
    return f"{a / b:.1f}×" if a / b < 100 else f"{a / b:.0f}×"


def table(records: Sequence[dict[str, Any]], workload: str) -> str:
    rows = [r for r in records if r["workload"] == workload]
    rows.sort(key=lambda r: (r["n_jobs"], ORDER.get(r["supervisor"], 9)))
    p99 = workload == "hang"
    head = "| supervisor | N | measurement | n | median | min | max |" + (" p99 |" if p99 else "") + " ÷ proofwatch |"
    lines = [head, "|---|---:|---|---:|---:|---:|---:|" + ("---:|" if p99 else "") + "---:|"]
    for r in rows:
        s, u = r["summary"], r["unit"]
        if r.get("unsupported"):
            cells = [r["supervisor"], str(r["n_jobs"]), f"**cannot detect it**: {r['unsupported']}", "–", "–", "–", "–"]
            cells += ["–"] if p99 else []
            cells += [""]
        else:
            meas = r["measurement"]
            if r.get("missing"):
                meas += f" (**{r['missing']} of {r['n_jobs']} never flagged**)"
            top = fmt(s["max"], u)
            tail = fmt(s["p99"], u)
            if r.get("missing") and r.get("censored_ms"):  # unflagged ones are later than the wait
                top = f"> {fmt(r['censored_ms'], u)}"
                if r["missing"] >= 0.01 * r["n_jobs"]:
                    tail = top
            cells = [r["supervisor"], str(r["n_jobs"]), meas, str(s["n"]), fmt(s["median"], u), fmt(s["min"], u), top]
            cells += [tail] if p99 else []
            cells += [ratio(records, r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    target: str
    ok: bool | None  # None: not measured in this run
    measured: str


def _get(records: Sequence[dict[str, Any]], sup: str, key: str, n: int) -> dict[str, Any] | None:
    return next((r for r in records if r["supervisor"] == sup and r["key"] == key and r["n_jobs"] == n
                 and not r.get("unsupported") and r["summary"]["n"]), None)


def checks(records: Sequence[dict[str, Any]]) -> list[Check]:
    """The issue's targets for proofwatch, judged on this run's numbers."""
    sizes = sorted({r["n_jobs"] for r in records})
    out: list[Check] = []

    def each(label: str, key: str, stat: str, limit: float, unit: str, only: Sequence[int] | None = None,
             sup: str = "proofwatch") -> None:
        for n in (only if only is not None else sizes):
            r = _get(records, sup, key, n) or next(
                (x for x in records if x["supervisor"] == sup and x["key"] == key and x["n_jobs"] == n
                 and x.get("missing")), None)  # nothing flagged at all: a failure, not "not measured"
            if r is None:
                if only is not None:
                    out.append(Check(f"{label} (N = {n})", None, "not measured"))
                continue
            v = r["summary"][stat]
            ok = v is not None and v <= limit and not r.get("missing")
            extra = f", {r['missing']} never flagged" if r.get("missing") else ""
            out.append(Check(f"{label} (N = {n})", ok, f"{stat} {fmt(v, unit)}{extra}"))

    each("crash noticed within 50 ms, median", "crash.noticed", "median", 50, "ms")
    each("first restart running within 100 ms of the death, every kill (max)", "crash.running", "max", 100, "ms")
    for n in sizes:
        pw, sd = _get(records, "proofwatch", "crash.running", n), _get(records, "supervisord", "crash.running", n)
        if pw and sd:
            r = sd["summary"]["median"] / pw["summary"]["median"]
            out.append(Check(f"restart at least 5× faster than supervisord's median, same run (N = {n})", r >= 5,
                             f"supervisord {fmt(sd['summary']['median'], 'ms')} / proofwatch "
                             f"{fmt(pw['summary']['median'], 'ms')} = {r:.1f}×"))
    each("stall flagged within 1 s past its deadline, p99", "hang.e2e", "p99", 1000, "ms", only=[1000])
    each("steady state, 200 jobs heartbeating once a second: CPU under 3 % of one core", "steady.cpu.hb", "median",
         3, "%", only=[200])
    each("steady state, 200 jobs without heartbeats: CPU under 0.5 % of one core", "steady.cpu.idle", "median",
         0.5, "%", only=[200])
    each("daemon RSS under 50 MB, 200 jobs heartbeating (max over the window)", "steady.rss.hb", "max", 50, "MB",
         only=[200])
    each("daemon RSS under 50 MB, 200 jobs without heartbeats (max over the window)", "steady.rss.idle", "max", 50,
         "MB", only=[200])
    each("spawn 200 jobs in under 1 s", "spawn.all", "median", 1.0, "s", only=[200])
    each("spawn 1,000 jobs in under 5 s", "spawn.all", "median", 5.0, "s", only=[1000])
    each("no false stall under the 10 Hz heartbeat load", "ingest.false_stalls", "max", 0, "")
    return out


def checks_md(cs: Sequence[Check]) -> str:
    lines = ["| target | result | measured |", "|---|---|---|"]
    for c in cs:
        verdict = "not measured" if c.ok is None else ("**pass**" if c.ok else "**FAIL**")
        lines.append(f"| {c.target} | {verdict} | {c.measured} |")
    return "\n".join(lines)


def section(*, command: str, facts: dict[str, Any], versions: dict[str, str], records: Sequence[dict[str, Any]],
            notes: Sequence[str], workload_notes: dict[str, list[str]], wall_s: float) -> str:
    mem = f", {facts['memory_gib']} GiB RAM" if facts.get("memory_gib") else ""
    out = [
        "## Results: `compare`",
        "",
        f"Produced by `{command}` (whole run: {wall_s / 60:.1f} min) on {facts['date']}.",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}){mem}; {facts['kernel']}; "
        f"{facts['implementation']} {facts['python']}. proofwatch {facts['proofwatch']} (commit {facts['commit']}); "
        f"supervisord {versions.get('supervisord', '?')} (PyPI, own venv); Monit {versions.get('monit', '?')} "
        "(Debian)." + (f" Load average (1 min) just before the run: {facts['load_before']}."
                       if "load_before" in facts else ""),
        "",
        "“÷ proofwatch” is the peer's median divided by proofwatch's for the same N (above 1: proofwatch is "
        "lower, i.e. faster or cheaper).",
        "",
    ]
    present = {r["workload"] for r in records}
    for wl, title in TITLES:
        if wl not in present:
            continue
        out += [f"### {title}", "", table(records, wl), ""]
        for note in workload_notes.get(wl, []):
            out.append(f"- {note}")
        if workload_notes.get(wl):
            out.append("")
    out += ["### Targets", "", checks_md(checks(records)), ""]
    if notes:
        out += ["### Notes from this run", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)
