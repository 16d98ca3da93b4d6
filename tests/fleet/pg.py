"""A throwaway PostgreSQL server for the fleet tests: Debian's binaries (installed by
scripts/install-test-deps.sh), initdb in a fresh temp dir, listening on 127.0.0.1 at a free
port only (no Unix socket in /var/run), stopped and deleted at the end.

PostgreSQL refuses to run as root: under root the server runs as the `postgres` account the
Debian package creates (the data dir is handed to it)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def bin_dir() -> Path | None:
    """Debian's PostgreSQL binaries (the newest major version installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One server; `url(db)` gives a SQLAlchemy URL, `create_db()` a fresh database.

    By default it trades durability for speed (fsync, synchronous_commit and full_page_writes
    off: a test server). `durable=True` runs it with PostgreSQL's defaults for those (fsync,
    synchronous_commit and full_page_writes on), as a production server would: for benchmarks."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        found = bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed: run scripts/install-test-deps.sh "
                               "(it installs Debian's postgresql package)")
        self.bin = found
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="proofwatch-pg-"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user = "proofwatch"
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
            self.data.mkdir()
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
            self.log.touch()
            os.chown(self.log, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._as, str(self.bin / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
                               f"\n{self.log.read_text(errors='replace')[-800:] if self.log.exists() else ''}")

    def start(self) -> None:
        """Start (or restart) the server on its port; returns once it accepts connections."""
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                "-c max_connections=200")
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "30", "start")

    def stop(self) -> None:
        """Stop the server (fast: open connections are cut, as in an outage)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{db}"

    def create_db(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
