"""Versioned schema migrations of the history (Alembic, run in-process).

`upgrade(engine)` brings any history to the current schema: a new database (created at once from
the models and stamped, Alembic's own recipe), one written by an older proofwatch before migrations were versioned (the idempotent baseline adopts it, keeping
every row), or one a newer daemon on another host has already migrated. Daemons sharing one
PostgreSQL database may start together: the upgrade holds a transaction-scoped advisory lock,
so one migrates and the others find the work done.

Alembic (and Mako) are imported only when the schema is behind: a daemon starting on an
up-to-date history pays one SELECT.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from status.sqlite import HEAD, SchemaTooNew  # HEAD: the newest revision in migrations/versions

__all__ = ["HEAD", "SCRIPTS", "SchemaTooNew", "VERSION_TABLE_DDL", "current", "upgrade"]

log = logging.getLogger(__name__)

SCRIPTS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x70726F6F66  # pg_advisory_xact_lock key: "proof"


VERSION_TABLE_DDL = ("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                     "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")


def current(conn: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _create_at_head(conn: Connection) -> None:
    """Create every table as the models declare them and stamp HEAD, without importing
    Alembic (tests/status/test_migrate.py proves this equals running every migration)."""
    from sqlmodel import SQLModel

    import status.tables  # noqa: F401  (registers every table)

    SQLModel.metadata.create_all(conn)
    conn.execute(text(VERSION_TABLE_DDL))
    conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD})


def upgrade(engine: Engine) -> str | None:
    """Migrate to HEAD; return the revision the database was at before (None: new or
    pre-migration), or HEAD when there was nothing to do."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        before = current(conn)
        if before == HEAD:
            return HEAD
        if before is None and not inspect(conn).get_table_names():
            _create_at_head(conn)  # a new database: Alembic's recipe, create_all + stamp head
            return None
        if before is not None and not any((SCRIPTS / "versions").glob(f"{before}_*.py")):
            raise SchemaTooNew(
                f"{engine.url.render_as_string(hide_password=True)}: the history is at schema "
                f"revision {before}, which this proofwatch (schema {HEAD}) does not know: it was "
                "migrated by a newer proofwatch; upgrade this one")
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(SCRIPTS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    log.info("history schema: %s -> %s", before or "unversioned", HEAD)
    return before


def main(argv: list[str]) -> int:
    """`python -m status.migrate URL`: migrate the history at URL (how status.sqlite migrates
    a SQLite history without loading Alembic into the daemon). The last line of stderr is
    the reason when it fails."""
    from status.history import make_engine

    if len(argv) != 1:
        print("usage: python -m status.migrate URL", file=sys.stderr)
        return 2
    engine = make_engine(argv[0])
    try:
        upgrade(engine)
    except SchemaTooNew as exc:
        print(exc, file=sys.stderr)
        return 3
    except Exception as exc:
        print(f"{engine.url.render_as_string(hide_password=True)}: migration failed: "
              f"{type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
