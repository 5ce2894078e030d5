"""Findings in and out: storing new findings once, reading them back.

A finding is inserted once (`ON CONFLICT DO NOTHING`); one already stored is left exactly as
it is, its status and Slack message included. A record that cannot be stored as it was read
(bad text, a value too long for a column) never holds back the rest of its batch: it is
stored as a malformed finding instead, its text made storable (`degraded_row`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, StatementError

from bot.store.engine import Database, aware, insert_ignore, utcnow
from bot.store.schema import findings_table
from bot.stored import ARRIVALS, PENDING, POLLED, SKIPPED, Message, StoredFinding, Triage
from bot.triage import CONFIRMED_BY_ACTOR, OPEN
from checks.model import Finding, KeyEvent, Severity
from checks.record import from_stored, to_stored

log = logging.getLogger(__name__)

CHUNK = 500  # keep IN lists within every backend's parameter limit


# -- writing --------------------------------------------------------------------------------
def add_findings(
    db: Database,
    findings: Sequence[Finding],
    now: datetime | None = None,
    source: str = POLLED,
) -> list[str]:
    """Store new findings; returns the event IDs that were new. Already-stored ones are
    left exactly as they are (their status and Slack message included, and how they came:
    the first path to store a finding is the one it arrived by)."""
    if not findings:
        return []
    if source not in ARRIVALS:
        raise ValueError(f"unknown finding source {source!r}")
    stamp = now or utcnow()
    # A fixed order: two writers inserting overlapping batches then lock rows in the same
    # order and cannot deadlock (PostgreSQL detects the cycle and fails one batch).
    rows = sorted(
        (finding_row(f, stamp) | {"source": source} for f in findings),
        key=lambda r: r["event_id"],
    )
    try:
        return _insert_new(db, rows, stamp)
    except (DBAPIError, StatementError, UnicodeError, ValueError) as exc:
        if len(rows) == 1 and rows[0].get("_degraded"):
            raise
        log.warning("storing %d findings failed (%s); one by one", len(rows), _kind(exc))
    # One record must never hold back the rest (nor the checkpoint): what cannot be
    # stored as it is is stored as a malformed finding, its text made storable.
    new: list[str] = []
    for row in rows:
        try:
            new += _insert_new(db, [row], stamp)
        except (DBAPIError, StatementError, UnicodeError, ValueError) as exc:
            log.error(
                "finding %r could not be stored (%s); stored as malformed",
                storable(str(row["event_id"])),
                _kind(exc),
            )
            new += _insert_new(db, [degraded_row(row, _kind(exc))], stamp)
    return new


def _insert_new(db: Database, rows: list[dict[str, Any]], stamp: datetime) -> list[str]:
    ids = [r["event_id"] for r in rows]
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    with db.tx() as conn:
        existing = _existing_ids(conn, ids)
        fresh = [r for r in clean if r["event_id"] not in existing]
        if not fresh:
            return []
        insert_ignore(conn, findings_table, fresh)
        # Another process may have inserted the same event between the two statements;
        # only rows carrying our stamp are ours.
        mine = conn.execute(
            select(findings_table.c.event_id).where(
                findings_table.c.event_id.in_([r["event_id"] for r in fresh]),
                findings_table.c.stored_at == stamp,
            )
        )
        return [row[0] for row in mine]


def _existing_ids(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        rows = conn.execute(
            select(findings_table.c.event_id).where(
                findings_table.c.event_id.in_(ids[i : i + CHUNK])
            )
        )
        found.update(r[0] for r in rows)
    return found


# -- reading --------------------------------------------------------------------------------
def read(conn: Connection, event_id: str) -> StoredFinding | None:
    """The finding as it stands, within the caller's transaction."""
    row = conn.execute(select(findings_table).where(findings_table.c.event_id == event_id)).first()
    return stored(row._mapping) if row else None


def get(db: Database, event_id: str) -> StoredFinding | None:
    with db.tx() as conn:
        return read(conn, event_id)


