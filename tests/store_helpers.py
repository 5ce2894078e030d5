"""What production code does with the store in more than one call, for the store tests:
claim the waiting findings as a poster does, and read who holds a lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.store import Store, StoredFinding, leases

CLAIM_LEASE = timedelta(minutes=2)


def claim_waiting(
    store: Store,
    owner: str,
    limit: int = 100,
    lease: timedelta = CLAIM_LEASE,
    now: datetime | None = None,
) -> list[StoredFinding]:
    """What a poster does each cycle (Poster.deliver_pending): list the waiting findings,
    then claim each one; returns the ones it won."""
    claimed = (store.claim(f.event_id, owner, lease, now) for f in store.pending(limit, now))
    return [f for f in claimed if f is not None]


def lease_holder(store: Store, name: str, now: datetime | None = None) -> str | None:
    """Who holds the lease `name` at `now`, read from the `leases` table; None when nobody
    does or the lease has expired."""
    stamp = now or datetime.now(UTC)
    with store.engine.connect() as conn:
        row = conn.execute(
            select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)
        ).first()
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    return None if expires < stamp else str(row.holder)
