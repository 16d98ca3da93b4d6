"""Starting the daemon in the foreground: the config, the masked secrets, the log, the event
loop, and the exit code (0; 130 after SIGINT, 143 after SIGTERM; 2 for a config that cannot
be used, 1 for a start the daemon refused).

`proofwatch run` comes here straight from `supervisor.entry`, so the daemon's process never
loads the command line's libraries (typer, click: ~2.7 MiB of its resident memory);
`python -m supervisor.cli run` comes here too, through typer.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.config import Config, ConfigError, EnvError, load_config

if TYPE_CHECKING:
    from collections.abc import Mapping


class _RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole formatted record, the traceback included (a filter on a
    logger sees only the message, and only that logger's own records)."""

    def format(self, record: logging.LogRecord) -> str:
        from supervisor.notify import redact

        return redact(super().format(record))


class _QuietFileHandler(logging.FileHandler):
    """The log file on a full disk: say so once on stderr (which still works), not a
    "--- Logging error ---" traceback per record; say again when it works once more."""

    failing = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
            if self.failing:
                self.failing = False
                print(f"proofwatch: writing {self.baseFilename} works again", file=sys.stderr)
        except OSError as exc:
            if not self.failing:
                self.failing = True
                print(f"proofwatch: cannot write {self.baseFilename} ({exc.strerror or exc}); "
                      "log lines go to stderr only until it can", file=sys.stderr)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            raise exc  # to emit(), which reports it once
        super().handleError(record)


def _setup_logging(level: str, logfile: Path | None) -> None:
    fmt = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # owner-only
        handlers.append(_QuietFileHandler(logfile))
    for handler in handlers:
        handler.setFormatter(_RedactingFormatter(fmt))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)


def _register_secrets(cfg: Config, environ: Mapping[str, str] = os.environ) -> None:
    """Mask every secret of the config (as the environment expands it) in the daemon's logs."""
    from supervisor.jobenv import secret_values
    from supervisor.notify import register_secret

    store = cfg.store_url if cfg.shared_store else None
    for value in secret_values(cfg, environ):
        if value == store:  # a database URL: its password is the secret, not its host or user
            from sqlalchemy.engine import make_url

            register_secret(value)
            register_secret(make_url(value).password)  # type: ignore[arg-type]
            continue
        register_secret(value, url="://" in value)


def print_error(message: str) -> None:
    """"error: MESSAGE" on stderr (bold red on a terminal; "[store]" stays as written)."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}",
                                               highlight=False, markup=True)


def checked_store_url(cfg: Config) -> str:
    """`cfg.store_url`, or ValueError with the one line `run` and the CLI print for an unset
    "${VAR}" in it or a URL proofwatch does not speak ("CONFIG: store.url: ...")."""
    try:
        return cfg.store_url
    except (EnvError, ValueError) as exc:
        raise ValueError(f"{cfg.path}: {str(exc).removeprefix('env.')}") from None


def run(config: Path, log_level: str = "info") -> int:
    """Run the daemon on `config` until SIGTERM/SIGINT stops it; return the exit code."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(line, file=sys.stderr)
        return 2
    try:
        checked_store_url(cfg)  # one line, not a traceback
    except ValueError as exc:
        print_error(str(exc))
        return 2
    _register_secrets(cfg)
    _setup_logging(log_level, cfg.state_dir / "proofwatch.log")
    return _serve(cfg)


def _serve(cfg: Config) -> int:
    import anyio

    from supervisor.api.errors import ApiStartError
    from supervisor.control import ControlError
    from supervisor.daemon import Daemon

    daemon = Daemon(cfg, settle_heap=True)
    try:
        anyio.run(daemon.run)
    except (ControlError, ApiStartError) as exc:
        print_error(str(exc))
        return 1
    except ExceptionGroup as group:  # refused while starting, inside the daemon's task group
        refused = group.subgroup((ControlError, ApiStartError))
        if refused is None:
            raise
        print_error(str(_first_leaf(refused)))
        return 1
    reason = daemon.shutdown_reason or ""
    return 130 if "SIGINT" in reason else 143 if "SIGTERM" in reason else 0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
