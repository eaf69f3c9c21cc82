"""Fresh databases for benchmark runs, read with plain SQL (not a benchmark itself).

A temporary SQLite file, or a PostgreSQL database created and dropped on the
server of a given URL; and a DB-API connection to it (sqlite3 / psycopg), so
a benchmark polls job counts without Django in its own process. Migrating
runs Django, so it is bench/common.py's (`migrate`, `migrate_here`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass
class BenchDatabase:
    """A database made for one benchmark run, and a plain DB-API connection
    to read it (no Django in the benchmark process)."""

    url: str
    engine: str  # "sqlite" or "postgresql"
    _connection: Any = None

    def connect(self) -> Any:
        if self._connection is None:
            if self.engine == "sqlite":
                path = urlsplit(self.url).path
                self._connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            else:
                import psycopg

                self._connection = psycopg.connect(self.url, autocommit=True)
        return self._connection

    def rows(self, sql: str) -> list[tuple]:
        cursor = self.connect().cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def scalar(self, sql: str) -> Any:
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def job_counts(self) -> dict[str, int]:
        """Jobs by state (queued, running, retrying, succeeded, failed, cancelled)."""
        return {
            state: int(n)
            for state, n in self.rows("SELECT state, COUNT(*) FROM jobs_job GROUP BY state")
        }

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _pg_admin_connect(server_url: str, name: str) -> Any:
    import psycopg

    # Connect to the URL's own database, or to `postgres` if it names ours.
    current = urlsplit(server_url).path.lstrip("/")
    admin_url = _with_database(server_url, "postgres" if current in ("", name) else current)
    return psycopg.connect(admin_url, autocommit=True)


@contextlib.contextmanager
def fresh_database(
    workdir: Path, database_url: str | None = None, *, name: str = "flexdash_bench"
) -> Iterator[BenchDatabase]:
    """A new, empty database for one run, removed afterwards.

    Default: a SQLite file in `workdir`. With a postgres:// URL: database
    `name` is dropped (if left over), created on that server, and dropped at
    the end (WITH (FORCE), so a stray connection cannot keep it)."""
    if not database_url or database_url.startswith("sqlite"):
        path = workdir / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        database = BenchDatabase(url=f"sqlite:///{path}", engine="sqlite")
        try:
            yield database
        finally:
            database.close()
        return
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise ValueError(f"unsupported database URL {database_url!r} (sqlite or postgres)")
    from psycopg import sql

    with _pg_admin_connect(database_url, name) as admin:
        admin.execute(_drop(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = BenchDatabase(url=_with_database(database_url, name), engine="postgresql")
    try:
        yield database
    finally:
        database.close()
        with _pg_admin_connect(database_url, name) as admin:
            admin.execute(_drop(name))


def _drop(name: str) -> Any:
    from psycopg import sql

    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
