"""The history's schema as SQLModel tables, made from the rows in status.rows: for migrations
(status.migrate), for PostgreSQL (status.history) and for the SQLite DDL (status/schema.sql).

The daemon's own process does not import this module on its default SQLite history.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel
from sqlmodel.main import SQLModelMetaclass

from status.rows import AlertRow, EventRow, HostSampleRow, NotifyStateRow, OutboxRow, Row, RunRow, kinds


def table(row: type[Row], name: str, *, table_args: tuple[Any, ...] = ()) -> Any:
    """The SQLModel table of `row`: its columns in order, with their defaults, keys, indexes
    and server defaults (status.rows.column); `dict`/`list` columns as JSON."""
    hints = typing.get_type_hints(row)
    blobs = kinds(row)[1]
    ns: dict[str, Any] = {"__tablename__": row.__tablename__, "__annotations__": {}, "__doc__": row.__doc__,
                          "__module__": __name__, "__qualname__": name}
    if table_args:
        ns["__table_args__"] = table_args
    for f in dataclasses.fields(row):
        kw: dict[str, Any] = {}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        meta = f.metadata
        if meta.get("key"):
            kw["primary_key"] = True
        if meta.get("index"):
            kw["index"] = True
        if meta.get("server_default") is not None:
            kw["sa_column_kwargs"] = {"server_default": meta["server_default"]}
        if f.name in blobs:
            kw["sa_column"] = Column(JSON)
        ns[f.name] = Field(**kw)
        ns["__annotations__"][f.name] = hints[f.name]
    return SQLModelMetaclass(name, (SQLModel,), ns, table=True)


RunTable = table(RunRow, "RunTable",
                 table_args=(Index("ix_runs_host_job_started_at", "host", "job", "started_at"),))  # fleet reads
EventTable = table(EventRow, "EventTable")
AlertTable = table(AlertRow, "AlertTable")
HostSampleTable = table(HostSampleRow, "HostSampleTable")
OutboxTable = table(OutboxRow, "OutboxTable")
NotifyStateTable = table(NotifyStateRow, "NotifyStateTable")

TABLES: dict[str, Any] = {t.__tablename__: t for t in (RunTable, EventTable, AlertTable, HostSampleTable,
                                                       OutboxTable, NotifyStateTable)}

import status.fleet  # noqa: E402, F401  (registers the fleet's tables: hosts, claims)


def sqlite_ddl() -> str:
    """The SQLite DDL that `SQLModel.metadata.create_all` runs (every table and index, in
    order), plus Alembic's version table: status/schema.sql is this text."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    out: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        out.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            out.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    from status.migrate import VERSION_TABLE_DDL

    out.append(VERSION_TABLE_DDL)
    return "".join(stmt + ";\n\n" for stmt in out)


if __name__ == "__main__":  # python -m status.tables > status/schema.sql
    import sys

    sys.stdout.write("-- The history's SQLite schema at the newest revision: written by `python -m status.tables`\n"
                     "-- (never by hand; tests/status/test_rows.py checks it). status.sqlite creates a new\n"
                     "-- history with it, then stamps the revision.\n\n" + sqlite_ddl())
