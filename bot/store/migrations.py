"""Creating the schema, or upgrading an older one in place.

Safe to run from several replicas at once: on PostgreSQL an advisory lock serialises it, on
SQLite BEGIN IMMEDIATE does. A database newer than this keyhunt is refused, never touched.
"""

from __future__ import annotations

from sqlalchemy import Table, inspect, select, text, update
from sqlalchemy.engine import Connection

from bot.store.engine import Database, insert_ignore
from bot.store.schema import ADDED_COLUMNS, MIGRATION_LOCK, SCHEMA_VERSION, metadata, schema_info


def migrate(db: Database) -> None:
    """Create the schema, or upgrade an older one, idempotently and safely in parallel."""
    with db.tx() as conn:
        if conn.dialect.name == "postgresql":
            # create_all is check-then-create; replicas starting together would race.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        metadata.create_all(conn, checkfirst=True)
        current = conn.execute(select(schema_info.c.version)).scalar()
        if current is None:
            insert_ignore(conn, schema_info, [{"id": 1, "version": SCHEMA_VERSION}])
        elif current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema {current} is newer than this keyhunt ({SCHEMA_VERSION})"
            )
        elif current < SCHEMA_VERSION:
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for table, name in ADDED_COLUMNS.get(version, []):
                    add_column(conn, table, name)
            conn.execute(update(schema_info).values(version=SCHEMA_VERSION))


def add_column(conn: Connection, table: Table, name: str) -> None:
    """ALTER TABLE ... ADD COLUMN for a column of the current schema, if it is missing."""
    existing = {c["name"] for c in inspect(conn).get_columns(table.name)}
    if name in existing:
        return
    column = table.c[name]
    ddl = f"ALTER TABLE {table.name} ADD COLUMN {name} {column.type.compile(conn.dialect)}"
    if column.server_default is not None:
        ddl += f" NOT NULL DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
    conn.execute(text(ddl))  # names and types are ours, never user input
    if column.index:
        conn.execute(
            text(f"CREATE INDEX IF NOT EXISTS ix_{table.name}_{name} ON {table.name} ({name})")
        )
