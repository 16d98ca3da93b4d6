"""`python -m bench.fleet_daemons`: 3 real `proofwatch run` daemons × 200 heartbeating jobs,
sharing one PostgreSQL history (the fleet) against each on its own SQLite history (the
single-host default), in one invocation, end to end.

bench/fleet_store.py isolates the store (the real Recorder + History, every beat forced into a
history write). This one is the literal case of issue 12: nothing is synthetic but the work.

- Each configuration starts 3 `proofwatch run` daemons at once, each in its own directory
  (config.toml, var/, data/), `[supervisor] host` = h1/h2/h3, `allow_root = true`,
  `[fleet] report_every = "10s"`. (A) `[store] url` = one PostgreSQL database shared by the
  three; (B) no `[store]`: each its default `var/history.db`. Same workload, back to back.
- Each daemon runs 200 `kind = "service"` jobs, `stall_after = "30s"` (the default is 20m: a
  tighter deadline makes "no false STALLED" mean something). Every job is a real worker, a
  Python script using the SDK: `Run.from_env()`, then `run.beat({"beats": i}, force=True)`
  once a second on a fixed schedule, i.e. the worker's own beat counter in its progress.
- Ramp: from launching the daemons until all 3 × 200 jobs are RUNNING in their status.json.
  Then SETTLE (12) seconds, then the steady window (`--seconds`, 60 by default).
- Measured over the window: heartbeats the daemons took in, per second (the delta of the
  workers' `beats` counters as each daemon's status.json shows them, over its own
  `updated_at`); the newest heartbeat's age per job (status.json, sampled every second);
  each daemon's CPU (psutil user+system, % of one core) and max RSS; the PostgreSQL server's
  CPU (its processes) and the 600 workers' CPU; the machine's CPU busy %.
- What reached the store: rows per table before/after (both stores), run rows whose
  `last_heartbeat_at` changed in the store during the window (a heartbeat alone writes
  none), and for PostgreSQL pg_stat_database's xact_commit / tup_inserted / tup_updated
  deltas for the database (this bench's own 1 snapshot transaction subtracted).
- Correctness: transitions to STALLED / SILENT (and any other non-RUNNING transition after
  the ramp) from the history, which must be 0; the `store` section of each status.json
  (ok, queued) at the end; the fleet reports' freshness at the end (PostgreSQL:
  `now() - hosts.last_seen`, and each daemon's own `fleet` section).
- Stop: SIGTERM to the 3 daemons (they stop their jobs), timed; then anything of ours left is
  SIGKILLed by process group, and the PostgreSQL server is stopped and deleted, on failure too.

PostgreSQL runs with its durable defaults (fsync, synchronous_commit, full_page_writes on:
tests/fleet/pg.py's PostgresServer(durable=True)), on loopback, in a throwaway data dir;
SQLite as the daemon opens it (WAL, synchronous=NORMAL). Everything (3 daemons, 600 workers,
the PostgreSQL server, this harness) shares the machine. Writes bench/results/fleet_daemons.json
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bench._daemon import proofwatch_command

RESULTS = Path(__file__).resolve().parent / "results" / "fleet_daemons.json"
ROOT = Path(__file__).resolve().parent.parent
DAEMONS = 3
JOBS = 200
RATE = 1.0  # heartbeats per second per job
REPORT_EVERY = "10s"
STALL_AFTER = "30s"
SETTLE = 12.0  # seconds between "all RUNNING" and the window (> PostgreSQL 15's 10-s idle stats flush)
RAMP_TIMEOUT = 150.0
STOP_TIMEOUT = 40.0
SAMPLE = 1.0  # seconds between two samples in the window
BAD_STATES = ("STALLED", "SILENT")

WORKER = """
import sys, time
sys.path.insert(0, {root!r})
from workers.sdk import Run
run = Run.from_env()
period = 1.0 / {rate!r}
i = 0
due = time.monotonic()
while True:
    i += 1
    run.beat({{"beats": i}}, force=True)
    due += period
    wait = due - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    else:  # late (a busy machine): beat again now, do not burst to catch up
        due = time.monotonic()
