"""Fixtures of the fleet tests: one real PostgreSQL server per session (tests/fleet/pg.py),
a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fleet.pg import PostgresServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database's URL (the server is running)."""
    pg_server.start() if not _accepting(pg_server) else None
    return pg_server.create_db()


def _accepting(server: PostgresServer) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        return True
    except OSError:
        return False
