"""The connection to the database and the few helpers every part of the store shares.

`Database` makes the engine on first use (SQLite: busy timeout, WAL, BEGIN IMMEDIATE and a
connection per transaction; PostgreSQL: a small pre-pinged pool) and opens transactions.
`insert_ignore` is the one dialect-specific statement (`ON CONFLICT DO NOTHING`); `aware`
and `utcnow` keep every timestamp in UTC.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Database:
    """One database URL, its engine (made on first use) and its transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A transaction, committed when the block ends, rolled back when it raises."""
        with self.engine.begin() as conn:
            yield conn


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    # NullPool: a connection per transaction, so threads never share a SQLite handle.
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")  # first: the WAL switch may meet a lock
        for attempt in range(50):
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                # Several processes opening a new file at once: switching the journal mode
                # can be refused as locked without the busy handler being asked.
                if attempt == 49:
                    raise
                time.sleep(0.05)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        dbapi_conn.isolation_level = None  # the "begin" listener below issues BEGIN itself

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so read-then-write transactions in
        # two processes serialise instead of failing with "database is locked".
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT the rows, leaving alone any whose key is already there."""
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {name}")
