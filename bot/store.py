"""The state store: findings, Slack messages, triage audit log, poll checkpoints, leases.

SQLAlchemy Core over SQLite (default, WAL mode) or PostgreSQL. Every statement is
parameterised. Concurrency is handled in the database, not in memory: a finding is inserted
once (`ON CONFLICT DO NOTHING`), a post is claimed with a conditional UPDATE before it is sent,
and a triage decision is a compare-and-set on the status, so several processes never
double-post or lose a decision.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import NullPool

from bot.settings import Settings
from bot.triage import INVESTIGATING, OPEN, STATUSES, allowed
from checks.model import Finding, Target
from checks.timeutil import isoformat_z

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
MIGRATION_LOCK = 0x6B657968  # "keyh": the advisory lock that serialises schema changes
BURST_LOCK = 0x6B657962  # "keyb": serialises the start of a burst summary
PENDING, POSTED, SKIPPED, FAILED = "pending", "posted", "skipped", "failed"

metadata = MetaData()

findings_table = Table(
    "findings",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("account_id", String(32)),
    Column("region", String(32)),
    Column("event_time", DateTime(timezone=True), nullable=False, index=True),
    Column("severity", String(16), nullable=False),
    Column("record", Text, nullable=False),  # CONTRACT fields as JSON, plus enrichment
    Column("status", String(32), nullable=False, default=OPEN),
    Column("assignee", String(32)),
    Column("decided_by", String(32)),
    Column("decided_at", DateTime(timezone=True)),
    Column("stored_at", DateTime(timezone=True), nullable=False, index=True),
    Column("post_state", String(16), nullable=False, index=True),
    Column("post_attempts", Integer, nullable=False, default=0),
    Column("post_error", Text),
    Column("claimed_by", String(64)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("channel", String(32)),
    Column("ts", String(32)),
    Column("thread_ts", String(32)),
    Column("posted_at", DateTime(timezone=True)),
    # Set just before chat.postMessage is sent, cleared when Slack said no: while set, an
    # earlier attempt may have landed, so the next poster looks in the channel first.
    Column("post_attempted_at", DateTime(timezone=True)),
    Column("burst_id", String(64), index=True),
)

# One burst summary per burst, whatever crashes: the row exists before the summary is posted
# and its findings are assigned to it, so a restarted poster finishes the same thread.
bursts = Table(
    "bursts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),  # pending, posted, failed
    Column("attempted_at", DateTime(timezone=True)),
    Column("ts", String(32)),
    Column("claimed_by", String(64)),
    Column("claimed_until", DateTime(timezone=True)),
)

triage_log = Table(
    "triage_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("previous_status", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("account_id", String(32), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("checkpoint", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_error_at", DateTime(timezone=True)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
)

poll_runs = Table(
    "poll_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),
    Column("finished_at", DateTime(timezone=True)),
    Column("ok", Boolean, nullable=False),
    Column("complete", Boolean, nullable=False),
    Column("new_findings", Integer, nullable=False, default=0),
    Column("error", Text),
    # CloudTrail records whose JSON could not be read at all (counted, never silently lost)
    Column("unreadable", Integer, nullable=False, default=0, server_default="0"),
)

# Columns added after schema 1, by the version that added them: `migrate` adds them to an
# older database in place.
ADDED_COLUMNS: dict[int, list[tuple[Table, str]]] = {
    2: [
        (findings_table, "post_attempted_at"),
        (findings_table, "burst_id"),
        (poll_runs, "unreadable"),
    ],
}

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

schema_info = Table(
    "keyhunt_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)


@dataclass(frozen=True)
class StoredFinding:
    event_id: str
    record: dict[str, Any]
    status: str
    assignee: str | None
    decided_by: str | None
    decided_at: datetime | None
    stored_at: datetime
    post_state: str
    post_attempts: int
    channel: str | None
    ts: str | None
    thread_ts: str | None
    post_attempted_at: datetime | None = None
    burst_id: str | None = None

    @property
    def severity(self) -> str:
        return str(self.record["severity"])

    @property
    def event_time(self) -> datetime:
        return datetime.fromisoformat(str(self.record["event_time"]).replace("Z", "+00:00"))


@dataclass(frozen=True)
class Decision:
    event_id: str
    status: str
    previous_status: str
    user_id: str
    at: datetime
    changed: bool


@dataclass(frozen=True)
class TargetHealth:
    account_id: str
    region: str
    checkpoint: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True)
class PollRun:
    started_at: datetime
    finished_at: datetime | None
    ok: bool
    complete: bool
    new_findings: int
    error: str | None
    unreadable: int = 0


@dataclass(frozen=True)
class Burst:
    id: str
    channel: str
    created_at: datetime
    state: str
    attempted_at: datetime | None
    ts: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = _make_engine(self.url)
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- schema ---------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create the schema, or upgrade an older one, idempotently and safely in parallel."""
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                # create_all is check-then-create; replicas starting together would race.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            metadata.create_all(conn, checkfirst=True)
            current = conn.execute(select(schema_info.c.version)).scalar()
            if current is None:
                _insert_ignore(conn, schema_info, [{"id": 1, "version": SCHEMA_VERSION}])
            elif current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema {current} is newer than this keyhunt ({SCHEMA_VERSION})"
                )
            elif current < SCHEMA_VERSION:
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for table, name in ADDED_COLUMNS.get(version, []):
                        _add_column(conn, table, name)
                conn.execute(update(schema_info).values(version=SCHEMA_VERSION))

    # -- findings -------------------------------------------------------------------------
    def add_findings(self, findings: Sequence[Finding], now: datetime | None = None) -> list[str]:
        """Store new findings; returns the event IDs that were new. Already-stored ones are
        left exactly as they are (their status and Slack message included)."""
        if not findings:
            return []
        stamp = now or _now()
        # A fixed order: two writers inserting overlapping batches then lock rows in the same
        # order and cannot deadlock (PostgreSQL detects the cycle and fails one batch).
        rows = sorted((_finding_row(f, stamp) for f in findings), key=lambda r: r["event_id"])
        try:
            return self._insert_new(rows, stamp)
        except (DBAPIError, StatementError, UnicodeError, ValueError) as exc:
            if len(rows) == 1 and rows[0].get("_degraded"):
                raise
            log.warning("storing %d findings failed (%s); one by one", len(rows), _kind(exc))
        # One record must never hold back the rest (nor the checkpoint): what cannot be
        # stored as it is is stored as a malformed finding, its text made storable.
        new: list[str] = []
        for row in rows:
            try:
                new += self._insert_new([row], stamp)
            except (DBAPIError, StatementError, UnicodeError, ValueError) as exc:
                log.error(
                    "finding %r could not be stored (%s); stored as malformed",
                    _storable(str(row["event_id"])),
                    _kind(exc),
                )
                new += self._insert_new([_degraded_row(row, _kind(exc))], stamp)
        return new

    def _insert_new(self, rows: list[dict[str, Any]], stamp: datetime) -> list[str]:
        ids = [r["event_id"] for r in rows]
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        with self._tx() as conn:
            existing = _existing_ids(conn, ids)
            fresh = [r for r in clean if r["event_id"] not in existing]
            if not fresh:
                return []
            _insert_ignore(conn, findings_table, fresh)
            # Another process may have inserted the same event between the two statements;
            # only rows carrying our stamp are ours.
            mine = conn.execute(
                select(findings_table.c.event_id).where(
                    findings_table.c.event_id.in_([r["event_id"] for r in fresh]),
                    findings_table.c.stored_at == stamp,
                )
            )
            return [row[0] for row in mine]

    def get(self, event_id: str) -> StoredFinding | None:
        with self._tx() as conn:
            row = conn.execute(
                select(findings_table).where(findings_table.c.event_id == event_id)
            ).first()
        return _stored(row._mapping) if row else None

    def statuses(self, event_ids: Sequence[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        chunk = 500  # keep IN lists within every backend's parameter limit
        with self._tx() as conn:
            for i in range(0, len(event_ids), chunk):
                part = list(event_ids[i : i + chunk])
                rows = conn.execute(
                    select(findings_table.c.event_id, findings_table.c.status).where(
                        findings_table.c.event_id.in_(part)
                    )
                )
                result.update({r[0]: r[1] for r in rows})
        return result

    def event_ids_since(self, start: datetime) -> frozenset[str]:
        """IDs of stored findings whose event happened at or after `start`."""
        with self._tx() as conn:
            rows = conn.execute(
                select(findings_table.c.event_id).where(findings_table.c.event_time >= start)
            )
            return frozenset(r[0] for r in rows)

    def findings_between(self, start: datetime, end: datetime) -> list[StoredFinding]:
        """Findings stored in [start, end), newest event first (for digests)."""
        with self._tx() as conn:
            rows = conn.execute(
                select(findings_table)
                .where(findings_table.c.stored_at >= start, findings_table.c.stored_at < end)
                .order_by(findings_table.c.event_time.desc())
            )
            return [_stored(r._mapping) for r in rows]

    def open_findings(self) -> list[StoredFinding]:
        with self._tx() as conn:
            rows = conn.execute(
                select(findings_table)
                .where(findings_table.c.status == OPEN, findings_table.c.post_state != SKIPPED)
                .order_by(findings_table.c.event_time.asc())
            )
            return [_stored(r._mapping) for r in rows]

    # -- posting --------------------------------------------------------------------------
    def pending(self, limit: int = 100, now: datetime | None = None) -> list[StoredFinding]:
        """Findings awaiting a post and not claimed by a live poster, oldest event first."""
        with self._tx() as conn:
            rows = conn.execute(
                select(findings_table)
                .where(_claimable(now or _now()))
                .order_by(findings_table.c.event_time.asc(), findings_table.c.event_id)
                .limit(limit)
            )
            return [_stored(r._mapping) for r in rows]

    def claim(
        self, event_id: str, owner: str, lease: timedelta, now: datetime | None = None
    ) -> StoredFinding | None:
        """Take one pending finding for posting; returns it as it stands once claimed. A
        conditional UPDATE: of two processes at most one wins, and a claim whose holder died
        expires after `lease`."""
        stamp = now or _now()
        with self._tx() as conn:
            result = conn.execute(
                update(findings_table)
                .where(findings_table.c.event_id == event_id, _claimable(stamp))
                .values(claimed_by=owner, claimed_until=stamp + lease)
            )
            if result.rowcount != 1:
                return None
            row = conn.execute(
                select(findings_table).where(findings_table.c.event_id == event_id)
            ).first()
        return _stored(row._mapping) if row else None

    def claim_pending(
        self,
        owner: str,
        limit: int = 100,
        lease: timedelta = timedelta(minutes=2),
        now: datetime | None = None,
    ) -> list[StoredFinding]:
        """Claim up to `limit` pending findings at once (see `claim`)."""
        claimed = (self.claim(f.event_id, owner, lease, now) for f in self.pending(limit, now))
        return [f for f in claimed if f is not None]

    def mark_attempt(
        self, event_id: str, thread_ts: str | None, now: datetime | None = None
    ) -> None:
        """Record, before chat.postMessage is sent, that a post may be about to land (and in
        which thread). The earliest attempt is kept: reconciliation searches from there."""
        with self._tx() as conn:
            conn.execute(
                update(findings_table)
                .where(findings_table.c.event_id == event_id)
                .values(
                    post_attempted_at=func.coalesce(
                        findings_table.c.post_attempted_at, now or _now()
                    ),
                    thread_ts=thread_ts,
                )
            )

    def mark_posted(
        self,
        event_id: str,
        channel: str,
        ts: str,
        thread_ts: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Record the Slack message of a finding; False when it was already marked posted
        (then the first `ts` stands)."""
        with self._tx() as conn:
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
                    posted_at=now or _now(),
                    claimed_by=None,
                    claimed_until=None,
                    post_error=None,
                    post_attempts=findings_table.c.post_attempts + 1,
                )
            )
            return bool(result.rowcount == 1)

    def mark_post_failed(self, event_id: str, error: str, *, maybe_posted: bool = True) -> None:
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
        with self._tx() as conn:
            conn.execute(
                update(findings_table).where(findings_table.c.event_id == event_id).values(**values)
            )

    def pending_count(self) -> int:
        with self._tx() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(findings_table.c.post_state == PENDING)
                ).scalar_one()
            )

    # -- burst summaries ------------------------------------------------------------------
    def open_burst(self, channel: str) -> Burst | None:
        """The burst of this channel that still has findings to post, if any."""
        with self._tx() as conn:
            return _open_burst(conn, channel)

    def join_burst(
        self,
        new_id: str,
        channel: str,
        event_ids: Sequence[str],
        now: datetime | None = None,
    ) -> tuple[Burst, bool]:
        """Put pending findings under the channel's open burst, or under a new one when none
        is open: one summary per burst even when two posters get here together. Returns the
        burst and whether findings joined one whose summary is already posted."""
        stamp = now or _now()
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                # SQLite's BEGIN IMMEDIATE already serialises this check-then-insert.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BURST_LOCK})
            burst = _open_burst(conn, channel)
            if burst is None:
                burst = Burst(new_id, channel, stamp, PENDING, None, None)
                conn.execute(
                    bursts.insert().values(
                        id=new_id, channel=channel, created_at=stamp, state=PENDING
                    )
                )
            joined = 0
            for i in range(0, len(event_ids), 500):
                result = conn.execute(
                    update(findings_table)
                    .where(
                        findings_table.c.event_id.in_(list(event_ids[i : i + 500])),
                        findings_table.c.burst_id.is_(None),
                        findings_table.c.post_state == PENDING,
                    )
                    .values(burst_id=burst.id)
                )
                joined += result.rowcount
        return burst, bool(joined and burst.ts)

    def burst_findings(self, burst_id: str) -> list[StoredFinding]:
        with self._tx() as conn:
            rows = conn.execute(
                select(findings_table)
                .where(findings_table.c.burst_id == burst_id)
                .order_by(findings_table.c.event_time.asc(), findings_table.c.event_id)
            )
            return [_stored(r._mapping) for r in rows]

    def get_burst(self, burst_id: str) -> Burst | None:
        with self._tx() as conn:
            row = conn.execute(select(bursts).where(bursts.c.id == burst_id)).first()
        return _burst(row) if row else None

    def claim_burst(
        self, burst_id: str, owner: str, lease: timedelta, now: datetime | None = None
    ) -> bool:
        """Take the posting of a burst's summary (see `claim`); False when another live poster
        has it or it is already posted."""
        stamp = now or _now()
        with self._tx() as conn:
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

    def mark_burst_attempt(self, burst_id: str, now: datetime | None = None) -> None:
        with self._tx() as conn:
            conn.execute(
                update(bursts)
                .where(bursts.c.id == burst_id)
                .values(attempted_at=func.coalesce(bursts.c.attempted_at, now or _now()))
            )

    def mark_burst_posted(self, burst_id: str, ts: str) -> Burst | None:
        """Record the summary's ts; the first one recorded stands."""
        with self._tx() as conn:
            conn.execute(
                update(bursts)
                .where(bursts.c.id == burst_id, bursts.c.ts.is_(None))
                .values(ts=ts, state=POSTED)
            )
            row = conn.execute(select(bursts).where(bursts.c.id == burst_id)).first()
        return _burst(row) if row else None

    def mark_burst_failed(self, burst_id: str) -> None:
        """The summary could not be posted: its alerts go to the channel top level."""
        with self._tx() as conn:
            conn.execute(
                update(bursts)
                .where(bursts.c.id == burst_id, bursts.c.ts.is_(None))
                .values(state=FAILED)
            )

    # -- triage ---------------------------------------------------------------------------
    def decide(
        self,
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
        stamp = now or _now()
        with self._tx() as conn:
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
                    _aware(row[2]) or stamp,
                    changed=False,
                )
            values: dict[str, Any] = {"status": status, "decided_by": user_id, "decided_at": stamp}
            if status == INVESTIGATING:
                values["assignee"] = user_id
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
            conn.execute(
                triage_log.insert().values(
                    event_id=event_id,
                    status=status,
                    previous_status=previous,
                    user_id=user_id,
                    at=stamp,
                )
            )
        return Decision(event_id, status, previous, user_id, stamp, changed=True)

    def history(self, event_id: str) -> list[Decision]:
        with self._tx() as conn:
            rows = conn.execute(
                select(triage_log)
                .where(triage_log.c.event_id == event_id)
                .order_by(triage_log.c.id)
            )
            return [
                Decision(
                    r.event_id,
                    r.status,
                    r.previous_status,
                    r.user_id,
                    _aware(r.at) or _now(),
                    changed=True,
                )
                for r in rows
            ]

    # -- checkpoints and poll health ------------------------------------------------------
    def checkpoint(self, target: Target) -> datetime | None:
        with self._tx() as conn:
            value = conn.execute(
                select(checkpoints.c.checkpoint).where(
                    checkpoints.c.account_id == target.account_id,
                    checkpoints.c.region == target.region,
                )
            ).scalar()
        return _aware(value)

    def target_succeeded(self, target: Target, checkpoint: datetime, now: datetime) -> None:
        """Move the checkpoint; callers do this only after the window's findings are stored."""
        self._upsert_checkpoint(
            target,
            checkpoint=checkpoint,
            last_success_at=now,
            consecutive_failures=0,
            last_error=None,
        )

    def target_failed(self, target: Target, error: str, now: datetime) -> None:
        with self._tx() as conn:
            row = conn.execute(
                select(checkpoints.c.consecutive_failures).where(
                    checkpoints.c.account_id == target.account_id,
                    checkpoints.c.region == target.region,
                )
            ).first()
        failures = (row[0] if row else 0) + 1
        self._upsert_checkpoint(
            target, last_error=error[:500], last_error_at=now, consecutive_failures=failures
        )

    def _upsert_checkpoint(self, target: Target, **values: Any) -> None:
        key = {"account_id": target.account_id, "region": target.region}
        with self._tx() as conn:
            result = conn.execute(
                update(checkpoints)
                .where(
                    checkpoints.c.account_id == target.account_id,
                    checkpoints.c.region == target.region,
                )
                .values(**values)
            )
            if result.rowcount == 0:
                _insert_ignore(conn, checkpoints, [{**key, "consecutive_failures": 0, **values}])

    def target_health(self) -> list[TargetHealth]:
        with self._tx() as conn:
            rows = conn.execute(
                select(checkpoints).order_by(checkpoints.c.account_id, checkpoints.c.region)
            )
            return [
                TargetHealth(
                    r.account_id,
                    r.region,
                    _aware(r.checkpoint),
                    _aware(r.last_success_at),
                    r.last_error,
                    _aware(r.last_error_at),
                    r.consecutive_failures,
                )
                for r in rows
            ]

    def record_poll(self, run: PollRun) -> None:
        with self._tx() as conn:
            conn.execute(
                poll_runs.insert().values(
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    ok=run.ok,
                    complete=run.complete,
                    new_findings=run.new_findings,
                    error=run.error,
                    unreadable=run.unreadable,
                )
            )

    def poll_runs_since(self, since: datetime) -> list[PollRun]:
        with self._tx() as conn:
            rows = conn.execute(
                select(poll_runs)
                .where(poll_runs.c.started_at >= since)
                .order_by(poll_runs.c.started_at)
            )
            return [
                PollRun(
                    _aware(r.started_at) or since,
                    _aware(r.finished_at),
                    r.ok,
                    r.complete,
                    r.new_findings,
                    r.error,
                    r.unreadable or 0,
                )
                for r in rows
            ]

    def last_successful_poll(self) -> datetime | None:
        with self._tx() as conn:
            value = conn.execute(
                select(func.max(poll_runs.c.finished_at)).where(poll_runs.c.ok.is_(True))
            ).scalar()
        return _aware(value)

    # -- leases (one poller among replicas) -----------------------------------------------
    def acquire_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime | None = None
    ) -> bool:
        """Take or renew `name` for `holder`; True when held. An expired lease is free."""
        stamp = now or _now()
        with self._tx() as conn:
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
            _insert_ignore(
                conn, leases, [{"name": name, "holder": holder, "expires_at": stamp + ttl}]
            )
            current = conn.execute(select(leases.c.holder).where(leases.c.name == name)).scalar()
            return bool(current == holder)

    def release_lease(self, name: str, holder: str) -> None:
        with self._tx() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))

    def lease_holder(self, name: str, now: datetime | None = None) -> str | None:
        stamp = now or _now()
        with self._tx() as conn:
            row = conn.execute(
                select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)
            ).first()
        if row is None or (_aware(row[1]) or stamp) < stamp:
            return None
        return str(row[0])

    def ping(self) -> None:
        """Reachable and writable: a write in a transaction that is rolled back."""
        with self.engine.connect() as conn:
            trans = conn.begin()
            conn.execute(leases.insert().values(name="__ping__", holder="check", expires_at=_now()))
            trans.rollback()


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


