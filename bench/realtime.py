"""Real time: how long from PutEvents to the Slack post, next to the poll path's.

    python -m bench realtime [--events 100] [--gap 1.2]

The queue path: moto's EventBridge (a central bus whose rule targets an SQS queue, as
config/central-bus.yaml wires it) and SQS behind FakeAWS, keyhunt's consumer thread
(bot.realtime, the product's 20 s long poll) and Poster (the product's 0.9 posts/s) against
FakeSlack. One key at a time, `--gap` seconds apart (so the Slack pacing never queues them):
the time from the PutEvents call to FakeSlack accepting the alert's chat.postMessage.

The poll path: the same key seeded into the LookupEvents emulator, then one poll cycle
(Poller.run_once, started at once): the time from the poll's start to the post. What the
poll really costs the on-call adds the wait for the next poll (uniform over the interval),
printed for 5 and 60 min. Follow-ups are off here: they run after the posts.

Neither figure includes AWS's own delay before the event can be read (LookupEvents: about
five minutes on average, and not guaranteed; EventBridge delivery of CloudTrail events: best
effort, not simulated). Both include keyhunt's rotation-context reads (two LookupEvents at the
target's 2 calls/s). Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3

from bot.posting import POSTS_PER_SECOND
from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack
from tests.slackbot import (
    BOT_TOKEN,
    CALLER,
    CHANNEL,
    REGION,
    Bot,
    bot_settings,
    events_in,
    isolate_process_from_aws,
    key_for_other,
    now_utc,
    self_key,
)

PATTERN = {
    "source": ["aws.iam"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": ["CreateAccessKey"]},
}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def central_bus(aws: FakeAWS) -> tuple[str, Any]:
    """The queue URL and an EventBridge client whose `keyhunt` bus routes to it."""
    kw: dict[str, Any] = {"endpoint_url": aws.endpoint_url, "region_name": REGION}
    sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
    url = sqs.create_queue(QueueName="keyhunt-key-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.create_event_bus(Name="keyhunt")
    events.put_rule(Name="to-queue", EventBusName="keyhunt", EventPattern=json.dumps(PATTERN))
    events.put_targets(
        Rule="to-queue", EventBusName="keyhunt", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}]
    )
    return url, events


def posted_at(slack: FakeSlack, event_id: str, timeout: float = 60.0) -> float:
    """When FakeSlack accepted the alert of `event_id` (its monotonic clock, this process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in slack.calls_to("chat.postMessage"):
            if call.ok and event_id in events_in(call.args.get("blocks") or []):
                return call.at
        time.sleep(0.002)
    raise RuntimeError(f"{event_id} was not posted within {timeout:.0f} s")


def record(i: int) -> dict[str, Any]:
    when = now_utc()
    return self_key(when) if i % 3 == 0 else key_for_other(when, account=CALLER)


def measure(count: int, gap: float, one: Callable[[int], float]) -> list[float]:
    figures = []
    for i in range(count):
        figures.append(one(i))
        time.sleep(gap)
    return figures


def run(args: argparse.Namespace, tmp: Path) -> None:
    with FakeAWS() as aws, FakeSlack(BOT_TOKEN, channels=(CHANNEL,)) as slack:
        isolate_process_from_aws(aws.endpoint_url, tmp)
        url, events = central_bus(aws)
        realtime = Bot(
            slack,
            bot_settings(slack, tmp, tmp / "queue.db", KEYHUNT_SQS_QUEUE_URL=url),
            posts_per_second=POSTS_PER_SECOND,
        )
        consumer = realtime.parts.queue_consumer
        assert consumer is not None
        consumer.start()

        def via_queue(i: int) -> float:
            made = record(i)
            started = time.monotonic()
            events.put_events(
                Entries=[
                    {
                        "Source": "aws.iam",
                        "DetailType": "AWS API Call via CloudTrail",
                        "Detail": json.dumps(made),
                        "EventBusName": "keyhunt",
                    }
                ]
            )
            return posted_at(slack, str(made["eventID"])) - started

        try:
            queued = measure(args.events, args.gap, via_queue)
        finally:
            consumer.stop()
            realtime.close()

        polling = Bot(
            slack,
            bot_settings(slack, tmp, tmp / "poll.db", KEYHUNT_FOLLOW_UP="false"),
            posts_per_second=POSTS_PER_SECOND,
        )
        polling.poll()  # the first poll's backfill, out of the figures

        def via_poll(i: int) -> float:
            made = record(i)
            aws.add_events(CALLER, REGION, [made])
            started = time.monotonic()
            polling.poll()
            return posted_at(slack, str(made["eventID"])) - started

        try:
            polled = measure(args.events, args.gap, via_poll)
        finally:
            polling.close()

    def line(name: str, values: Sequence[float], extra: float = 0.0) -> str:
        p50, p99 = percentile(values, 0.5) + extra / 2, percentile(values, 0.99) + extra * 0.99
        return f"  {name:<52} p50 {p50:8.2f} s   p99 {p99:8.2f} s"

    print(
        f"{args.events} keys, one at a time, {args.gap:.1f} s apart; Slack pacing "
        f"{POSTS_PER_SECOND}/s; rotation context read for each"
    )
    print(line("queue: PutEvents -> Slack post", queued))
    print(line("poll: the cycle itself (poll starts at once)", polled))
    print(line("poll every 5 min: + the wait for the next poll", polled, 300.0))
    print(line("poll every 60 min (the reconciler): + the wait", polled, 3600.0))
    print("  (neither includes AWS's delay before an event can be read: LookupEvents about")
    print("   5 min on average; EventBridge delivery is best effort, not simulated)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--gap", type=float, default=1.2, help="seconds between keys")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        run(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
