"""What the store hands back: a stored finding, typed, and the poll's bookkeeping.

Plain frozen dataclasses with no database behind them, so the renderers, the poster and the
tests can build them too; rendering reads these and never imports the store.

A `StoredFinding` is the finding as classified (`checks.model.Finding`, decoded by
`checks.record.from_stored`), its triage (who decided what, when) and its Slack message (how
far its delivery has got).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from checks.model import Finding

# How far a finding's Slack message has got (`Message.state`).
PENDING = "pending"  # to be posted
POSTED = "posted"  # in Slack; `Message.ts` is its message
FAILED = "failed"  # the last try failed; retried next cycle
SKIPPED = "skipped"  # never posted (suppressed)

# How a finding reached keyhunt (the findings table's `source`).
POLLED = "poll"  # a LookupEvents poll, no queue configured
QUEUED = "queue"  # the SQS queue EventBridge fills (bot.realtime)
RECONCILED = "reconcile"  # the poll, with a queue configured: the real-time path missed it
ARRIVALS = (POLLED, QUEUED, RECONCILED)


@dataclass(frozen=True)
class Triage:
    """The finding's triage state (bot.triage) and the last decision that set it."""

    status: str
    decided_by: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Message:
    """The finding's Slack message, as far as its delivery has got."""

    state: str = PENDING
    attempts: int = 0
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    # Set just before chat.postMessage: a post may have landed even if no ts came back.
    attempted_at: datetime | None = None
    burst_id: str | None = None

    @property
    def thread(self) -> str | None:
        """Where replies about the alert go: its thread, or the alert itself."""
        return self.thread_ts or self.ts


@dataclass(frozen=True)
class StoredFinding:
    # The store's key; the finding's own event ID unless it had to be made storable.
    event_id: str
    finding: Finding  # its `status` is the triage status
    triage: Triage
    message: Message
    stored_at: datetime


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