def _burst(row: Any) -> Burst:
    return Burst(
        row.id,
        row.channel,
        _aware(row.created_at) or _now(),
        row.state,
        _aware(row.attempted_at),
        row.ts,
    )


def _claimable(stamp: datetime) -> Any:
    return and_(
        findings_table.c.post_state == PENDING,
        or_(findings_table.c.claimed_until.is_(None), findings_table.c.claimed_until < stamp),
    )


def _make_engine(url: str) -> Engine:
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


def _add_column(conn: Connection, table: Table, name: str) -> None:
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


def _insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {name}")


def _existing_ids(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(findings_table.c.event_id).where(findings_table.c.event_id.in_(ids[i : i + 500]))
        )
        found.update(r[0] for r in rows)
    return found


def _finding_row(finding: Finding, stamp: datetime) -> dict[str, Any]:
    record = finding.to_record()
    if finding.user_keys is not None:
        record["user_keys"] = [
            {
                "access_key_id": k.access_key_id,
                "status": k.status,
                "create_date": isoformat_z(k.create_date) if k.create_date else None,
            }
            for k in finding.user_keys
        ]
    account, region = finding.account_id, record["region"]
    return {
        "event_id": finding.event.event_id,
        # The columns are for lookups and have a size; the full values are in `record`.
        "account_id": account[:32] if account else None,
        "region": region[:32] if region else None,
        "event_time": finding.event.event_time,
        "severity": finding.severity.value,
        "record": json.dumps(record, ensure_ascii=False),
        "status": OPEN,
        "stored_at": stamp,
        "post_state": SKIPPED if finding.suppressed else PENDING,
        "post_attempts": 0,
    }