"""


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


# ---- one daemon ----------------------------------------------------------------------------

class Daemon:
    """One `proofwatch run` in its own directory."""

    def __init__(self, root: Path, host: str, jobs: int, worker: Path, store_url: str | None) -> None:
        self.host = host
        self.dir = root / host
        self.dir.mkdir(parents=True)
        self.status_path = self.dir / "var" / "status.json"
        self.log_path = self.dir / "daemon.log"
        store = f'[store]\nurl = "{store_url}"\n\n' if store_url else ""
        head = (f'[supervisor]\nstate_dir = "var"\ndata_dir = "data"\nhost = "{host}"\nallow_root = true\n\n'
                f'{store}[fleet]\nreport_every = "{REPORT_EVERY}"\n\n')
        job = (f'kind = "service"\ncommand = [{json.dumps(sys.executable)}, {json.dumps(str(worker))}]\n'
               f'stall_after = "{STALL_AFTER}"\n')
        (self.dir / "config.toml").write_text(head + "".join(f"[jobs.j{i:03d}]\n{job}\n" for i in range(jobs)))
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.rss_max = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*proofwatch_command(), "run", "--config", str(self.dir / "config.toml")],
                                         cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any] | None:
        """Its status.json (None before this daemon's first one)."""
        try:
            doc: dict[str, Any] = json.loads(self.status_path.read_bytes())
        except (OSError, ValueError):
            return None
        if self.proc is None or doc.get("supervisor", {}).get("pid") != self.proc.pid:
            return None
        return doc

    def cpu(self) -> float:
        assert self.ps is not None
        t = self.ps.cpu_times()
        return t.user + t.system

    def sample_rss(self) -> None:
        assert self.ps is not None
        self.rss_max = max(self.rss_max, self.ps.memory_info().rss)

    def jobs(self) -> list[psutil.Process]:
        try:
            return self.ps.children() if self.ps is not None else []
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def log_counts(self) -> dict[str, int]:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        return {lvl: sum(1 for ln in lines if f" {lvl} " in ln) for lvl in ("WARNING", "ERROR", "CRITICAL")}


# ---- the stores ----------------------------------------------------------------------------

class Store:
    """Read-only counters of where the history goes (one PostgreSQL db, or 3 SQLite files)."""

    def __init__(self, pg_url: str | None, sqlite_paths: list[Path]) -> None:
        self.pg_url = pg_url.replace("postgresql+psycopg://", "postgresql://") if pg_url else None
        self.paths = sqlite_paths

    def _pg(self) -> Any:
        import psycopg

        return psycopg.connect(self.pg_url)

    def snapshot(self) -> dict[str, Any]:
        """Rows per table, run_id -> last_heartbeat_at, hosts, and (PostgreSQL) pg_stat_database."""
        if self.pg_url:
            with self._pg() as conn:  # one transaction: the snapshot costs the counters 1 xact
                stat = conn.execute(
                    "select xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
                    "from pg_stat_database where datname = current_database()").fetchone()
                tables = [t for (t,) in conn.execute(
                    "select tablename from pg_tables where schemaname = 'public' order by 1").fetchall()]
                rows = {t: conn.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}
                beats = {r: str(b) for r, b in conn.execute("select run_id, last_heartbeat_at from runs")} \
                    if "runs" in tables else {}
                hosts = {h: float(a) for h, a in conn.execute(
                    "select host, extract(epoch from now() - last_seen) from hosts")} if "hosts" in tables else {}
                per_table = {r[0]: dict(zip(("ins", "upd", "hot_upd", "del", "seq_scan", "idx_scan"),
                                            (int(x or 0) for x in r[1:])))
                             for r in conn.execute(
                                 "select relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, seq_scan, idx_scan "
                                 "from pg_stat_user_tables").fetchall()}
            keys = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted")
            return {"t": time.monotonic(), "rows": rows, "beats": beats, "hosts": hosts,
                    "pg": dict(zip(keys, map(int, stat))), "pg_tables": per_table}
        rows: dict[str, int] = {}
        beats: dict[str, str] = {}
        for path in self.paths:
            if not path.exists():
                continue
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                for (t,) in db.execute("select name from sqlite_master where type = 'table' "
                                       "and name not like 'sqlite_%'").fetchall():
                    rows[t] = rows.get(t, 0) + db.execute(f'select count(*) from "{t}"').fetchone()[0]
                beats.update({r: str(b) for r, b in db.execute("select run_id, last_heartbeat_at from runs")})
            finally:
                db.close()
        return {"t": time.monotonic(), "rows": rows, "beats": beats, "hosts": {}}

    def bad_transitions(self) -> dict[str, Any]:
        """Transition events by target state (STALLED, SILENT and the rest) over the whole run."""
        sql = ("select to_state, count(*) from events where kind = 'transition' and to_state is not null "
               "group by to_state")
        out: dict[str, int] = {}
        if self.pg_url:
            with self._pg() as conn:
                out = {s: int(n) for s, n in conn.execute(sql).fetchall()}
        else:
            for path in self.paths:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
                try:
                    for s, n in db.execute(sql).fetchall():
                        out[s] = out.get(s, 0) + n
                finally:
                    db.close()
        return out


def _pg_server_cpu(server: Any) -> dict[int, float]:
    """pid -> CPU seconds of the PostgreSQL server's processes (postmaster and children)."""
    if server is None:
        return {}
    try:
        pid = int((server.data / "postmaster.pid").read_text().split()[0])
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except (OSError, ValueError, psutil.Error):
        return {}
    return _procs_cpu(procs)


def _procs_cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two pid -> seconds maps (a pid new in `after` counts whole)."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


# ---- one configuration ---------------------------------------------------------------------

def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _running(docs: list[dict[str, Any] | None]) -> list[int]:
    return [sum(1 for j in d["jobs"].values() if j["state"] == "RUNNING") if d else 0 for d in docs]


def _beats(doc: dict[str, Any]) -> float:
    return sum(float((j.get("progress") or {}).get("beats", 0)) for j in doc["jobs"].values())


def _hb_ages(doc: dict[str, Any]) -> list[float]:
    at = _ts(doc["updated_at"]) or 0.0
    return [at - (_ts(j["last_heartbeat_at"]) or at) for j in doc["jobs"].values()
            if j["state"] == "RUNNING" and j.get("last_heartbeat_at")]


def run_config(name: str, root: Path, jobs: int, seconds: float, worker: Path, server: Any,
               pg_url: str | None, owned: set[int]) -> dict[str, Any]:
    """Start DAEMONS daemons on one store, ramp, measure `seconds`, stop them. `owned` collects
    the pids of every process started (daemons and workers) for the final sweep."""
    daemons = [Daemon(root / name, f"h{i + 1}", jobs, worker, pg_url) for i in range(DAEMONS)]
    store = Store(pg_url, [d.dir / "var" / "history.db" for d in daemons])
    res: dict[str, Any] = {"config": name, "store": "postgresql" if pg_url else "sqlite", "daemons": DAEMONS,
                           "jobs_per_daemon": jobs, "ok": False}
    try:
        _say(f"{name}: starting {DAEMONS} daemons × {jobs} jobs")
        t0 = time.monotonic()
        for d in daemons:
            d.start()
            owned.add(d.proc.pid)  # type: ignore[union-attr]
        first_status: list[float | None] = [None] * DAEMONS
        all_at: list[float | None] = [None] * DAEMONS
        last_print = 0.0
        while True:
            for d in daemons:
                if not d.alive():
                    raise RuntimeError(f"daemon {d.host} exited ({d.proc.returncode}):\n{d.log_tail()}")  # type: ignore[union-attr]
            docs = [d.status() for d in daemons]
            now = time.monotonic()
            running = _running(docs)
            for i, doc in enumerate(docs):
                if doc is not None and first_status[i] is None:
                    first_status[i] = now - t0
                if running[i] >= jobs and all_at[i] is None:
                    all_at[i] = now - t0
            for d in daemons:
                owned.update(p.pid for p in d.jobs())
            if all(a is not None for a in all_at):
                break
            if now - last_print >= 10:
                _say(f"{name}: {now - t0:4.0f} s, RUNNING {running}")
                last_print = now
            if now - t0 > RAMP_TIMEOUT:
                raise RuntimeError(f"not all RUNNING after {RAMP_TIMEOUT:g} s: {running}")
            time.sleep(0.25)
        ramp_s = max(a for a in all_at if a is not None)
        ramp_cpu = [d.cpu() for d in daemons]
        _say(f"{name}: all {DAEMONS * jobs} RUNNING after {ramp_s:.1f} s "
             f"(daemon CPU so far {', '.join(f'{c:.1f}' for c in ramp_cpu)} s)")
        res.update(ramp_s=ramp_s, ramp_per_daemon_s=all_at, first_status_s=first_status, ramp_cpu_s=ramp_cpu)
        time.sleep(SETTLE)

        # ---- the steady window ----
        workers = [p for d in daemons for p in d.jobs()]
        owned.update(p.pid for p in workers)
        s0 = store.snapshot()
        docs0 = [d.status() for d in daemons]
        cpu0, t_start = [d.cpu() for d in daemons], time.monotonic()
        pg0, w0, m0 = _pg_server_cpu(server), _procs_cpu(workers), psutil.cpu_times()
        ages: list[float] = []
        age_max_per_sample: list[float] = []
        states_seen: dict[str, int] = {}
        end = t_start + seconds
        while time.monotonic() < end:
            time.sleep(min(SAMPLE, max(0.0, end - time.monotonic())))
            for d in daemons:
                if not d.alive():
                    raise RuntimeError(f"daemon {d.host} exited in the window:\n{d.log_tail()}")
                d.sample_rss()
                doc = d.status()
                if doc is None:
                    continue
                a = _hb_ages(doc)
                ages += a
                age_max_per_sample.append(max(a, default=0.0))
                for j in doc["jobs"].values():
                    if j["state"] != "RUNNING":
                        states_seen[j["state"]] = states_seen.get(j["state"], 0) + 1
        wall = time.monotonic() - t_start
        cpu1 = [d.cpu() for d in daemons]
        pg1, w1, m1 = _pg_server_cpu(server), _procs_cpu(workers), psutil.cpu_times()
        docs1 = [d.status() for d in daemons]
        s1 = store.snapshot()

        # heartbeats taken in: each daemon's view of the workers' counters, over its own clock
        per_daemon_rate = []
        for a, b in zip(docs0, docs1):
            assert a is not None and b is not None
            dt = (_ts(b["updated_at"]) or 0) - (_ts(a["updated_at"]) or 0)
            per_daemon_rate.append((_beats(b) - _beats(a)) / dt if dt > 0 else 0.0)
        busy = (sum(m1) - m1.idle - m1.iowait) - (sum(m0) - m0.idle - m0.iowait)
        total = sum(m1) - sum(m0)
        store_wall = s1["t"] - s0["t"]
        inserted = {t: s1["rows"].get(t, 0) - s0["rows"].get(t, 0) for t in sorted(set(s0["rows"]) | set(s1["rows"]))}
        rewritten = sum(1 for r, b in s1["beats"].items() if r in s0["beats"] and s0["beats"][r] != b)
        res.update(
            window_s=wall,
            heartbeats_per_s=sum(per_daemon_rate), heartbeats_per_s_by_daemon=per_daemon_rate,
            offered_per_s=DAEMONS * jobs * RATE,
            hb_age_p50_s=_pct(ages, 0.5), hb_age_p99_s=_pct(ages, 0.99), hb_age_max_s=max(ages, default=None),
            daemon_cpu_pct=[100 * (b - a) / wall for a, b in zip(cpu0, cpu1)],
            daemon_rss_max_mib=[d.rss_max / 2**20 for d in daemons],
            pg_server_cpu_pct=100 * _cpu_delta(pg0, pg1) / wall if server is not None else None,
            pg_server_procs=len(pg1),
            workers_cpu_pct=100 * _cpu_delta(w0, w1) / wall, workers=len(workers),
            machine_busy_pct=100 * busy / total if total > 0 else None,
            non_running_samples=states_seen,
            rows_before=s0["rows"], rows_after=s1["rows"], rows_inserted=inserted,
            rows_inserted_per_s=sum(inserted.values()) / store_wall,
            run_rows_rewritten=rewritten, run_rows=len(s1["beats"]),
        )
        if "pg" in s0:
            d_pg = {k: s1["pg"][k] - s0["pg"][k] for k in s0["pg"]}
            d_pg["xact_commit"] -= 1  # the start snapshot's own transaction
            res["pg_stat"] = d_pg
            res["pg_per_s"] = {k: v / store_wall for k, v in d_pg.items()}
            t0s, t1s = s0["pg_tables"], s1["pg_tables"]
            res["pg_tables"] = {t: {k: v - t0s.get(t, {}).get(k, 0) for k, v in c.items()}
                                for t, c in sorted(t1s.items())}

        # ---- the end: correctness, store, fleet ----
        res["transitions"] = store.bad_transitions()
        res["false_stalled_silent"] = sum(res["transitions"].get(s, 0) for s in BAD_STATES)
        res["store_status"] = {d.host: doc.get("store") for d, doc in zip(daemons, docs1) if doc}
        res["alerts_at_end"] = {d.host: [a.get("key") for a in doc.get("alerts", [])]
                                for d, doc in zip(daemons, docs1) if doc}
        if pg_url:
            res["hosts_last_seen_age_s"] = s1["hosts"]
            now = time.time()
            res["fleet_views"] = {
                d.host: {"error": (doc.get("fleet") or {}).get("error"),
                         "read_age_s": now - (_ts((doc.get("fleet") or {}).get("read_at")) or now),
                         "hosts": {h["host"]: h["state"] for h in (doc.get("fleet") or {}).get("hosts", [])}}
                for d, doc in zip(daemons, docs1) if doc}
        res["ok"] = True
        _say(f"{name}: {res['heartbeats_per_s']:.0f} heartbeats/s, daemon CPU "
             f"{', '.join(f'{c:.0f}%' for c in res['daemon_cpu_pct'])}, rows inserted "
             f"{res['rows_inserted_per_s']:.2f}/s, run rows rewritten {rewritten}, "
             f"STALLED/SILENT {res['false_stalled_silent']}")
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        _say(f"{name}: FAILED: {res['error']}")
    finally:
        res["stop_s"] = _stop(daemons, owned, str(root))
        res["daemon_log_levels"] = {d.host: d.log_counts() for d in daemons}
    return res


def _stop(daemons: list[Daemon], owned: set[int], token: str) -> float | None:
    """SIGTERM every daemon (they stop their jobs), wait, then SIGKILL what is left of ours."""
    for d in daemons:
        owned.update(p.pid for p in d.jobs())
    t0 = time.monotonic()
    for d in daemons:
        if d.alive():
            d.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    took: float | None = None
    try:
        for d in daemons:
            if d.proc is not None:
                d.proc.wait(max(0.1, STOP_TIMEOUT - (time.monotonic() - t0)))
        took = time.monotonic() - t0
        _say(f"stopped {len(daemons)} daemons in {took:.1f} s")
    except subprocess.TimeoutExpired:
        _say(f"daemons not stopped within {STOP_TIMEOUT:g} s: killing")
    _kill(owned, token)
    return took


def _kill(owned: set[int], token: str) -> None:
    """SIGKILL the process group of every pid we started that still exists and is still ours
    (its command line names our temp dir: a daemon's config, or our worker script)."""
    for pid in sorted(owned):
        try:
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE or not any(token in a for a in p.cmdline()):
                continue
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass


def _sweep(token: str) -> int:
    """SIGKILL any process left whose command line names our temp dir (pids one by one)."""
    n = 0
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] == os.getpid():
            continue
        if any(token in (a or "") for a in (p.info["cmdline"] or [])):
            try:
                os.kill(p.info["pid"], signal.SIGKILL)
                n += 1
            except (ProcessLookupError, PermissionError):
                pass
    return n


