"""Named leases: one poller among replicas, and the store's reachability check.

A lease is a row with a holder and an expiry. Taking it is a conditional UPDATE (ours, or
expired) falling back to an insert that ignores a conflict, so of replicas racing for a free
lease exactly one holds it; one whose holder died is free once it expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from bot.store.engine import Database, insert_ignore, utcnow
from bot.store.schema import leases


def acquire_lease(
    db: Database, name: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take or renew `name` for `holder`; True when held. An expired lease is free."""
    stamp = now or utcnow()
    with db.tx() as conn:
        result = conn.execute(
            update(leases)
            .where(
                leases.c.name == name,
                or_(leases.c.holder == holder, leases.c.expires_at < stamp),
            )
            .values(holder=holder, expires_at=stamp + ttl)
        )
        if result.rowcount == 1:
            return True
        insert_ignore(conn, leases, [{"name": name, "holder": holder, "expires_at": stamp + ttl}])
        current = conn.execute(select(leases.c.holder).where(leases.c.name == name)).scalar()
        return bool(current == holder)


def release_lease(db: Database, name: str, holder: str) -> None:
    """Give `name` up, if `holder` still holds it."""
    with db.tx() as conn:
        conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))


def ping(db: Database) -> None:
    """Reachable and writable: a write in a transaction that is rolled back."""
    with db.engine.connect() as conn:
        trans = conn.begin()
        conn.execute(leases.insert().values(name="__ping__", holder="check", expires_at=utcnow()))
        trans.rollback()