def _storable(value: str) -> str:
    """Text every backend can store: lone surrogates and NUL become U+FFFD."""
    fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return fixed.replace("\x00", "\ufffd")


def _storable_json(value: Any) -> Any:
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, list):
        return [_storable_json(v) for v in value]
    if isinstance(value, dict):
        return {_storable(str(k)): _storable_json(v) for k, v in value.items()}
    return value


def _kind(exc: BaseException) -> str:
    """The failure's class only: the message may quote attacker-chosen text."""
    return type(getattr(exc, "orig", None) or exc).__name__


def _degraded_row(row: dict[str, Any], why: str) -> dict[str, Any]:
    record = _storable_json(json.loads(row["record"]))
    reasons = list(record.get("reasons") or [])
    if "malformed" not in reasons:
        reasons.append("malformed")
    problems = list(record.get("malformed_fields") or [])
    problems.append(f"record: could not be stored as read ({why}); text made storable")
    severity = str(record.get("severity") or "medium")
    if severity in ("low", "info"):
        severity = "medium"  # a record we could not keep as it was is worth a look
    record.update(reasons=reasons, malformed_fields=problems, severity=severity)
    return {
        **row,
        "event_id": _storable(str(row["event_id"]))[:128],
        "account_id": _storable(str(row["account_id"]))[:32] if row["account_id"] else None,
        "region": _storable(str(row["region"]))[:32] if row["region"] else None,
        "severity": severity,
        "record": json.dumps(record, ensure_ascii=True),
        "_degraded": True,
    }


