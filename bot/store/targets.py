"""What the poller remembers between runs: per-target checkpoints and health, poll runs.

A target's checkpoint moves only after its window's findings are stored, so a crash repeats
a window rather than skipping one. Failures are counted per target, and every poll run is
recorded, for `/keyhunt status`, the health check and the metrics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from bot.store.engine import Database, aware, insert_ignore
from bot.store.schema import checkpoints, poll_runs
from bot.stored import PollRun, TargetHealth
from checks.hunt import IAM_REGION
from checks.model import Target


# -- checkpoints and target health ----------------------------------------------------------
def checkpoint(db: Database, target: Target) -> datetime | None:
    with db.tx() as conn:
        value = conn.execute(
            select(checkpoints.c.checkpoint).where(
                checkpoints.c.account_id == target.account_id,
                checkpoints.c.region == target.region,
            )
        ).scalar()
    return aware(value)


def target_succeeded(db: Database, target: Target, checkpoint: datetime, now: datetime) -> None:
    """Move the checkpoint; callers do this only after the window's findings are stored."""
    _upsert_checkpoint(
        db,
        target,
        checkpoint=checkpoint,
        last_success_at=now,
        consecutive_failures=0,
        last_error=None,
    )


def target_failed(db: Database, target: Target, error: str, now: datetime) -> None:
    with db.tx() as conn:
        row = conn.execute(
            select(checkpoints.c.consecutive_failures).where(
                checkpoints.c.account_id == target.account_id,
                checkpoints.c.region == target.region,
            )
        ).first()
    failures = (row[0] if row else 0) + 1
    _upsert_checkpoint(
        db, target, last_error=error[:500], last_error_at=now, consecutive_failures=failures
    )


def _upsert_checkpoint(db: Database, target: Target, **values: Any) -> None:
    key = {"account_id": target.account_id, "region": target.region}
    with db.tx() as conn:
        result = conn.execute(
            update(checkpoints)
            .where(
                checkpoints.c.account_id == target.account_id,
                checkpoints.c.region == target.region,
            )
            .values(**values)
        )
        if result.rowcount == 0:
            insert_ignore(conn, checkpoints, [{**key, "consecutive_failures": 0, **values}])


def target_health(db: Database) -> list[TargetHealth]:
    """The targets polls read: IAM_REGION only. Rows in other regions were written by
    versions that also hunted there; they are never read again, so they are not shown as
    stale or failing (`/keyhunt status`, the digest, /healthz)."""
    with db.tx() as conn:
        rows = conn.execute(
            select(checkpoints)
            .where(checkpoints.c.region == IAM_REGION)
            .order_by(checkpoints.c.account_id, checkpoints.c.region)
        )
        return [
            TargetHealth(
                r.account_id,
                r.region,
                aware(r.checkpoint),
                aware(r.last_success_at),
                r.last_error,
                aware(r.last_error_at),
                r.consecutive_failures,
            )
            for r in rows
        ]


# -- poll runs ------------------------------------------------------------------------------
def record_poll(db: Database, run: PollRun) -> None:
    with db.tx() as conn:
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


def poll_runs_since(db: Database, since: datetime) -> list[PollRun]:
    with db.tx() as conn:
        rows = conn.execute(
            select(poll_runs)
            .where(poll_runs.c.started_at >= since)
            .order_by(poll_runs.c.started_at)
        )
        return [
            PollRun(
                aware(r.started_at) or since,
                aware(r.finished_at),
                r.ok,
                r.complete,
                r.new_findings,
                r.error,
                r.unreadable or 0,
            )
            for r in rows
        ]


def last_successful_poll(db: Database) -> datetime | None:
    with db.tx() as conn:
        value = conn.execute(
            select(func.max(poll_runs.c.finished_at)).where(poll_runs.c.ok.is_(True))
        ).scalar()
    return aware(value)
