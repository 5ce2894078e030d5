"""Getting findings to Slack exactly once: claims, attempt marks, posted/failed marks, bursts.

A post is claimed with a conditional UPDATE before it is sent, so of several posters at most
one sends it; a claim whose holder died expires after its lease. The attempt mark, set just
before chat.postMessage, tells the next poster that an earlier post may have landed. A burst
of findings gets one summary message whose thread its alerts go to: the `bursts` row exists
before the summary is posted, so a restarted poster finishes the same thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import Connection

from bot.store import findings
from bot.store.engine import Database, aware, utcnow
from bot.store.schema import BURST_LOCK, bursts, findings_table
from bot.stored import FAILED, PENDING, POSTED, SKIPPED, Burst, StoredFinding


# -- alerts ---------------------------------------------------------------------------------
def pending(db: Database, limit: int = 100, now: datetime | None = None) -> list[StoredFinding]:
    """Findings awaiting a post and not claimed by a live poster, oldest event first."""
    with db.tx() as conn:
        rows = conn.execute(
            select(findings_table)
            .where(_claimable(now or utcnow()))
            .order_by(findings_table.c.event_time.asc(), findings_table.c.event_id)
            .limit(limit)
        )
        return [findings.stored(r._mapping) for r in rows]


def claim(
    db: Database, event_id: str, owner: str, lease: timedelta, now: datetime | None = None
) -> StoredFinding | None:
    """Take one pending finding for posting; returns it as it stands once claimed. A
    conditional UPDATE: of two processes at most one wins, and a claim whose holder died
    expires after `lease`."""
    stamp = now or utcnow()
    with db.tx() as conn:
        result = conn.execute(
            update(findings_table)
            .where(findings_table.c.event_id == event_id, _claimable(stamp))
            .values(claimed_by=owner, claimed_until=stamp + lease)
        )
        if result.rowcount != 1:
            return None
        return findings.read(conn, event_id)


def mark_attempt(
    db: Database, event_id: str, thread_ts: str | None, now: datetime | None = None
) -> None:
    """Record, before chat.postMessage is sent, that a post may be about to land (and in
    which thread). The earliest attempt is kept: reconciliation searches from there."""
    with db.tx() as conn:
        conn.execute(
            update(findings_table)
            .where(findings_table.c.event_id == event_id)
            .values(
                post_attempted_at=func.coalesce(
                    findings_table.c.post_attempted_at, now or utcnow()
                ),
                thread_ts=thread_ts,
            )
        )


def mark_posted(
    db: Database,
    event_id: str,
    channel: str,
    ts: str,
    thread_ts: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the Slack message of a finding; False when it was already marked posted
    (then the first `ts` stands)."""
    with db.tx() as conn:
        result = conn.execute(
            update(findings_table)
            .where(
                findings_table.c.event_id == event_id,
                findings_table.c.post_state != POSTED,
            )
            .values(
                post_state=POSTED,
                channel=channel,
                ts=ts,
                thread_ts=thread_ts,
                posted_at=now or utcnow(),
                claimed_by=None,
                claimed_until=None,
                post_error=None,
                post_attempts=findings_table.c.post_attempts + 1,
            )
        )
        return bool(result.rowcount == 1)


def mark_post_failed(db: Database, event_id: str, error: str, *, maybe_posted: bool) -> None:
    """Release the claim so the next cycle (of any process) retries the post.
    `maybe_posted` is False only when Slack said no (nothing can have landed); otherwise
    the attempt mark stays and the next poster looks in the channel before posting."""
    values: dict[str, Any] = {
        "claimed_by": None,
        "claimed_until": None,
        "post_error": error[:500],
        "post_attempts": findings_table.c.post_attempts + 1,
    }
    if not maybe_posted:
        values["post_attempted_at"] = None
    with db.tx() as conn:
        conn.execute(
            update(findings_table).where(findings_table.c.event_id == event_id).values(**values)
        )


def pending_count(db: Database) -> int:
    with db.tx() as conn:
        return int(
            conn.execute(
                select(func.count()).where(findings_table.c.post_state == PENDING)
            ).scalar_one()
        )


def _claimable(stamp: datetime) -> Any:
    return and_(
        findings_table.c.post_state == PENDING,
        or_(findings_table.c.claimed_until.is_(None), findings_table.c.claimed_until < stamp),
    )


# -- burst summaries ------------------------------------------------------------------------
def open_burst(db: Database, channel: str) -> Burst | None:
    """The burst of this channel that still has findings to post, if any."""
    with db.tx() as conn:
        return _open_burst(conn, channel)


