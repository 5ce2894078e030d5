"""The real-time path: EventBridge -> SQS -> keyhunt, each key posted once, nothing lost.

moto (behind FakeAWS, over HTTP) really routes an event: PutEvents on a member account's
default bus, its rule forwarding to the central bus, the central bus's rule sending it to the
queue, as config/eventbridge-forwarder.yaml and config/central-bus.yaml wire it. The queue
has a redrive policy to a dead-letter queue, which moto applies on receive. One moto quirk:
the forwarded envelope carries no `account`; keyhunt reads the record's recipientAccountId
first anyway.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.metrics import REGISTRY
from bot.realtime import QueueConsumer, queue_region
from bot.render import render_digest
from bot.settings import RECONCILE_POLL_MINUTES, ConfigError, load_settings
from bot.store import Store
from bot.stored import QUEUED, RECONCILED
from tests import crashpoint
from tests.conftest import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from tests.slackbot import (
    CALLER,
    CHANNEL,
    OTHER,
    REGION,
    SIGNING_SECRET,
    Bot,
    BotFactory,
    event_id_of,
    key_for_other,
    now_utc,
    posted_alerts,
    self_key,
    unique,
    wait_for,
)

DETAIL_TYPE = "AWS API Call via CloudTrail"
PATTERN = {
    "source": ["aws.iam"],
    "detail-type": [DETAIL_TYPE],
    "detail": {"eventName": ["CreateAccessKey"]},
}
MAX_RECEIVES = 2  # the redrive policy's maxReceiveCount in these tests


@dataclass
class Queue:
    url: str
    arn: str
    dlq_url: str
    bus: str
    sqs: Any
    events: Any

    def put(self, *records: dict[str, Any]) -> None:
        """PutEvents on the central bus, as a member's forwarding rule delivers them."""
        answer = self.events.put_events(
            Entries=[
                {
                    "Source": "aws.iam",
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(r),
                    "EventBusName": self.bus,
                }
                for r in records
            ]
        )
        assert answer["FailedEntryCount"] == 0

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.url, MessageBody=body)

    def depth(self, url: str | None = None) -> int:
        """Messages in the queue, visible or in flight."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())


def client(fake: Any, service: str, **credentials: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=fake.endpoint_url,
        region_name=REGION,
        aws_access_key_id=credentials.get("key", DUMMY_ACCESS_KEY),
        aws_secret_access_key=credentials.get("secret", DUMMY_SECRET_KEY),
        aws_session_token=credentials.get("token"),
    )


@pytest.fixture
def queue(make_bot: BotFactory) -> Iterator[Queue]:
    """config/central-bus.yaml's shape in keyhunt's account: bus, rule, queue, DLQ."""
    sqs, events = client(make_bot.aws, "sqs"), client(make_bot.aws, "events")
    name = unique("keyhunt-key-events")
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    redrive = {
        "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
        "maxReceiveCount": str(MAX_RECEIVES),
    }
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(redrive)})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    bus = unique("keyhunt")
    events.create_event_bus(Name=bus)
    events.put_rule(Name="to-queue", EventBusName=bus, EventPattern=json.dumps(PATTERN))
    events.put_targets(
        Rule="to-queue",
        EventBusName=bus,
        Targets=[{"Id": "queue", "Arn": arn["Attributes"]["QueueArn"]}],
    )
    yield Queue(url, arn["Attributes"]["QueueArn"], dlq, bus, sqs, events)
    events.remove_targets(Rule="to-queue", EventBusName=bus, Ids=["queue"])
    events.delete_rule(Name="to-queue", EventBusName=bus)
    events.delete_event_bus(Name=bus)
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq)


def realtime_bot(make_bot: BotFactory, queue: Queue, **env: str) -> tuple[Bot, QueueConsumer]:
    bot = make_bot(KEYHUNT_SQS_QUEUE_URL=queue.url, KEYHUNT_ENRICH="false", **env)
    consumer = bot.parts.queue_consumer
    assert consumer is not None
    return bot, consumer


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def envelope(record: dict[str, Any], account: str = CALLER) -> str:
    """An EventBridge envelope as the central bus's rule delivers it to the queue."""
    return json.dumps(
        {
            "version": "0",
            "id": unique("eb"),
            "detail-type": DETAIL_TYPE,
            "source": "aws.iam",
            "account": account,
            "time": record["eventTime"],
            "region": REGION,
            "resources": [],
            "detail": record,
        }
    )


