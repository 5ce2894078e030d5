"""Prometheus metrics, served at GET /metrics. One registry per process, created on import."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("keyhunt_polls", "Poll cycles run", ["outcome"], registry=REGISTRY)
FINDINGS = Counter("keyhunt_findings", "New findings stored", ["severity"], registry=REGISTRY)
FOLLOW_UPS = Counter(
    "keyhunt_follow_ups",
    "Open findings whose new key has since made a call that matters (raised to high)",
    registry=REGISTRY,
)
OWNER_QUESTIONS = Counter(
    "keyhunt_owner_questions",
    '"Was this you?" questions: asked, answered yes/no, timed out, escalated',
    ["outcome"],
    registry=REGISTRY,
)
RESPONSE_ACTIONS = Counter(
    "keyhunt_response_actions",
    "Key containment actions taken from Slack (deactivate, reactivate) and refused",
    ["action", "outcome"],
    registry=REGISTRY,
)
SNOOZED = Counter(
    "keyhunt_snoozed", "Findings not posted because a snooze covered them", registry=REGISTRY
)
POSTS = Counter(
    "keyhunt_posts",
    "Slack alert posts by outcome (delivered, adopted, failed, retried)",
    ["outcome"],
    registry=REGISTRY,
)
SLACK_SEARCHES = Counter(
    "keyhunt_slack_searches",
    "conversations.history/replies calls made to find a post whose answer was lost",
    registry=REGISTRY,
)
POSTS_PENDING = Gauge("keyhunt_posts_pending", "Findings waiting to be posted", registry=REGISTRY)
LOOKUP_CALLS = Counter(
    "keyhunt_lookup_calls",
    "CloudTrail LookupEvents HTTP calls",
    ["account", "region"],
    registry=REGISTRY,
)
LOOKUP_THROTTLES = Counter(
    "keyhunt_lookup_throttles",
    "LookupEvents calls retried (throttling)",
    ["account", "region"],
    registry=REGISTRY,
)
LAST_POLL_SUCCESS = Gauge(
    "keyhunt_last_successful_poll_timestamp_seconds",
    "Unix time of the last successful poll (age = time() - this)",
    registry=REGISTRY,
)
UNREADABLE_RECORDS = Counter(
    "keyhunt_unreadable_records",
    "CloudTrail records that could not be read at all (not JSON, or no CloudTrailEvent)",
    ["account", "region"],
    registry=REGISTRY,
)
TARGET_FAILURES = Counter(
    "keyhunt_target_failures",
    "Targets that could not be read in a poll",
    ["account", "region"],
    registry=REGISTRY,
)

# The real-time path (bot.realtime) and the poll reconciling behind it.
QUEUE_MESSAGES = Counter(
    "keyhunt_queue_messages",
    "SQS messages received, by outcome: stored (a new finding), duplicate (already stored: "
    "deleted), poison (unusable: left for the redrive policy to move to the dead-letter queue)",
    ["outcome"],
    registry=REGISTRY,
)
QUEUE_ERRORS = Counter(
    "keyhunt_queue_errors",
    "Receive cycles that failed (SQS or the store unreachable); the messages come back",
    ["stage"],
    registry=REGISTRY,
)
LAST_QUEUE_RECEIVE = Gauge(
    "keyhunt_last_queue_receive_timestamp_seconds",
    "Unix time of the last SQS receive that answered (age = time() - this)",
    registry=REGISTRY,
)
RECONCILED = Counter(
    "keyhunt_reconciled",
    "Findings the poll stored that the SQS queue had not delivered (the real-time path missed)",
    registry=REGISTRY,
)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