def join_burst(
    db: Database,
    new_id: str,
    channel: str,
    event_ids: Sequence[str],
    now: datetime | None = None,
) -> tuple[Burst, bool]:
    """Put pending findings under the channel's open burst, or under a new one when none
    is open: one summary per burst even when two posters get here together. Returns the
    burst and whether findings joined one whose summary is already posted."""
    stamp = now or utcnow()
    with db.tx() as conn:
        if conn.dialect.name == "postgresql":
            # SQLite's BEGIN IMMEDIATE already serialises this check-then-insert.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BURST_LOCK})
        burst = _open_burst(conn, channel)
        if burst is None:
            burst = Burst(new_id, channel, stamp, PENDING, None, None)
            conn.execute(
                bursts.insert().values(id=new_id, channel=channel, created_at=stamp, state=PENDING)
            )
        joined = 0
        for i in range(0, len(event_ids), findings.CHUNK):
            result = conn.execute(
                update(findings_table)
                .where(
                    findings_table.c.event_id.in_(list(event_ids[i : i + findings.CHUNK])),
                    findings_table.c.burst_id.is_(None),
                    findings_table.c.post_state == PENDING,
                )
                .values(burst_id=burst.id)
            )
            joined += result.rowcount
    return burst, bool(joined and burst.ts)


def burst_findings(db: Database, burst_id: str) -> list[StoredFinding]:
    with db.tx() as conn:
        rows = conn.execute(
            select(findings_table)
            .where(findings_table.c.burst_id == burst_id)
            .order_by(findings_table.c.event_time.asc(), findings_table.c.event_id)
        )
        return [findings.stored(r._mapping) for r in rows]


def get_burst(db: Database, burst_id: str) -> Burst | None:
    with db.tx() as conn:
        return _read_burst(conn, burst_id)


def claim_burst(
    db: Database, burst_id: str, owner: str, lease: timedelta, now: datetime | None = None
) -> bool:
    """Take the posting of a burst's summary (see `claim`); False when another live poster
    has it or it is already posted."""
    stamp = now or utcnow()
    with db.tx() as conn:
        result = conn.execute(
            update(bursts)
            .where(
                bursts.c.id == burst_id,
                bursts.c.ts.is_(None),
                bursts.c.state == PENDING,
                or_(
                    bursts.c.claimed_until.is_(None),
                    bursts.c.claimed_until < stamp,
                    bursts.c.claimed_by == owner,
                ),
            )
            .values(claimed_by=owner, claimed_until=stamp + lease)
        )
        return bool(result.rowcount == 1)


def mark_burst_attempt(db: Database, burst_id: str, now: datetime | None = None) -> None:
    with db.tx() as conn:
        conn.execute(
            update(bursts)
            .where(bursts.c.id == burst_id)
            .values(attempted_at=func.coalesce(bursts.c.attempted_at, now or utcnow()))
        )


def mark_burst_posted(db: Database, burst_id: str, ts: str) -> Burst | None:
    """Record the summary's ts; the first one recorded stands."""
    with db.tx() as conn:
        conn.execute(
            update(bursts)
            .where(bursts.c.id == burst_id, bursts.c.ts.is_(None))
            .values(ts=ts, state=POSTED)
        )
        return _read_burst(conn, burst_id)


def mark_burst_failed(db: Database, burst_id: str) -> None:
    """The summary could not be posted: its alerts go to the channel top level."""
    with db.tx() as conn:
        conn.execute(
            update(bursts)
            .where(bursts.c.id == burst_id, bursts.c.ts.is_(None))
            .values(state=FAILED)
        )


def _open_burst(conn: Connection, channel: str) -> Burst | None:
    row = conn.execute(
        select(bursts)
        .where(
            bursts.c.channel == channel,
            bursts.c.state != FAILED,
            select(findings_table.c.event_id)
            .where(
                findings_table.c.burst_id == bursts.c.id,
                findings_table.c.post_state == PENDING,
            )
            .exists(),
        )
        .order_by(bursts.c.created_at)
        .limit(1)
    ).first()
    return _burst(row) if row else None


def _read_burst(conn: Connection, burst_id: str) -> Burst | None:
    row = conn.execute(select(bursts).where(bursts.c.id == burst_id)).first()
    return _burst(row) if row else None


def _burst(row: Any) -> Burst:
    return Burst(
        row.id,
        row.channel,
        aware(row.created_at) or utcnow(),
        row.state,
        aware(row.attempted_at),
        row.ts,
    )


def skip(db: Database, event_id: str, why: str) -> bool:
    """Never post a finding still waiting for its post (a snooze covers it): it stays stored,
    visible to hunts and the digest, with `why` in its post error."""
    with db.tx() as conn:
        result = conn.execute(
            update(findings_table)
            .where(
                findings_table.c.event_id == event_id,
                findings_table.c.post_state.in_((PENDING, FAILED)),
                findings_table.c.post_attempted_at.is_(None),
            )
            .values(post_state=SKIPPED, post_error=why[:500], claimed_by=None, claimed_until=None)
        )
        return result.rowcount == 1
