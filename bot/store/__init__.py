"""The state store: findings, Slack messages, triage audit log, poll checkpoints, leases.

SQLAlchemy Core over SQLite (default, WAL mode) or PostgreSQL. Every statement is
parameterised. Concurrency is handled in the database, not in memory: a finding is inserted
once (`ON CONFLICT DO NOTHING`), a post is claimed with a conditional UPDATE before it is sent,
and a triage decision is a compare-and-set on the status, so several processes never
double-post or lose a decision.

What it hands back (findings typed end to end) is defined in bot.stored.

`Store` is the one object the rest of keyhunt holds; each of its methods hands over to the
module of its concern:

- `schema`      tables, SCHEMA_VERSION, what each version added, lock keys
- `engine`      the engine (SQLite/PostgreSQL set-up), transactions, shared helpers
- `migrations`  creating or upgrading the schema
- `findings`    storing and reading findings
- `delivery`    claims, attempt and posted/failed marks, burst summaries
- `decisions`   triage decisions and their audit log
- `targets`     checkpoints, target health, poll runs
- `leasing`     named leases (one poller among replicas), the reachability check
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot.settings import Settings
from bot.store import decisions, delivery, engagement, findings, leasing, migrations, targets
from bot.store.engine import Database
from bot.store.schema import (
    ADDED_COLUMNS,
    BURST_LOCK,
    MIGRATION_LOCK,
    SCHEMA_VERSION,
    bursts,
    checkpoints,
    findings_table,
    leases,
    metadata,
    poll_runs,
    schema_info,
    triage_log,
)
from bot.stored import (
    FAILED,
    PENDING,
    POLLED,
    POSTED,
    SKIPPED,
    AuditEntry,
    Burst,
    Decision,
    Engagement,
    KeyAction,
    Message,
    PollRun,
    Snooze,
    StoredFinding,
    TargetHealth,
    Triage,
)
from checks.model import Finding, Severity, Target

__all__ = [
    "ADDED_COLUMNS",
    "BURST_LOCK",
    "FAILED",
    "MIGRATION_LOCK",
    "PENDING",
    "POSTED",
    "SCHEMA_VERSION",
    "SKIPPED",
    "Burst",
    "Decision",
    "Message",
    "PollRun",
    "Store",
    "StoredFinding",
    "TargetHealth",
    "Triage",
    "bursts",
    "checkpoints",
    "findings_table",
    "leases",
    "metadata",
    "open_store",
    "open_store_if_present",
    "poll_runs",
    "schema_info",
    "triage_log",
]

log = logging.getLogger(__name__)


class Store:
    """One database's state, for every process and thread that shares it."""

    def __init__(self, url: str) -> None:
        self._db = Database(url)

    @property
    def engine(self) -> Engine:
        return self._db.engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self._db.close()

    # -- schema ---------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create the schema, or upgrade an older one, idempotently and safely in parallel."""
        migrations.migrate(self._db)

    # -- findings -------------------------------------------------------------------------
    def add_findings(
        self, items: Sequence[Finding], now: datetime | None = None, source: str = POLLED
    ) -> list[str]:
        """Store new findings; returns the event IDs that were new. Already-stored ones are
        left exactly as they are (their status and Slack message included). `source` says
        how they arrived (bot.stored ARRIVALS)."""
        return findings.add_findings(self._db, items, now, source)

    def arrivals_between(self, start: datetime, end: datetime) -> dict[str, int]:
        """{source: findings stored in [start, end) that arrived that way}."""
        return findings.arrivals_between(self._db, start, end)

    def add_followups(self, event_id: str, found: Sequence[str], severity: Severity) -> bool:
        return findings.add_followups(self._db, event_id, found, severity)

    def get(self, event_id: str) -> StoredFinding | None:
        return self._engaged(findings.get(self._db, event_id))

    def _engaged(self, found: StoredFinding | None) -> StoredFinding | None:
        """The finding with its people, question and containment state (for rendering)."""
        if found is None:
            return None
        with self._db.tx() as conn:
            people = engagement.read(conn, found.event_id)
        return replace(found, engagement=people) if people is not None else found

    def statuses(self, event_ids: Sequence[str]) -> dict[str, str]:
        return findings.statuses(self._db, event_ids)

    def event_ids_since(self, start: datetime) -> frozenset[str]:
        """IDs of stored findings whose event happened at or after `start`."""
        return findings.event_ids_since(self._db, start)

    def findings_between(self, start: datetime, end: datetime) -> list[StoredFinding]:
        """Findings stored in [start, end), newest event first (for digests)."""
        return findings.findings_between(self._db, start, end)

    def open_findings(self) -> list[StoredFinding]:
        return findings.open_findings(self._db)

    # -- posting --------------------------------------------------------------------------
    def pending(self, limit: int = 100, now: datetime | None = None) -> list[StoredFinding]:
        """Findings awaiting a post and not claimed by a live poster, oldest event first."""
        return delivery.pending(self._db, limit, now)

    def claim(
        self, event_id: str, owner: str, lease: timedelta, now: datetime | None = None
    ) -> StoredFinding | None:
        """Take one pending finding for posting (None: another poster has it, or it is no
        longer pending); a claim whose holder died expires after `lease`."""
        return self._engaged(delivery.claim(self._db, event_id, owner, lease, now))

    def mark_attempt(
        self, event_id: str, thread_ts: str | None, now: datetime | None = None
    ) -> None:
        """Record, just before chat.postMessage, that a post may be about to land."""
        delivery.mark_attempt(self._db, event_id, thread_ts, now)

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
        return delivery.mark_posted(self._db, event_id, channel, ts, thread_ts, now)

    def mark_post_failed(self, event_id: str, error: str, *, maybe_posted: bool = True) -> None:
        """Release the claim so that any process retries the post; `maybe_posted=False`
        (Slack said no) clears the attempt mark."""
        delivery.mark_post_failed(self._db, event_id, error, maybe_posted=maybe_posted)

    def pending_count(self) -> int:
        return delivery.pending_count(self._db)

    # -- burst summaries ------------------------------------------------------------------
    def open_burst(self, channel: str) -> Burst | None:
        """The burst of this channel that still has findings to post, if any."""
        return delivery.open_burst(self._db, channel)

    def join_burst(
        self,
        new_id: str,
        channel: str,
        event_ids: Sequence[str],
        now: datetime | None = None,
    ) -> tuple[Burst, bool]:
        """Put pending findings under the channel's open burst, or a new one; returns the
        burst and whether findings joined one whose summary is already posted."""
        return delivery.join_burst(self._db, new_id, channel, event_ids, now)

    def burst_findings(self, burst_id: str) -> list[StoredFinding]:
        return delivery.burst_findings(self._db, burst_id)

    def get_burst(self, burst_id: str) -> Burst | None:
        return delivery.get_burst(self._db, burst_id)

    def claim_burst(
        self, burst_id: str, owner: str, lease: timedelta, now: datetime | None = None
    ) -> bool:
        """Take the posting of a burst's summary; False when another live poster has it or
        it is already posted."""
        return delivery.claim_burst(self._db, burst_id, owner, lease, now)

    def mark_burst_attempt(self, burst_id: str, now: datetime | None = None) -> None:
        delivery.mark_burst_attempt(self._db, burst_id, now)

    def mark_burst_posted(self, burst_id: str, ts: str) -> Burst | None:
        """Record the summary's ts; the first one recorded stands."""
        return delivery.mark_burst_posted(self._db, burst_id, ts)

    def mark_burst_failed(self, burst_id: str) -> None:
        """The summary could not be posted: its alerts go to the channel top level."""
        delivery.mark_burst_failed(self._db, burst_id)

    # -- triage ---------------------------------------------------------------------------
    def decide(
        self,
        event_id: str,
        status: str,
        user_id: str,
        now: datetime | None = None,
        expected: str | None = None,
    ) -> Decision | None:
        """Move a finding to `status` if bot.triage allows it (and, with `expected`, only
        from that state), logging the move; see `decisions.decide`."""
        return decisions.decide(self._db, event_id, status, user_id, now, expected)

    def history(self, event_id: str) -> list[Decision]:
        return decisions.history(self._db, event_id)

    def confirm_by_actor(self, event_id: str, user_id: str, now: datetime) -> bool:
        """ "Yes, this was me": an open finding becomes confirmed_by_actor (logged)."""
        return decisions.confirm_by_actor(self._db, event_id, user_id, now)

    # -- the people behind findings, containment, snoozes (bot.store.engagement) ----------
    def has_people(self, event_id: str) -> bool:
        return engagement.has_people(self._db, event_id)

    def record_people(self, event_id: str, people: Engagement, now: datetime) -> bool:
        return engagement.record_people(self._db, event_id, people, now)

    def set_dm(self, event_id: str, channel: str, ts: str) -> None:
        engagement.set_dm(self._db, event_id, channel, ts)

    def not_asked(self, event_id: str, why: str) -> None:
        engagement.not_asked(self._db, event_id, why)

    def answer(
        self, event_id: str, user_id: str, state: str, reason: str | None, now: datetime
    ) -> bool:
        return engagement.answer(self._db, event_id, user_id, state, reason, now)

    def time_out(self, event_id: str, now: datetime) -> bool:
        return engagement.time_out(self._db, event_id, now)

    def due_escalations(self, now: datetime) -> list[str]:
        return engagement.due_escalations(self._db, now)

    def claim_escalation(self, event_id: str, why: str, now: datetime) -> bool:
        return engagement.claim_escalation(self._db, event_id, why, now)

    def release_escalation(self, event_id: str) -> None:
        engagement.release_escalation(self._db, event_id)

    def add_key_action(self, event_id: str, action: KeyAction) -> None:
        engagement.add_key_action(self._db, event_id, action)

    def watches(self, now: datetime) -> list[tuple[str, KeyAction]]:
        return engagement.watches(self._db, now)

    def add_snooze(self, snooze: Snooze) -> Snooze:
        return engagement.add_snooze(self._db, snooze)

    def remove_snooze(self, ident: str, user_id: str, now: datetime) -> Snooze | None:
        return engagement.remove_snooze(self._db, ident, user_id, now)

    def active_snoozes(self, now: datetime) -> list[Snooze]:
        return engagement.active_snoozes(self._db, now)

    def expired_snoozes(self, start: datetime, end: datetime) -> list[Snooze]:
        return engagement.expired_snoozes(self._db, start, end)

    def audit_since(self, start: datetime) -> list[AuditEntry]:
        return engagement.audit_since(self._db, start)

    def skip(self, event_id: str, why: str) -> bool:
        """Never post this pending finding (a snooze covers it); True when it was pending."""
        return delivery.skip(self._db, event_id, why)

    # -- checkpoints and poll health ------------------------------------------------------
    def checkpoint(self, target: Target) -> datetime | None:
        return targets.checkpoint(self._db, target)

    def target_succeeded(self, target: Target, checkpoint: datetime, now: datetime) -> None:
        """Move the checkpoint; callers do this only after the window's findings are stored."""
        targets.target_succeeded(self._db, target, checkpoint, now)

    def target_failed(self, target: Target, error: str, now: datetime) -> None:
        targets.target_failed(self._db, target, error, now)

    def target_health(self) -> list[TargetHealth]:
        return targets.target_health(self._db)

    def record_poll(self, run: PollRun) -> None:
        targets.record_poll(self._db, run)

    def poll_runs_since(self, since: datetime) -> list[PollRun]:
        return targets.poll_runs_since(self._db, since)

    def last_successful_poll(self) -> datetime | None:
        return targets.last_successful_poll(self._db)

    # -- leases (one poller among replicas) -----------------------------------------------
    def acquire_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime | None = None
    ) -> bool:
        """Take or renew `name` for `holder`; True when held. An expired lease is free."""
        return leasing.acquire_lease(self._db, name, holder, ttl, now)

    def release_lease(self, name: str, holder: str) -> None:
        leasing.release_lease(self._db, name, holder)

    def ping(self) -> None:
        """Reachable and writable: a write in a transaction that is rolled back."""
        leasing.ping(self._db)


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