# ---- the report ----------------------------------------------------------------------------

def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if v is None else fmt.format(v)


def _table(pg: dict[str, Any], lite: dict[str, Any]) -> str:
    def each(r: dict[str, Any], key: str, fmt: str) -> str:
        vals = r.get(key)
        return "–" if not vals else " / ".join(fmt.format(v) for v in vals)

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a is not None and b else ""

    def mean(r: dict[str, Any], key: str) -> float | None:
        return statistics.mean(r[key]) if r.get(key) else None

    def rows_by_table(r: dict[str, Any]) -> str:
        ins = r.get("rows_inserted") or {}
        w = r.get("window_s") or 0
        shown = [f"{t} {n}" for t, n in ins.items() if n]
        return (", ".join(shown) or "none") + (f" in {w:.0f} s" if w else "")

    def pg_tables(r: dict[str, Any]) -> str:
        t = r.get("pg_tables") or {}
        shown = [f"{n} +{c['ins']}/~{c['upd']}" for n, c in t.items() if c["ins"] or c["upd"]]
        return ", ".join(shown) or "none"

    def store_end(r: dict[str, Any]) -> str:
        st = r.get("store_status") or {}
        return " / ".join(f"{'ok' if (s or {}).get('ok') else 'FAILING'} q{(s or {}).get('queued')}"
                          for s in st.values()) or "–"

    def fleet_end(r: dict[str, Any]) -> str:
        ages = r.get("hosts_last_seen_age_s")
        if ages is None:
            return "n/a (no fleet without a shared store)"
        views = r.get("fleet_views") or {}
        up = sum(1 for v in views.values() if list(v["hosts"].values()).count("up") == DAEMONS)
        return (f"last_seen ages {' / '.join(f'{a:.1f}' for _, a in sorted(ages.items()))} s; "
                f"{up} of {len(views)} daemons see all {DAEMONS} up")

    pgs = pg.get("pg_per_s") or {}
    lines = [
        "| measurement | PostgreSQL (shared) | SQLite (3 files) | PG/SQLite |",
        "|---|---:|---:|---:|",
        f"| time until all {DAEMONS * (pg.get('jobs_per_daemon') or JOBS)} jobs RUNNING (s) | {_f(pg.get('ramp_s'))} "
        f"| {_f(lite.get('ramp_s'))} | {ratio(pg.get('ramp_s'), lite.get('ramp_s'))} |",
        f"| heartbeats taken in /s, 3 daemons (offered {_f(pg.get('offered_per_s'), '{:.0f}')}) "
        f"| {_f(pg.get('heartbeats_per_s'))} | {_f(lite.get('heartbeats_per_s'))} "
        f"| {ratio(pg.get('heartbeats_per_s'), lite.get('heartbeats_per_s'))} |",
        f"| heartbeat age in status.json p50 / p99 / max (s) | {_f(pg.get('hb_age_p50_s'), '{:.2f}')} / "
        f"{_f(pg.get('hb_age_p99_s'), '{:.2f}')} / {_f(pg.get('hb_age_max_s'), '{:.2f}')} "
        f"| {_f(lite.get('hb_age_p50_s'), '{:.2f}')} / {_f(lite.get('hb_age_p99_s'), '{:.2f}')} / "
        f"{_f(lite.get('hb_age_max_s'), '{:.2f}')} | |",
        f"| daemon CPU % of one core, h1 / h2 / h3 | {each(pg, 'daemon_cpu_pct', '{:.1f}')} "
        f"| {each(lite, 'daemon_cpu_pct', '{:.1f}')} "
        f"| {ratio(mean(pg, 'daemon_cpu_pct'), mean(lite, 'daemon_cpu_pct'))} |",
        f"| daemon max RSS MiB, h1 / h2 / h3 | {each(pg, 'daemon_rss_max_mib', '{:.0f}')} "
        f"| {each(lite, 'daemon_rss_max_mib', '{:.0f}')} "
        f"| {ratio(mean(pg, 'daemon_rss_max_mib'), mean(lite, 'daemon_rss_max_mib'))} |",
        f"| PostgreSQL server CPU % | {_f(pg.get('pg_server_cpu_pct'), '{:.2f}')} | – | |",
        f"| {DAEMONS * (pg.get('jobs_per_daemon') or JOBS)} workers' CPU %, together | {_f(pg.get('workers_cpu_pct'))} "
        f"| {_f(lite.get('workers_cpu_pct'))} | |",
        f"| machine CPU busy % ({os.cpu_count()} cores) | {_f(pg.get('machine_busy_pct'))} "
        f"| {_f(lite.get('machine_busy_pct'))} | |",
        f"| history rows inserted /s (row counts) | {_f(pg.get('rows_inserted_per_s'), '{:.2f}')} "
        f"| {_f(lite.get('rows_inserted_per_s'), '{:.2f}')} | |",
        f"| rows inserted by table | {rows_by_table(pg)} | {rows_by_table(lite)} | |",
        f"| run rows rewritten in the store during the window | {pg.get('run_rows_rewritten', '–')} of "
        f"{pg.get('run_rows', '–')} | {lite.get('run_rows_rewritten', '–')} of {lite.get('run_rows', '–')} | |",
        f"| pg_stat_database /s: xact_commit, tup_inserted, tup_updated | "
        f"{_f(pgs.get('xact_commit'), '{:.2f}')}, {_f(pgs.get('tup_inserted'), '{:.2f}')}, "
        f"{_f(pgs.get('tup_updated'), '{:.2f}')} | – | |",
        f"| PostgreSQL rows inserted (+) / updated (~) by table in the window | {pg_tables(pg)} | – | |",
        f"| transitions to STALLED / SILENT (must be 0) | {pg.get('false_stalled_silent', '–')} "
        f"| {lite.get('false_stalled_silent', '–')} | |",
        f"| store at the end (ok, queued), h1 / h2 / h3 | {store_end(pg)} | {store_end(lite)} | |",
        f"| fleet reports at the end | {fleet_end(pg)} | {fleet_end(lite)} | |",
        f"| SIGTERM to all {DAEMONS} daemons exited, their {DAEMONS * (pg.get('jobs_per_daemon') or JOBS)} jobs "
        f"stopped (s) | {_f(pg.get('stop_s'))} | {_f(lite.get('stop_s'))} | |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_daemons", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="steady window per configuration (default 60)")
    p.add_argument("--jobs", type=int, default=JOBS, help=f"jobs per daemon (default {JOBS})")
    p.add_argument("--only", choices=["postgresql", "sqlite"], help="run one configuration only")
    args = p.parse_args(argv)

    from bench import _report
    from tests.fleet.pg import PostgresServer

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)
    facts = _report.machine()
    facts["load_before"] = round(os.getloadavg()[0], 2)
    t0 = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    pg_version = None
    owned: set[int] = set()
    tmp = Path(tempfile.mkdtemp(prefix="pwb-fleetd-"))
    worker = tmp / "beat_worker.py"
    worker.write_text(textwrap.dedent(WORKER.format(root=str(ROOT), rate=RATE)).lstrip())
    server = None
    try:
        if args.only != "sqlite":
            server = PostgresServer(durable=True)
            url = server.create_db()
            import psycopg

            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
                pg_version = conn.execute("show server_version").fetchone()[0]  # type: ignore[index]
                settings = dict(conn.execute(
                    "select name, setting from pg_settings where name in "
                    "('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'max_connections')"
                ).fetchall())
            facts["postgresql_settings"] = settings
            _say(f"PostgreSQL {pg_version} on 127.0.0.1:{server.port} ({settings})")
            results["postgresql"] = run_config("A-postgresql", tmp, args.jobs, args.seconds, worker, server, url,
                                               owned)
            server.close()
            server = None
        if args.only != "postgresql":
            results["sqlite"] = run_config("B-sqlite", tmp, args.jobs, args.seconds, worker, None, None, owned)
    finally:
        _kill(owned, str(tmp))
        left = _sweep(str(tmp))
        if left:
            _say(f"swept {left} leftover processes")
        if server is not None:
            server.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    facts["load_after"] = round(os.getloadavg()[0], 2)
    facts["postgresql"] = pg_version
    wall = time.monotonic() - t0
    table = _table(results.get("postgresql", {}), results.get("sqlite", {}))
    command = ".venv/bin/python -m bench.fleet_daemons" + ("" if not argv else " " + " ".join(argv))
    print(f"\n{command}  ({wall:.0f} s; {facts['nproc']} cores, {facts['cpu']}; PostgreSQL {pg_version}; "
          f"load {facts['load_before']} -> {facts['load_after']}; {DAEMONS} daemons × {args.jobs} jobs at "
          f"{RATE:g} Hz, window {args.seconds:g} s)\n\n{table}")
    for r in results.values():
        if r.get("error"):
            print(f"\n{r['config']} FAILED: {r['error']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"command": command, "machine": facts, "wall_s": wall, "daemons": DAEMONS,
                                   "jobs": args.jobs, "rate_hz": RATE, "seconds": args.seconds,
                                   "stall_after": STALL_AFTER, "report_every": REPORT_EVERY,
                                   "results": results}, indent=1, default=str))
    print(f"bench: raw results in {RESULTS}", file=sys.stderr)
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
