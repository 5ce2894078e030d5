"""Triage decisions: moving a finding's status, and the audit log of every move.

A decision is a compare-and-set on the status, so of concurrent clicks one transition wins
and none is lost; only the transitions of bot.triage are made. Each move that happened is
appended to `triage_log`; a refused or repeated one changes and logs nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from bot.store.engine import Database, aware, utcnow
from bot.store.schema import findings_table, triage_log
from bot.stored import Decision
from bot.triage import CONFIRMED_BY_ACTOR, OPEN, STATUSES, allowed


def decide(
    db: Database,
    event_id: str,
    status: str,
    user_id: str,
    now: datetime | None = None,
    expected: str | None = None,
) -> Decision | None:
    """Move a finding to `status`, appending to the audit log. Only the transitions of
    bot.triage are made, and with `expected` only from that state (the one the clicked
    message showed). Compare-and-set: of concurrent clicks one transition wins; a
    repeated, replayed or refused click changes nothing, logs nothing, and its Decision
    (changed=False) carries the status as it stands and who set it."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    stamp = now or utcnow()
    with db.tx() as conn:
        row = conn.execute(
            select(
                findings_table.c.status,
                findings_table.c.decided_by,
                findings_table.c.decided_at,
            ).where(findings_table.c.event_id == event_id)
        ).first()
        if row is None:
            return None
        previous = row[0]
        stale = expected is not None and previous != expected
        if previous == status or stale or not allowed(previous, status):
            return Decision(
                event_id,
                previous,
                previous,
                row[1] or user_id,
                aware(row[2]) or stamp,
                changed=False,
            )
        values: dict[str, Any] = {"status": status, "decided_by": user_id, "decided_at": stamp}
        result = conn.execute(
            update(findings_table)
            .where(findings_table.c.event_id == event_id, findings_table.c.status == previous)
            .values(**values)
        )
        if result.rowcount != 1:  # somebody else decided in between; theirs stands
            current = conn.execute(
                select(findings_table.c.status).where(findings_table.c.event_id == event_id)
            ).scalar()
            return Decision(
                event_id, str(current or status), previous, user_id, stamp, changed=False
            )
        _log(conn, event_id, status, previous, user_id, stamp)
    return Decision(event_id, status, previous, user_id, stamp, changed=True)


def _log(
    conn: Connection, event_id: str, status: str, previous: str, user_id: str, at: datetime
) -> None:
    """Append a move that happened to the audit log, in the move's own transaction."""
    conn.execute(
        triage_log.insert().values(
            event_id=event_id, status=status, previous_status=previous, user_id=user_id, at=at
        )
    )


def history(db: Database, event_id: str) -> list[Decision]:
    """The decisions made on a finding, oldest first."""
    with db.tx() as conn:
        rows = conn.execute(
            select(triage_log).where(triage_log.c.event_id == event_id).order_by(triage_log.c.id)
        )
        return [
            Decision(
                r.event_id,
                r.status,
                r.previous_status,
                r.user_id,
                aware(r.at) or utcnow(),
                changed=True,
            )
            for r in rows
        ]


def confirm_by_actor(db: Database, event_id: str, user_id: str, now: datetime) -> bool:
    """The actor answered "Yes, this was me": an open finding becomes confirmed_by_actor,
    logged like a click. A finding someone already triaged keeps their decision."""
    with db.tx() as conn:
        result = conn.execute(
            update(findings_table)
            .where(findings_table.c.event_id == event_id, findings_table.c.status == OPEN)
            .values(status=CONFIRMED_BY_ACTOR, decided_by=user_id, decided_at=now)
        )
        if result.rowcount != 1:
            return False
        _log(conn, event_id, CONFIRMED_BY_ACTOR, OPEN, user_id, now)
    return True