# ============================================================================== one event


def test_an_event_put_on_a_members_bus_is_posted_within_one_receive_cycle(
    make_bot: BotFactory, queue: Queue
) -> None:
    """The whole chain: the member's rule forwards to the central bus (cross-account, as
    config/eventbridge-forwarder.yaml does), whose rule sends it to the queue."""
    sts = client(make_bot.aws, "sts")
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{OTHER}:role/forwarder", RoleSessionName="forwarder"
    )["Credentials"]
    member = client(
        make_bot.aws,
        "events",
        key=creds["AccessKeyId"],
        secret=creds["SecretAccessKey"],
        token=creds["SessionToken"],
    )
    rule = unique("keyhunt-forward")
    member.put_rule(Name=rule, EventPattern=json.dumps(PATTERN))
    bus_arn = f"arn:aws:events:{REGION}:{CALLER}:event-bus/{queue.bus}"
    member.put_targets(
        Rule=rule,
        Targets=[{"Id": "bus", "Arn": bus_arn, "RoleArn": f"arn:aws:iam::{OTHER}:role/forwarder"}],
    )
    record = key_for_other(now_utc(), account=OTHER)
    bot, consumer = realtime_bot(make_bot, queue)
    try:
        member.put_events(
            Entries=[{"Source": "aws.iam", "DetailType": DETAIL_TYPE, "Detail": json.dumps(record)}]
        )

        report = consumer.receive_once(wait_seconds=5)
    finally:
        member.remove_targets(Rule=rule, Ids=["bus"])
        member.delete_rule(Name=rule)

    assert (report.received, report.stored, report.poison) == (1, 1, 0)
    assert posted_alerts(make_bot.slack) == {event_id_of(record): 1}
    stored = bot.store.get(event_id_of(record))
    assert stored is not None
    assert stored.finding.account_id == OTHER
    assert stored.finding.severity.value == "high"  # classified by the hunt's rules
    assert stored.message.ts is not None
    assert queue.depth() == 0  # deleted once stored


def test_the_same_event_twice_is_stored_once_posted_once_and_both_messages_deleted(
    make_bot: BotFactory, queue: Queue
) -> None:
    record = self_key(now_utc())
    bot, consumer = realtime_bot(make_bot, queue)
    duplicates = counted("keyhunt_queue_messages_total", outcome="duplicate")

    queue.put(record, record)  # two deliveries in one batch (EventBridge retried, say)
    first = consumer.receive_once(wait_seconds=5)
    queue.put(record)  # and a third, later
    later = consumer.receive_once(wait_seconds=5)

    assert first.received + later.received == 3
    assert first.stored + later.stored == 1
    assert posted_alerts(make_bot.slack) == {event_id_of(record): 1}
    assert counted("keyhunt_queue_messages_total", outcome="duplicate") == duplicates + 2
    assert queue.depth() == 0
    window = (now_utc() - timedelta(hours=1), now_utc() + timedelta(minutes=1))
    assert bot.store.arrivals_between(*window) == {QUEUED: 1}


# ======================================================================== queue and poll


def test_an_event_via_queue_and_via_poll_is_posted_once_and_not_counted_as_reconciled(
    make_bot: BotFactory, queue: Queue
) -> None:
    record = key_for_other(now_utc() - timedelta(minutes=3))
    make_bot.seed(record)  # LookupEvents has it too
    bot, consumer = realtime_bot(make_bot, queue)
    reconciled = counted("keyhunt_reconciled_total")

    queue.put(record)
    consumer.receive_once(wait_seconds=5)
    outcome = bot.poll()

    assert outcome.new_findings == 0  # the poll found it already stored
    assert posted_alerts(make_bot.slack) == {event_id_of(record): 1}
    assert counted("keyhunt_reconciled_total") == reconciled
    window = (now_utc() - timedelta(hours=1), now_utc() + timedelta(minutes=1))
    assert bot.store.arrivals_between(*window) == {QUEUED: 1}


