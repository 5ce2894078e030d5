"""The store's schema: every table, the schema version and what each version added.

Tables are SQLAlchemy Core `Table`s on one `metadata`; `migrate` creates them and adds the
columns of `ADDED_COLUMNS` to an older database. The advisory-lock keys live here
too; the post states (`post_state`) are bot.stored's.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, Text, text

from bot.triage import OPEN

SCHEMA_VERSION = 3
MIGRATION_LOCK = 0x6B657968  # "keyh": the advisory lock that serialises schema changes
BURST_LOCK = 0x6B657962  # "keyb": serialises the start of a burst summary

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
    Column("assignee", String(32)),  # unused: decided_by says who investigates
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
    # How the finding reached keyhunt (bot.stored ARRIVALS): the poll, the SQS queue, or the
    # poll acting as the queue's reconciler (a key the real-time path missed). Rows older
    # than schema 3 came from the poll.
    Column("source", String(16), nullable=False, server_default=text("'poll'")),
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
    3: [(findings_table, "source")],
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

# -- asking the owner, containment, snoozes (bot.engagement): tables of their own, so an older
# database gains them from `create_all` without a schema version of their own.

# Who the people behind a finding are in Slack, and the "Was this you?" question put to the
# actor: one row per finding, written once resolved; the question's state moves by
# compare-and-set (asked -> confirmed | denied | timed_out), its escalation once.
owner_questions = Table(
    "owner_questions",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("actor_user", String(32)),  # Slack user ID, or NULL: no mapping found
    Column("actor_via", Text),  # how it was found, or why not
    Column("target_user", String(32)),
    Column("target_via", Text),
    Column("resolved_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),  # none, pending, asked, confirmed, ...
    Column("dm_channel", String(32)),
    Column("dm_ts", String(32)),
    Column("asked_at", DateTime(timezone=True)),
    Column("deadline", DateTime(timezone=True), index=True),
    Column("answered_at", DateTime(timezone=True)),
    Column("reason", Text),
    Column("escalated_at", DateTime(timezone=True)),
    Column("escalation", Text),  # why: "answered No", "no answer within 30 min"
)

# Deactivate / Reactivate as done through the KeyHuntResponder role, newest last: the key's
# state as keyhunt left it, and (after a deactivation) how long a second key is watched for.
key_actions = Table(
    "key_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, index=True),
    Column("account_id", String(32), nullable=False),
    Column("user_name", String(128), nullable=False),
    Column("access_key_id", String(128), nullable=False),
    Column("action", String(16), nullable=False),  # deactivate, reactivate
    Column("user_id", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("watch_until", DateTime(timezone=True)),
)

# "Snooze similar": no alert for (actor ARN, target user, account) until it expires.
snoozes = Table(
    "snoozes",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("actor_arn", String(2048), nullable=False),
    Column("target_user", String(128), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("event_id", String(128)),  # the alert it was made from
    Column("reason", Text, nullable=False),
    Column("created_by", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("removed_by", String(32)),
    Column("removed_at", DateTime(timezone=True)),
)

# Append-only: every answer, escalation, containment action and snooze, with who and when
# (triage clicks have their own `triage_log`; `keyhunt audit` reads both).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("user_id", String(32), nullable=False),  # a Slack user ID, or "keyhunt"
    Column("action", String(32), nullable=False),
    Column("event_id", String(128)),
    Column("detail", Text),
)
