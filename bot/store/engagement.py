"""The people behind findings, the questions put to them, containment actions and snoozes.

Every change is a compare-and-set or an insert-once, so replicas and replayed Slack requests
never ask twice, answer twice, escalate twice or snooze twice; each change that happened is
appended to `audit_log` in the same transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, fields, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from bot.store.engine import Database, aware, insert_ignore, utcnow
from bot.store.schema import audit_log, key_actions, owner_questions, snoozes, triage_log
from bot.stored import (
    ASKED,
    DENIED,
    AuditEntry,
    Engagement,
    KeyAction,
    Snooze,
)

T = TypeVar("T")

KEYHUNT = "keyhunt"  # the audit log's user for what keyhunt itself did (a timeout)


def _from_row(kind: type[T], row: Any) -> T:
    """A stored dataclass from a row whose columns carry its field names (times made aware:
    SQLite hands them back naive)."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    found = {k: aware(v) if isinstance(v, datetime) else v for k, v in row.items() if k in names}
    return kind(**found)


def _columns(item: Any, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stored dataclass as the values of its row."""
    return {k: v for k, v in asdict(item).items() if k not in leave_out}


def audit(
    conn: Connection,
    user_id: str,
    action: str,
    event_id: str | None,
    detail: str | None,
    at: datetime,
) -> None:
    conn.execute(
        audit_log.insert().values(
            at=at, user_id=user_id, action=action, event_id=event_id, detail=detail
        )
    )


# -- people and questions ----------------------------------------------------------------
def read(conn: Connection, event_id: str) -> Engagement | None:
    row = conn.execute(
        select(owner_questions).where(owner_questions.c.event_id == event_id)
    ).first()
    action = conn.execute(
        select(key_actions)
        .where(key_actions.c.event_id == event_id)
        .order_by(key_actions.c.id.desc())
        .limit(1)
    ).first()
    latest = _from_row(KeyAction, action._mapping) if action else None
    snoozed = conn.execute(
        select(snoozes)
        .where(snoozes.c.event_id == event_id, snoozes.c.removed_at.is_(None))
        .order_by(snoozes.c.created_at.desc())
        .limit(1)
    ).first()
    snooze = _from_row(Snooze, snoozed._mapping) if snoozed else None
    if row is None:
        if latest is None and snooze is None:
            return None
        # No people resolved (state ""): only what was done to the key, or a snooze.
        return Engagement(None, "", None, "", "", key_action=latest, snooze=snooze)
    people = _from_row(Engagement, row._mapping)
    return replace(
        people,
        actor_via=people.actor_via or "",
        target_via=people.target_via or "",
        key_action=latest,
        snooze=snooze,
    )


def has_people(db: Database, event_id: str) -> bool:
    with db.tx() as conn:
        found = conn.execute(
            select(owner_questions.c.event_id).where(owner_questions.c.event_id == event_id)
        ).first()
        return found is not None


def record_people(
    db: Database,
    event_id: str,
    people: Engagement,
    now: datetime,
) -> bool:
    """Store who the finding's people are, and whether their question is to be asked (state
    ASKED with its deadline, before the DM is sent: a DM lost to a crash then escalates at
    the deadline rather than being forgotten). True for the one writer that inserted it:
    only that one sends the DM."""
    with db.tx() as conn:
        insert_ignore(
            conn,
            owner_questions,
            [
                {
                    "event_id": event_id,
                    "actor_user": people.actor_user,
                    "actor_via": people.actor_via,
                    "target_user": people.target_user,
                    "target_via": people.target_via,
                    "resolved_at": now,
                    "state": people.state,
                    "deadline": people.deadline,
                    "asked_at": now if people.state == ASKED else None,
                    "reason": people.reason,
                }
            ],
        )
        mine = conn.execute(
            select(owner_questions.c.resolved_at).where(owner_questions.c.event_id == event_id)
        ).scalar()
        inserted = aware(mine) == now
        if inserted and people.state == ASKED:
            audit(conn, KEYHUNT, "asked", event_id, f"<@{people.actor_user}>", now)
    return inserted


def set_dm(db: Database, event_id: str, channel: str, ts: str) -> None:
    with db.tx() as conn:
        conn.execute(
            update(owner_questions)
            .where(owner_questions.c.event_id == event_id)
            .values(dm_channel=channel, dm_ts=ts)
        )


def not_asked(db: Database, event_id: str, why: str) -> None:
    """The DM could not be sent: the question is withdrawn (never escalated for that)."""
    with db.tx() as conn:
        conn.execute(
            update(owner_questions)
            .where(owner_questions.c.event_id == event_id, owner_questions.c.state == ASKED)
            .values(state="not_asked", reason=why[:500], deadline=None)
        )


def answer(
    db: Database,
    event_id: str,
    user_id: str,
    state: str,
    reason: str | None,
    now: datetime,
) -> bool:
    """The asked person's answer, taken once: only while the question is open, only from the
    person it was put to. True when this call recorded it."""
    with db.tx() as conn:
        taken = _move(
            conn,
            event_id,
            (owner_questions.c.state == ASKED, owner_questions.c.actor_user == user_id),
            state=state,
            answered_at=now,
            reason=reason,
        )
        if taken:
            audit(conn, user_id, f"answered_{state}", event_id, reason, now)
    return taken


def _move(conn: Connection, event_id: str, only_if: tuple[Any, ...], **values: Any) -> bool:
    """A compare-and-set on one question: `values` written only where `only_if` holds."""
    result = conn.execute(
        update(owner_questions)
        .where(owner_questions.c.event_id == event_id, *only_if)
        .values(**values)
    )
    return bool(result.rowcount == 1)


def time_out(db: Database, event_id: str, now: datetime) -> bool:
    with db.tx() as conn:
        due = (owner_questions.c.state == ASKED, owner_questions.c.deadline <= now)
        moved = _move(conn, event_id, due, state="timed_out")
        if moved:
            audit(conn, KEYHUNT, "timed_out", event_id, None, now)
    return moved


def due_escalations(db: Database, now: datetime) -> list[str]:
    """Questions whose deadline passed unanswered, or answered No, not yet escalated."""
    with db.tx() as conn:
        rows = conn.execute(
            select(owner_questions.c.event_id).where(
                owner_questions.c.escalated_at.is_(None),
                or_(
                    and_(owner_questions.c.state == ASKED, owner_questions.c.deadline <= now),
                    owner_questions.c.state.in_((DENIED, "timed_out")),
                ),
            )
        )
        return [r[0] for r in rows]


def claim_escalation(db: Database, event_id: str, why: str, now: datetime) -> bool:
    """Escalate once: True for the one caller that set the mark."""
    with db.tx() as conn:
        result = conn.execute(
            update(owner_questions)
            .where(owner_questions.c.event_id == event_id, owner_questions.c.escalated_at.is_(None))
            .values(escalated_at=now, escalation=why[:500])
        )
        if result.rowcount != 1:
            return False
        audit(conn, KEYHUNT, "escalated", event_id, why, now)
    return True


# -- containment ---------------------------------------------------------------------------


def add_key_action(db: Database, event_id: str, action: KeyAction) -> None:
    with db.tx() as conn:
        conn.execute(key_actions.insert().values(event_id=event_id, **_columns(action)))
        # A second key is keyhunt's observation, not the deactivating person's act.
        who = KEYHUNT if action.action == "second_key" else action.user_id
        audit(conn, who, action.action, event_id, action.access_key_id, action.at)


def watches(db: Database, now: datetime) -> list[tuple[str, KeyAction]]:
    """(event ID, deactivation) whose second-key watch still runs."""
    with db.tx() as conn:
        rows = conn.execute(
            select(key_actions).where(
                key_actions.c.action == "deactivate", key_actions.c.watch_until > now
            )
        )
        return [(r.event_id, _from_row(KeyAction, r._mapping)) for r in rows]


# -- snoozes -------------------------------------------------------------------------------


def add_snooze(db: Database, snooze: Snooze) -> Snooze:
    """Store a snooze under a fresh short ID (the one `/keyhunt unsnooze` takes)."""
    with db.tx() as conn:
        ident = "s" + secrets.token_hex(3)
        made = replace(snooze, id=ident)
        conn.execute(snoozes.insert().values(**_columns(made)))
        detail = f"{made.id} until {made.expires_at.isoformat()}: {made.reason}"
        audit(conn, made.created_by, "snoozed", made.event_id, detail, made.created_at)
    return made


def remove_snooze(db: Database, ident: str, user_id: str, now: datetime) -> Snooze | None:
    """Remove a snooze still in force; None when there is none by that ID."""
    with db.tx() as conn:
        result = conn.execute(
            update(snoozes)
            .where(
                snoozes.c.id == ident, snoozes.c.removed_at.is_(None), snoozes.c.expires_at > now
            )
            .values(removed_by=user_id, removed_at=now)
        )
        if result.rowcount != 1:
            return None
        row = conn.execute(select(snoozes).where(snoozes.c.id == ident)).first()
        audit(conn, user_id, "unsnoozed", row.event_id if row else None, ident, now)
        return _from_row(Snooze, row._mapping) if row else None


def active_snoozes(db: Database, now: datetime) -> list[Snooze]:
    with db.tx() as conn:
        rows = conn.execute(
            select(snoozes)
            .where(snoozes.c.removed_at.is_(None), snoozes.c.expires_at > now)
            .order_by(snoozes.c.expires_at)
        )
        return [_from_row(Snooze, r._mapping) for r in rows]


def expired_snoozes(db: Database, start: datetime, end: datetime) -> list[Snooze]:
    """Snoozes that ran out on their own in [start, end)."""
    with db.tx() as conn:
        rows = conn.execute(
            select(snoozes)
            .where(
                snoozes.c.removed_at.is_(None),
                snoozes.c.expires_at >= start,
                snoozes.c.expires_at < end,
            )
            .order_by(snoozes.c.expires_at)
        )
        return [_from_row(Snooze, r._mapping) for r in rows]


# -- the audit trail -----------------------------------------------------------------------
def audit_since(db: Database, start: datetime) -> list[AuditEntry]:
    """Every decision since `start`, oldest first: triage clicks and everything else."""
    with db.tx() as conn:
        entries = [
            AuditEntry(aware(r.at) or utcnow(), r.user_id, r.action, r.event_id, r.detail)
            for r in conn.execute(select(audit_log).where(audit_log.c.at >= start))
        ]
        entries += [
            AuditEntry(
                aware(r.at) or utcnow(),
                r.user_id,
                f"triage_{r.status}",
                r.event_id,
                f"from {r.previous_status}",
            )
            for r in conn.execute(select(triage_log).where(triage_log.c.at >= start))
        ]
    return sorted(entries, key=lambda e: e.at)


def release_escalation(db: Database, event_id: str) -> None:
    """The escalation could not be posted: unmark it, so the next cycle posts it."""
    with db.tx() as conn:
        conn.execute(
            update(owner_questions)
            .where(owner_questions.c.event_id == event_id)
            .values(escalated_at=None, escalation=None)
        )
