"""The `proofwatch` console script. `proofwatch run` with its options goes straight to
`supervisor.launch`, so the long-lived daemon never loads the command line's libraries
(typer, click); everything else, `proofwatch run --help` and a mistyped option included, goes
to the typer CLI (`supervisor.cli`), which says what is wrong.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

_OPTIONS = {"--config": "config", "-c": "config", "--log-level": "log_level"}


def run_options(args: list[str], environ: Mapping[str, str] = os.environ) -> tuple[Path, str] | None:
    """(config, log level) when `args` are `run` and options it takes, each with a value;
    None for anything else (which the typer CLI handles, errors and help included)."""
    if not args or args[0] != "run":
        return None
    found = {"config": environ.get("PROOFWATCH_CONFIG") or "config.toml", "log_level": "info"}
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
        elif arg.startswith("-c") and len(arg) > 2:
            name, eq, value = "-c", "=", arg[2:]  # -cPATH (as click reads it: "-c=x" is "=x")
        else:
            name, eq, value = arg, "", ""
        if name not in _OPTIONS:
            return None
        if not eq:
            if not rest or rest[0].startswith("-"):
                return None  # no value: the CLI says so
            value = rest.pop(0)
        if not value:
            return None
        found[_OPTIONS[name]] = value
    return Path(found["config"]), found["log_level"]


def main() -> None:
    """Console-script entry point."""
    options = run_options(sys.argv[1:])
    if options is None:
        from supervisor.cli import main as cli_main

        cli_main()
        return
    from supervisor.pydantic_plugins import skip_lookup

    skip_lookup()  # before the first model is built (supervisor.config builds them on import)
    from supervisor.launch import run

    sys.exit(run(*options))
