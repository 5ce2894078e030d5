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
