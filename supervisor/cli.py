"""The `proofwatch` command line. Exit codes: 0 ok, 1 runtime failure, 2 usage/config error."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

from supervisor.config import Config, ConfigError, check_config, load_config
from supervisor.control import ControlError, request
from supervisor.launch import checked_store_url, print_error

if TYPE_CHECKING:
    from rich.console import Console
    from status.history import History, RunRow

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="proofwatch: a supervisor that demands proof of life and proof of work.")
alerts_app = typer.Typer(help="List or acknowledge alerts.", invoke_without_command=True)
app.add_typer(alerts_app, name="alerts")
# soft_wrap: a message is one line even when piped (tables still fit the width).
_WIDE = None if sys.stdout.isatty() else 200  # piped: do not wrap tables at 80 columns
class _LazyConsole:
    """A rich Console made on first use: `proofwatch run` never prints through one, and rich
    costs ~20 ms of the daemon's start (spawning begins after its imports)."""

    def __init__(self, **options: object) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        """The Console itself."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)  # type: ignore[arg-type]
        return self._console

    def __getattr__(self, name: str) -> object:
        return getattr(self.get(), name)


out = _LazyConsole(soft_wrap=True, width=_WIDE)
err = _LazyConsole(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="PROOFWATCH_CONFIG", help="The config file."),
]
DEFAULT_CONFIG = Path("config.toml")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error (plain text: "[store]" stays as written) and exit."""
    print_error(message)
    raise typer.Exit(code)


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            err.print(line, highlight=False, markup=False)
        raise typer.Exit(2) from None


@app.command()
def run(config: ConfigOpt = DEFAULT_CONFIG, log_level: str = "info") -> None:
    """Start the daemon in the foreground (stops its jobs on SIGTERM/SIGINT)."""
    from supervisor.launch import run as run_daemon

    raise typer.Exit(run_daemon(config, log_level))


def _daemon_up(cfg: Config) -> bool:
    try:
        return bool(request(cfg.socket_path, "ping", timeout=2.0).get("ok"))
    except ControlError:
        return False


@app.command()
def status(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print status.json as it is.")] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every second.")] = False,
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON Schema of status.json.")] = False,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Rewrite status.json from the history (when the daemon is down).")] = False,
) -> None:
    """Show every job's state (reads status.json; works when the daemon is down)."""
    from status.models import status_json_schema

    if schema:
        out.print_json(json.dumps(status_json_schema()))
        return
    if rebuild:
        _rebuild_status(_load(config))
        return
    from rich.live import Live

    from status.store import StatusFileError, read_status
    from supervisor.render import status_view

    cfg = _load(config)

    def view() -> object:
        try:
            doc = read_status(cfg.status_file)
        except StatusFileError as exc:
            fail(str(exc))
        return doc

    if as_json:
        try:
            sys.stdout.write(cfg.status_file.read_text())
        except FileNotFoundError:
            fail(f"{cfg.status_file}: no such file (is the daemon started?)")
        return
    doc = view()
    if not watch:
        out.print(status_view(doc, daemon_up=_daemon_up(cfg)))  # type: ignore[arg-type]
        return
    with Live(status_view(doc, daemon_up=_daemon_up(cfg)), console=out.get(), refresh_per_second=2) as live:  # type: ignore[arg-type]
        while True:
            time.sleep(1.0)
            live.update(status_view(view(), daemon_up=_daemon_up(cfg)))  # type: ignore[arg-type]