def statuses(db: Database, event_ids: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    with db.tx() as conn:
        for i in range(0, len(event_ids), CHUNK):
            part = list(event_ids[i : i + CHUNK])
            rows = conn.execute(
                select(findings_table.c.event_id, findings_table.c.status).where(
                    findings_table.c.event_id.in_(part)
                )
            )
            result.update({r[0]: r[1] for r in rows})
    return result


def event_ids_since(db: Database, start: datetime) -> frozenset[str]:
    """IDs of stored findings whose event happened at or after `start`."""
    with db.tx() as conn:
        rows = conn.execute(
            select(findings_table.c.event_id).where(findings_table.c.event_time >= start)
        )
        return frozenset(r[0] for r in rows)


def findings_between(db: Database, start: datetime, end: datetime) -> list[StoredFinding]:
    """Findings stored in [start, end), newest event first (for digests)."""
    with db.tx() as conn:
        rows = conn.execute(
            select(findings_table)
            .where(findings_table.c.stored_at >= start, findings_table.c.stored_at < end)
            .order_by(findings_table.c.event_time.desc())
        )
        return [stored(r._mapping) for r in rows]


def arrivals_between(db: Database, start: datetime, end: datetime) -> dict[str, int]:
    """How many findings stored in [start, end) came each way (bot.stored ARRIVALS)."""
    with db.tx() as conn:
        rows = conn.execute(
            select(findings_table.c.source, func.count())
            .where(findings_table.c.stored_at >= start, findings_table.c.stored_at < end)
            .group_by(findings_table.c.source)
        )
        return {str(r[0]): int(r[1]) for r in rows}


def open_findings(db: Database) -> list[StoredFinding]:
    """Open findings that were (or are to be) posted, oldest event first."""
    with db.tx() as conn:
        rows = conn.execute(
            select(findings_table)
            .where(
                findings_table.c.status.in_((OPEN, CONFIRMED_BY_ACTOR)),
                findings_table.c.post_state != SKIPPED,
            )
            .order_by(findings_table.c.event_time.asc())
        )
        return [stored(r._mapping) for r in rows]


def add_followups(db: Database, event_id: str, found: Sequence[str], severity: Severity) -> bool:
    """Record what the finding's key did since (checks.danger) and raise its severity to at
    least `severity`; its status and Slack message are left alone. True when it changed.
    The row is locked while read and written (FOR UPDATE; SQLite's write lock serialises
    anyway), so two writers only ever add to each other."""
    with db.tx() as conn:
        row = conn.execute(
            select(findings_table.c.record)
            .where(findings_table.c.event_id == event_id)
            .with_for_update()
        ).first()
        if row is None:
            return False
        finding = from_stored(json.loads(row[0]))
        lines = tuple(dict.fromkeys((*finding.followups, *found)))
        raised = severity if severity.rank > finding.severity.rank else finding.severity
        if lines == finding.followups and raised is finding.severity:
            return False
        changed = replace(finding, followups=lines, severity=raised)
        conn.execute(
            update(findings_table)
            .where(findings_table.c.event_id == event_id)
            .values(
                record=json.dumps(to_stored(changed), ensure_ascii=False), severity=raised.value
            )
        )
        return True


# -- rows -----------------------------------------------------------------------------------
def finding_row(finding: Finding, stamp: datetime) -> dict[str, Any]:
    """The `findings` row of a new finding: its record (checks.record.to_stored) as JSON."""
    record = to_stored(finding)
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


def degraded_row(row: dict[str, Any], why: str) -> dict[str, Any]:
    """`row` made storable and marked malformed, at least medium severity."""
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
        "event_id": storable(str(row["event_id"]))[:128],
        "account_id": storable(str(row["account_id"]))[:32] if row["account_id"] else None,
        "region": storable(str(row["region"]))[:32] if row["region"] else None,
        "severity": severity,
        "record": json.dumps(record, ensure_ascii=True),
        "_degraded": True,
    }


def stored(row: Any) -> StoredFinding:
    """A `findings` row (its mapping) as the typed record callers see."""
    finding = replace(_finding_of(row), status=row["status"])  # the row's status is current
    return StoredFinding(
        event_id=row["event_id"],
        finding=finding,
        triage=Triage(row["status"], row["decided_by"], aware(row["decided_at"])),
        message=Message(
            state=row["post_state"],
            attempts=row["post_attempts"] or 0,
            channel=row["channel"],
            ts=row["ts"],
            thread_ts=row["thread_ts"],
            attempted_at=aware(row["post_attempted_at"]),
            burst_id=row["burst_id"],
        ),
        stored_at=aware(row["stored_at"]) or utcnow(),
    )


def _finding_of(row: Any) -> Finding:
    """The row's record decoded; one that no longer decodes (edited by hand, or stored by a
    keyhunt this one cannot read) is still shown, as a malformed finding from its columns."""
    try:
        return from_stored(json.loads(row["record"]))
    except (ValueError, KeyError, TypeError) as exc:
        why = _kind(exc)
    log.error("stored finding %r could not be read back (%s)", row["event_id"], why)
    event = KeyEvent.partial(
        str(row["event_id"]),
        aware(row["event_time"]) or utcnow(),
        (f"record: its stored copy could not be read back ({why})",),
        account_id=row["account_id"],
        region=row["region"],
    )
    severity = str(row["severity"])
    known = severity in {s.value for s in Severity} and severity not in ("low", "info")
    return Finding(event, Severity(severity) if known else Severity.MEDIUM, ("malformed",))


# -- storable text --------------------------------------------------------------------------
def storable(value: str) -> str:
    """Text every backend can store: lone surrogates and NUL become U+FFFD."""
    fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return fixed.replace("\x00", "\ufffd")


def _storable_json(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [_storable_json(v) for v in value]
    if isinstance(value, dict):
        return {storable(str(k)): _storable_json(v) for k, v in value.items()}
    return value


def _kind(exc: BaseException) -> str:
    """The failure's class only: the message may quote attacker-chosen text."""
    return type(getattr(exc, "orig", None) or exc).__name__
