"""Which history implementation serves a store: status.sqlite (the standard library's sqlite3)
for a SQLite file, status.history (SQLModel/SQLAlchemy) for a database server. The daemon on
its default SQLite history thus never loads SQLAlchemy."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_history(target: Path | str, **kwargs: Any) -> Any:
    """The history at `target` (a path or a store URL): a SqliteHistory or a History, opened
    with their keywords (create, host, scoped)."""
    if "://" not in str(target) or str(target).startswith("sqlite:"):
        from status.sqlite import SqliteHistory

        return SqliteHistory(target, **kwargs)
    from status.history import History

    return History(target, **kwargs)


def store_parts(engine: Any) -> tuple[str, str, int | None, str]:
    """(kind, host, port, database) of a history's engine, without a password: ("sqlite", "",
    None, the file) for a SQLite history (a status.sqlite.SqliteDB or a SQLAlchemy engine)."""
    from status.sqlite import SqliteDB

    if isinstance(engine, SqliteDB):
        return "sqlite", "", None, str(engine.path)
    url = engine.url
    kind = url.get_backend_name()
    if kind == "sqlite":
        return kind, "", None, url.database or ""
    return kind, url.host or "", url.port or 5432, url.database or ""


def store_target(engine: Any) -> str:
    """The store as people name it: host:port/database, or the SQLite file (never a password)."""
    kind, host, port, database = store_parts(engine)
    return database if kind == "sqlite" else f"{host}:{port}/{database}"
