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


# The "Was this you?" question (`Engagement.state`).
UNRESOLVED = "unresolved"  # no Slack user found for the actor: nobody to ask
NOT_ASKED = "not_asked"  # found, but this severity is not asked (or the DM failed)
ASKED = "asked"  # the DM is out; escalates at `deadline`
CONFIRMED = "confirmed"  # "Yes, this was me"
DENIED = "denied"  # "No, I didn't": escalated
TIMED_OUT = "timed_out"  # no answer by the deadline: escalated
ANSWER_STATES = (CONFIRMED, DENIED, TIMED_OUT)


@dataclass(frozen=True)
class KeyAction:
    """The latest Deactivate or Reactivate keyhunt made on a finding's key."""

    action: str  # "deactivate" or "reactivate"
    user_id: str
    at: datetime
    account_id: str
    user_name: str
    access_key_id: str
    watch_until: datetime | None = None  # a second key for the user is alerted on until then


@dataclass(frozen=True)
class Snooze:
    id: str
    actor_arn: str
    target_user: str
    account_id: str
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    event_id: str | None = None
    removed_by: str | None = None
    removed_at: datetime | None = None


@dataclass(frozen=True)
class Engagement:
    """The people behind a finding as Slack knows them, and what they were asked."""

    actor_user: str | None  # Slack user ID; None when no mapping was found
    actor_via: str  # how the actor was found (or why not), for the alert
    target_user: str | None
    target_via: str
    state: str
    dm_channel: str | None = None
    dm_ts: str | None = None
    asked_at: datetime | None = None
    deadline: datetime | None = None
    answered_at: datetime | None = None
    reason: str | None = None
    escalated_at: datetime | None = None
    escalation: str | None = None
    key_action: KeyAction | None = None
    snooze: Snooze | None = None  # the snooze made from this alert, if still in force


@dataclass(frozen=True)
class AuditEntry:
    """One line of `keyhunt audit`: who did what to which finding, when."""

    at: datetime
    user_id: str
    action: str
    event_id: str | None
    detail: str | None


@dataclass(frozen=True)
class StoredFinding:
    # The store's key; the finding's own event ID unless it had to be made storable.
    event_id: str
    finding: Finding  # its `status` is the triage status
    triage: Triage
    message: Message
    stored_at: datetime
    engagement: Engagement | None = None  # filled by Store.get/claim (bot.store.engagement)


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