def _stored(row: Any) -> StoredFinding:
    record = json.loads(row["record"])
    record["status"] = row["status"]
    return StoredFinding(
        event_id=row["event_id"],
        record=record,
        status=row["status"],
        assignee=row["assignee"],
        decided_by=row["decided_by"],
        decided_at=_aware(row["decided_at"]),
        stored_at=_aware(row["stored_at"]) or _now(),
        post_state=row["post_state"],
        post_attempts=row["post_attempts"] or 0,
        channel=row["channel"],
        ts=row["ts"],
        thread_ts=row["thread_ts"],
        post_attempted_at=_aware(row["post_attempted_at"]),
        burst_id=row["burst_id"],
    )


def open_store(settings: Settings) -> Store:
    store = Store(settings.database_url)
    store.migrate()
    return store


def open_store_if_present(settings: Settings) -> Store | None:
    """For `keyhunt hunt`: show stored triage states when a database exists; never create one."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        from pathlib import Path

        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:" or not Path(path).exists():
            return None
    try:
        store = Store(url)
        with store.engine.connect() as conn:
            if not store.engine.dialect.has_table(conn, "findings"):
                return None
        return store
    except Exception as exc:  # noqa: BLE001 - statuses are a courtesy; the hunt goes on
        log.warning("could not read triage states from the store: %s", type(exc).__name__)
        return None