def _rebuild_status(cfg: Config) -> None:
    """`status --rebuild`: status.json from the history, unless a daemon owns the file."""
    from status.store import write_status
    from supervisor.statusrebuild import preserve, problem_of, rebuild

    try:
        reply = request(cfg.socket_path, "ping", timeout=2.0)
    except ControlError:
        reply = {}
    if reply.get("ok"):
        out.print(f"the daemon (pid {reply.get('pid', '?')}) is running and owns {cfg.status_file}: it "
                  "rewrites the file itself on every change (and within rescan_every if it is removed); "
                  "nothing to rebuild", highlight=False)
        return
    _store_url(cfg)
    if not cfg.shared_store and not cfg.history_db.exists():
        fail(f"{cfg.history_db}: no history to rebuild {cfg.status_file.name} from (has the daemon run?)")
    now = datetime.now(timezone.utc)
    try:
        doc = rebuild(cfg, now)
    except _store_errors(cfg) as exc:
        from status.history import make_engine
        from status.backend import store_target
        from supervisor.recorder import error_text

        where = store_target(make_engine(_store_url(cfg))) if cfg.shared_store else cfg.history_db
        fail(f"{where}: cannot read the history: {error_text(exc).splitlines()[0]}")
    try:
        problem = problem_of(cfg.status_file)
        kept = preserve(cfg.status_file, now) if problem else None
        write_status(cfg.status_file, doc)
    except OSError as exc:
        fail(f"{cfg.status_file}: cannot rebuild: {exc}")
    if problem:
        err.print(f"warning: {problem}; kept as {kept}", highlight=False, markup=False)
    active = [f"{name} ({j.state.value})" for name, j in doc.jobs.items() if j.state.is_active]

    def n(count: int, what: str) -> str:
        return f"{count} {what}" + ("" if count == 1 else "s")

    out.print(f"rebuilt {cfg.status_file} from {'the shared store' if cfg.shared_store else cfg.history_db}: {n(len(doc.jobs), 'job')}, "
              f"{n(len(doc.alerts) - 1, 'active alert')}, {n(len(doc.recent), 'recent run')}"
              + (f"; left active when the daemon stopped, shown as last recorded: {', '.join(active)}"
                 if active else ""), highlight=False)


@app.command()
def health(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print the host section as JSON.")] = False,
) -> None:
    """Host health: score, label, reasons, gauges and top processes (from status.json)."""
    from status.store import StatusFileError, read_status
    from supervisor.render import health_view

    cfg = _load(config)
    try:
        doc = read_status(cfg.status_file)
    except StatusFileError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(doc.host.model_dump_json(indent=2) + "\n")
        return
    out.print(health_view(doc))


@app.command()
def fleet(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fleet view as JSON.")] = False,
) -> None:
    """Every host sharing the store: state, last report, health, jobs with heartbeat ages
    (reads the shared store; works when the daemon is down)."""
    from status.history import make_engine
    from supervisor.fleetrender import fleet_view
    from supervisor.fleetview import FleetReadError, read_view

    cfg = _load(config)
    if not cfg.shared_store:
        fail(f"{config}: the fleet view needs a shared store: set [store] url "
             '(e.g. "postgresql+psycopg://user@dbhost:5432/proofwatch")', 2)
    engine = make_engine(_store_url(cfg))
    try:
        view = read_view(engine, None, cfg.fleet.host_stale_after, cfg.host)  # by the store's clock
    except FleetReadError as exc:
        fail(exc.message)
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(view.model_dump_json(indent=2) + "\n")
        return
    out.print(fleet_view(view))


def _control(cfg: Config, cmd: str, arg: str | None, extra: dict[str, str] | None = None,
             refused_code: int = 1) -> None:
    """Send one command to the daemon; print its answer, or fail with its error."""
    try:
        reply = request(cfg.socket_path, cmd, arg, extra=extra)
    except ControlError as exc:
        fail(str(exc))
    if not reply.get("ok"):
        fail(str(reply.get("error", reply)), refused_code)
    out.print(reply.get("message", "ok"), highlight=False)