def test_a_key_the_queue_missed_is_reconciled_by_the_poll_counted_and_in_the_digest(
    make_bot: BotFactory, queue: Queue
) -> None:
    via_queue, missed = self_key(now_utc()), key_for_other(now_utc() - timedelta(minutes=4))
    make_bot.seed(via_queue, missed)  # EventBridge dropped `missed` (best effort)
    bot, consumer = realtime_bot(make_bot, queue)
    assert bot.settings.poll_minutes == RECONCILE_POLL_MINUTES  # the poll is the reconciler
    reconciled = counted("keyhunt_reconciled_total")

    queue.put(via_queue)
    consumer.receive_once(wait_seconds=5)
    outcome = bot.poll()
    bot.parts.digest()

    assert outcome.new_findings == 1
    assert counted("keyhunt_reconciled_total") == reconciled + 1
    assert posted_alerts(make_bot.slack) == {event_id_of(via_queue): 1, event_id_of(missed): 1}
    window = (now_utc() - timedelta(hours=1), now_utc() + timedelta(minutes=1))
    assert bot.store.arrivals_between(*window) == {QUEUED: 1, RECONCILED: 1}
    (digest,) = [
        m for m in make_bot.slack.channel_messages(CHANNEL) if m.text.startswith("Yesterday")
    ]
    assert "1 key reached keyhunt only through the reconciling poll, every 60 min" in str(
        digest.blocks
    )


def test_the_digest_says_how_many_keys_only_the_reconcile_found() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    _, without = render_digest([], [], [], 60, now)
    _, missed = render_digest([], [], [], 60, now, reconciled=3)
    assert "reconcil" not in json.dumps(without)
    assert (
        "3 keys reached keyhunt only through the reconciling poll, every 60 min (the "
        "real-time path missed them)" in json.dumps(missed, ensure_ascii=False)
    )


# ================================================================================ poison


GARBAGE = (
    "this is not JSON",
    "[1, 2, 3]",
    json.dumps({"source": "aws.s3", "detail-type": DETAIL_TYPE, "detail": {}}),
    json.dumps({"source": "aws.iam", "detail-type": DETAIL_TYPE, "detail": "<@U0BOSS>"}),
    json.dumps(
        {"source": "aws.iam", "detail-type": DETAIL_TYPE, "detail": {"eventName": "DeleteUser"}}
    ),
)


def test_garbage_is_counted_never_blocks_the_rest_and_is_left_for_the_redrive(
    make_bot: BotFactory, queue: Queue
) -> None:
    good = [self_key(now_utc()), key_for_other(now_utc())]
    bot, consumer = realtime_bot(make_bot, queue)
    consumer.visibility = 1  # so the unused messages come back within the test
    poison = counted("keyhunt_queue_messages_total", outcome="poison")
    for body in GARBAGE[:3]:
        queue.send(body)
    queue.send(envelope(good[0]))
    for body in GARBAGE[3:]:
        queue.send(body)
    queue.send(envelope(good[1]))

    def drained() -> bool:
        consumer.receive_once(wait_seconds=1)
        return queue.depth(queue.dlq_url) == len(GARBAGE) and queue.depth() == 0

    wait_for(drained, 60, "the garbage moved to the dead-letter queue")

    assert posted_alerts(make_bot.slack) == {event_id_of(r): 1 for r in good}
    # Each garbage message was received (and counted) until the redrive took it: keyhunt
    # deleted none of them.
    assert counted("keyhunt_queue_messages_total", outcome="poison") >= poison + len(GARBAGE)
    moved = queue.sqs.receive_message(QueueUrl=queue.dlq_url, MaxNumberOfMessages=10)
    assert sorted(m["Body"] for m in moved["Messages"]) == sorted(GARBAGE)
    assert bot.store.pending_count() == 0


# ================================================================================= crash


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(
    make_bot: BotFactory, queue: Queue, tmp_path: Path, crash_at: str | None = None
) -> subprocess.Popen[str]:
    env = crashpoint.poll_env(
        make_bot.aws,
        make_bot.slack.api_url,
        f"sqlite:///{make_bot.db}",
        tmp_path,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        KEYHUNT_SQS_QUEUE_URL=queue.url,
        KEYHUNT_QUEUE_WAIT_SECONDS="1",
        PORT=str(free_port()),
        PYTHONPATH=str(crashpoint.REPO),
        QUEUE_VISIBILITY_SECONDS="2",
    )
    if crash_at:
        env["KEYHUNT_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crashpoint", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
    )


