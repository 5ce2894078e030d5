"""What the store hands back: frozen records read from its rows.

Plain dataclasses with no database behind them, so renderers and tests can build them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