@app.command()
def start(job: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Start a job now."""
    _control(_load(config), "start", job)


@app.command()
def stop(job: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Stop a job (SIGTERM to its group, SIGKILL after stop_grace) and hold it."""
    _control(_load(config), "stop", job)


@app.command()
def restart(job: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Stop a job if it runs, then start it."""
    _control(_load(config), "restart", job)


@app.command()
def reload(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Re-read the config (like SIGHUP); a bad config is reported and the old one kept."""
    _control(_load(config), "reload", None, refused_code=2)


@app.command()
def logs(
    job: str,
    config: ConfigOpt = DEFAULT_CONFIG,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr instead of stdout.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    run_id: Annotated[Optional[str], typer.Option("--run")] = None,
) -> None:
    """Show the output of a job's latest (or a given) run."""
    from supervisor.confine import RUN_ID_PART, inside, is_job_name
    from supervisor.logfollow import follow_run, latest_run_dir

    cfg = _load(config)
    if not is_job_name(job):
        fail(f'{job!r} is not a job name (letters, digits, "_", "." and "-")', 2)
    if run_id is not None and not RUN_ID_PART.fullmatch(run_id):
        fail(f"--run {run_id!r} is not a run id (like 20261125T084455123Z-3f9a1c, or its end)", 2)
    run_dir = latest_run_dir(cfg, job, run_id)
    if run_dir is None:
        fail(f"no run of {job!r} found under {cfg.runs_dir / job}")
    if not inside(cfg.runs_dir, run_dir):
        fail(f"{run_dir} resolves outside {cfg.runs_dir}: not read", 2)
    follow_run(cfg, job, run_dir, "stderr.log" if stderr else "stdout.log", lines, follow, out)


@app.command()
def history(
    job: Annotated[Optional[str], typer.Argument()] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    limit: int = 20,
    events: Annotated[bool, typer.Option("--events", help="Show transitions, not runs.")] = False,
    host: Annotated[Optional[str], typer.Option(
        "--host", help="Another host's history (a shared store; default: this config's host).")] = None,
) -> None:
    """Past runs (or events) from the history store."""
    from rich.table import Table

    from supervisor.render import age

    cfg = _load(config)
    if host is not None and not cfg.shared_store:
        fail(f"--host {host}: only a shared store ([store] url) holds other hosts' history", code=2)
    now = datetime.now(timezone.utc)
    table = Table(box=None, header_style="bold")
    with _history(cfg, host) as h:
        found = h.events(job=job, limit=limit) if events else h.runs(job=job, limit=limit)
    if events:
        for col in ("TIME", "JOB", "RUN", "KIND", "FROM", "TO", "REASON"):
            table.add_column(col, overflow="fold" if col == "REASON" else "ellipsis")
        for e in found:
            table.add_row(e.ts.astimezone().strftime("%H:%M:%S.%f")[:-3], e.job, (e.run_id or "-")[-6:], e.kind,
                          e.from_state or "", e.to_state or "", e.reason)
    else:
        for col in ("STARTED", "JOB", "RUN", "STATE", "TOOK", "EXIT", "ERROR"):
            table.add_column(col, overflow="fold" if col == "ERROR" else "ellipsis")
        for r in found:
            took = age(r.ended_at, r.started_at) if r.ended_at else f"{age(now, r.started_at)}…"
            table.add_row(r.started_at.astimezone().strftime("%m-%d %H:%M:%S"), r.job, r.run_id[-6:], r.state,
                          took, "" if r.exit_code is None else str(r.exit_code), (r.error or "").splitlines()[0] if r.error else "")
    out.print(table)


def _store_url(cfg: Config) -> str:
    """The history's URL; a "${VAR}" that is unset or a URL proofwatch does not speak exits 2."""
    try:
        return checked_store_url(cfg)
    except ValueError as exc:
        fail(str(exc), code=2)


def _open_history(cfg: Config, host: str | None = None) -> History:
    """The history for reading, scoped to this config's host or `host` (fails clearly when
    there is none)."""
    from status.backend import open_history

    if not cfg.shared_store and not cfg.history_db.exists():
        fail(f"{cfg.history_db}: no history yet (has the daemon run?)")
    return open_history(_store_url(cfg), create=False, host=host or cfg.host, scoped=cfg.shared_store)  # type: ignore[no-any-return]


def _store_errors(cfg: Config) -> tuple[type[BaseException], ...]:
    """What reading this config's history raises when the store cannot be read: sqlite3's
    errors, and SQLAlchemy's for a database server (SQLAlchemy is imported only then)."""
    import sqlite3

    if not cfg.shared_store:
        return (sqlite3.Error,)
    from sqlalchemy.exc import SQLAlchemyError

    return (sqlite3.Error, SQLAlchemyError)


@contextmanager
def _history(cfg: Config, host: str | None = None) -> Iterator[History]:
    """`_open_history` for a few reads: a store that cannot be read fails in one line (which
    store, the driver's reason), never a traceback."""
    h = _open_history(cfg, host)
    try:
        yield h
    except _store_errors(cfg) as exc:
        from status.backend import store_target
        from supervisor.recorder import error_text

        fail(f"{store_target(h.engine)}: cannot read the history: {error_text(exc).splitlines()[0]}")
    finally:
        h.close()


def _run_row(cfg: Config, job: str, run_id: str | None) -> RunRow:
    from supervisor.proofaudit import find_run

    with _history(cfg) as h:
        row = find_run(h, job, run_id)
    if row is None:
        fail(f"no run of {job!r}" + (f" matching {run_id!r}" if run_id else "") + " in the history")
    return row


@app.command()
def proofs(
    job: str,
    config: ConfigOpt = DEFAULT_CONFIG,
    run_id: Annotated[Optional[str], typer.Option("--run")] = None,
) -> None:
    """Show each proof of a job's latest (or given) run: ok/failed, reason, size, sha256."""
    from rich.table import Table
    from rich.text import Text

    cfg = _load(config)
    row = _run_row(cfg, job, run_id)
    out.print(f"{job} run {row.run_id}: {row.state}" + (f" — {row.error}" if row.error else ""),
              highlight=False)
    if not row.proofs:
        out.print("no proofs recorded for this run" + (" (still running?)" if row.ended_at is None else ""))
        return
    table = Table(box=None, header_style="bold")
    for col in ("", "PATH", "KIND", "SIZE", "SHA256", "DETAIL"):
        table.add_column(col, overflow="fold" if col in ("DETAIL", "PATH") else "ellipsis")
    for p in row.proofs:
        mark = Text("ok", "green") if p.get("ok") else Text("FAILED", "bold red")
        checks = ", ".join(p.get("checks") or [])
        table.add_row(mark, p["path"], p.get("kind", ""), "" if p.get("size") is None else str(p["size"]),
                      (p.get("sha256") or "")[:16], checks if p.get("ok") and checks else p.get("detail", ""))
    out.print(table)


@app.command()
def verify(
    job: str,
    config: ConfigOpt = DEFAULT_CONFIG,
    run_id: Annotated[Optional[str], typer.Option("--run")] = None,
) -> None:
    """Re-check a finished run's artifacts against their recorded sha256 (exit 1 if any
    was deleted or changed since)."""
    from pathlib import Path as _P

    from supervisor.proofaudit import audit

    cfg = _load(config)
    row = _run_row(cfg, job, run_id)
    results = audit(row.proofs, _P(row.run_dir), cfg.data_dir)
    if not results:
        out.print(f"{job} run {row.run_id}: no verified file artifacts recorded")
        raise typer.Exit(1)
    bad = 0
    for r in results:
        colour = "green" if r.verdict == "ok" else "bold red"
        bad += r.verdict != "ok"
        out.print(f"[{colour}]{r.verdict:8}[/] {r.path}: {r.detail}", highlight=False)
    if bad:
        err.print(f"{bad} of {len(results)} artifacts of run {row.run_id} changed or deleted since it was verified",
                  highlight=False)
        raise typer.Exit(1)
    out.print(f"all {len(results)} artifacts of run {row.run_id} unchanged", highlight=False)


@alerts_app.callback()
def alerts_list(
    ctx: typer.Context,
    config: ConfigOpt = DEFAULT_CONFIG,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved alerts.")] = False,
) -> None:
    """List active alerts with their details."""
    if ctx.invoked_subcommand is not None:
        return

    cfg = _load(config)
    if not cfg.shared_store and not cfg.history_db.exists():
        out.print("no alerts (no history yet)")
        return
    with _history(cfg) as h:
        rows = h.alerts(active_only=not all_)
    if not rows:
        out.print("[green]no active alerts[/]")
    for a in rows:
        state = f"resolved {a.resolved_at:%H:%M:%S}: {a.resolution}" if a.resolved_at else "ACTIVE"
        out.print(f"[bold]{a.severity.upper()}[/] {a.key} ×{a.count} — {a.title}  [dim]({state})[/]", highlight=False)
        out.print(a.detail, markup=False, highlight=False)
        out.print()


@alerts_app.command("ack")
def alerts_ack(key: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Acknowledge (resolve) an active alert by key."""
    _control(_load(config), "ack", key)


@app.command()
def silence(
    target: Annotated[str, typer.Argument(help="A job name or an alert key.")],
    duration: Annotated[str, typer.Argument(help='How long, e.g. "2h".')],
    config: ConfigOpt = DEFAULT_CONFIG,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "",
) -> None:
    """Mute notifications for a job or alert key (maintenance); expires by itself."""
    from supervisor.durations import parse_duration

    try:
        parse_duration(duration)
    except ValueError as exc:
        fail(f"duration: {exc}", 2)
    _control(_load(config), "silence", target, extra={"duration": duration, "reason": reason})


@app.command()
def unsilence(target: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Lift a silence before it expires."""
    _control(_load(config), "unsilence", target)


@app.command()
def check(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Validate the config and the environment (executables, env vars, directories)."""
    cfg = _load(config)
    findings = check_config(cfg, os.environ)
    bad = 0
    for f in findings:
        colour = {"ok": "green", "warning": "yellow", "error": "red"}[f.level]
        bad += f.level == "error"
        out.print(f"[{colour}]{f.level:7}[/] {f.key}: {f.message}", highlight=False)
    if bad:
        raise typer.Exit(2)
    out.print(f"[green]{config}: {len(cfg.jobs)} jobs, config OK[/]", highlight=False)


@app.command()
def beat(
    progress: Annotated[list[str], typer.Option("--progress", "-p", help="name=NUMBER (repeatable)")] = [],  # noqa: B006
    phase: Annotated[Optional[str], typer.Option()] = None,
    message: Annotated[Optional[str], typer.Option("--message", "-m")] = None,
    blocked: Annotated[Optional[str], typer.Option(help="Report a blocker in these words.")] = None,
    unblock: Annotated[bool, typer.Option(help="Clear a blocker reported earlier.")] = False,
    proof: Annotated[list[str], typer.Option(help="Declare an extra proof: PATH or KIND:PATH, e.g. png:shot.png (repeatable).")] = [],  # noqa: B006
    file: Annotated[Optional[Path], typer.Option(envvar="PROOFWATCH_HEARTBEAT", help="Heartbeat file.")] = None,
    url: Annotated[Optional[str], typer.Option(
        envvar="PROOFWATCH_URL", help="Send to the daemon at this URL (a job on another machine), "
                                      "e.g. http://10.0.0.5:8765.")] = None,
    token: Annotated[Optional[str], typer.Option(
        envvar="PROOFWATCH_HEARTBEAT_TOKEN", help="With --url: the job's heartbeat_token "
                                                  "(better from the environment than the command line).")] = None,
    run_id: Annotated[Optional[str], typer.Option(
        "--run", envvar="PROOFWATCH_RUN_ID", help="With --url: the run this heartbeat is for.")] = None,
) -> None:
    """Send a heartbeat from a shell script (merges counters with the previous heartbeat):
    into the run's heartbeat file, or with --url to a daemon on another machine."""
    from supervisor.beatcmd import BeatError, send_beat, send_remote_beat

    try:
        if url is None:
            send_beat(file, progress, phase=phase, message=message, blocked=blocked, unblock=unblock,
                      proofs=proof)
            return
        reply = send_remote_beat(url, token, run_id, progress, phase=phase, message=message,
                                 blocked=blocked, unblock=unblock, proofs=proof)
    except BeatError as exc:
        fail(str(exc), exc.exit_code)
    out.print(f"{reply['job']} run {reply['run_id']}: seq {reply['seq']}, {reply['state']}"
              + (", progress" if reply.get("progressed") else ""), highlight=False)


@app.command()
def init(path: Annotated[Path, typer.Argument()] = DEFAULT_CONFIG, force: bool = False) -> None:
    """Write a starter config."""
    from supervisor.starter import STARTER_CONFIG

    if path.exists() and not force:
        fail(f"{path} exists (use --force to overwrite)", 2)
    path.write_text(STARTER_CONFIG)
    out.print(f"wrote {path}; check it with: proofwatch check --config {path}", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