def test_a_crash_between_store_and_delete_is_redelivered_and_posted_once(
    make_bot: BotFactory, queue: Queue, tmp_path: Path
) -> None:
    """`keyhunt serve` is SIGKILLed after the store and before the delete (tests/crashpoint):
    the finding is stored, not posted, and the message comes back; a second `serve` takes
    the redelivery as a duplicate, posts the finding once, deletes the message, and stops
    cleanly on SIGTERM."""
    record = key_for_other(now_utc())
    queue.put(record)

    crashed = serve(make_bot, queue, tmp_path, crash_at="after_queue_store:1")
    output, _ = crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL, output
    store = Store(f"sqlite:///{make_bot.db}")
    stored = store.get(event_id_of(record))
    store.close()
    assert stored is not None, "the kill came after the store"
    assert stored.message.ts is None
    assert posted_alerts(make_bot.slack) == {}
    assert queue.depth() == 1, "not deleted: it will come back"

    crashpoint.expire_dead_poller(f"sqlite:///{make_bot.db}")
    recovered = serve(make_bot, queue, tmp_path)
    try:
        wait_for(lambda: posted_alerts(make_bot.slack), 60, "the redelivered finding's post")
        wait_for(lambda: queue.depth() == 0, 30, "the redelivered message deleted")
    finally:
        recovered.send_signal(signal.SIGTERM)
        output, _ = recovered.communicate(timeout=30)
    assert recovered.returncode == 0, output
    assert posted_alerts(make_bot.slack) == {event_id_of(record): 1}


# ============================================================================== health


def test_healthz_and_status_say_whether_this_replica_receives_from_the_queue(
    make_bot: BotFactory, queue: Queue
) -> None:
    bot, consumer = realtime_bot(make_bot, queue, KEYHUNT_QUEUE_WAIT_SECONDS="1")
    bot.parts.state.alive = lambda: True  # the scheduler, which these tests do not run
    status, body = bot.healthz()
    assert (status, body["detail"]) == (503, "queue consumer stopped")
    assert body["queue"]["running"] is False

    name = queue.url.rsplit("/", 1)[1]
    consumer.start()
    try:
        wait_for(lambda: consumer.state.last_receive, what="a first receive")
        status, body = bot.healthz()
        assert (status, body["detail"]) == (200, "ok"), body
        assert body["queue"]["ok"] is True
        assert body["queue"]["consecutive_failures"] == 0
        assert body["queue"]["last_error"] is None
        assert 0 <= body["queue"]["last_receive_age_seconds"] < 60
        status_reply = bot.slash("status")
        assert "Real time: receiving from the SQS queue" in str(bot.answer(status_reply.key).body)

        # The queue goes away: receives fail, the consumer backs off (2 s, 4 s), and after
        # three in a row this replica says its real-time path is down, naming AWS's code.
        queue.sqs.delete_queue(QueueUrl=queue.url)
        wait_for(lambda: consumer.state.failures >= 3, 30, "three failed receives")
        status, body = bot.healthz()
        assert status == 503
        assert body["detail"].startswith("queue receive failing (3 in a row: "), body
        assert "NonExistentQueue" in body["detail"] or "QueueDoesNotExist" in body["detail"]
        assert body["queue"]["last_error"] in body["detail"]
        answer = str(bot.answer(bot.slash("status").key).body)
        assert "3 failed receives in a row" in answer
        assert "the poll still reconciles" in answer
    finally:
        consumer.stop()
        # the fixture's teardown deletes it again
        queue.sqs.create_queue(QueueName=name)


# ============================================================================== settings


def test_a_queue_makes_the_poll_hourly_unless_the_poll_is_configured() -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/111122223333/keyhunt-key-events"
    base = {"KEYHUNT_CONFIG": ""}
    assert load_settings(environ=base).poll_minutes == 5
    assert load_settings(environ={**base, "KEYHUNT_SQS_QUEUE_URL": url}).poll_minutes == 60
    configured = {**base, "KEYHUNT_SQS_QUEUE_URL": url, "KEYHUNT_POLL_MINUTES": "15"}
    assert load_settings(environ=configured).poll_minutes == 15
    assert queue_region(url) == "eu-west-1"
    assert queue_region("http://127.0.0.1:4566/000000000000/q") == "us-east-1"
    with pytest.raises(ConfigError, match="KEYHUNT_SQS_QUEUE_URL"):
        load_settings(environ={**base, "KEYHUNT_SQS_QUEUE_URL": "keyhunt-key-events"})
