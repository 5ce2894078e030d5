"""A burst: many new findings in one poll cycle, delivered under Slack's per-channel rate limit.

    python -m bench.bot_burst [--findings 200] [--slack-rate 1.0] [--post-rate 0.9]
                              [--threshold 10]

The real poll cycle (`Poller.run_once` from `bot.compose.Components`: hunt through boto3 against
FakeAWS, store in SQLite, then `Poster.deliver_pending` through the Web API client with its
retry handlers) against FakeSlack with `enforce_rate_limit(--slack-rate)`: a second
chat.postMessage to the channel within 1/rate seconds is answered HTTP 429 with
Retry-After: 1, as Slack does. The Poster paces itself at `--post-rate` (the product's
default, bot.posting.POSTS_PER_SECOND, is 0.9/s).

Prints the time from the start of the cycle until every finding was delivered (and how much of
it was the hunt), the number of channel-level (top-level) messages, thread replies, the 429s
met, and whether each finding was posted exactly once. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from bot.poller import FOLLOW_UPS_PER_TARGET
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
    isolate_process_from_aws,
    key_for_other,
    now_utc,
    posted_alerts,
    root_key,
    self_key,
)


def records(count: int) -> list[dict[str, object]]:
    """A mix like a bad day: mostly keys made for others, some self-service, a few root."""
    now = now_utc()
    made = []
    for i in range(count):
        when = now - timedelta(minutes=2, seconds=10 * i)
        if i % 10 == 0:
            made.append(root_key(when))
        elif i % 3 == 0:
            made.append(self_key(when, user=f"burst-self-{i}"))
        else:
            made.append(key_for_other(when, actor=f"burst-actor-{i % 7}", user=f"burst-{i}"))
    return made


def run(args: argparse.Namespace, tmp: Path) -> None:
    with FakeAWS() as aws, FakeSlack(BOT_TOKEN, channels=(CHANNEL,)) as slack:
        isolate_process_from_aws(aws.endpoint_url, tmp)
        aws.add_events(CALLER, REGION, records(args.findings))
        slack.enforce_rate_limit(args.slack_rate)
        settings = bot_settings(slack, tmp, KEYHUNT_BURST_THRESHOLD=str(args.threshold))
        bot = Bot(slack, settings, posts_per_second=args.post_rate)
        try:
            started = time.monotonic()
            outcome = bot.poll()
            elapsed = time.monotonic() - started
            first_lookups = [c for c in aws.calls if c.outcome == "ok"]
            aws.clear_calls()
            # The next cycle: nothing new; the open keys' calls are read (a few per target).
            started_next = time.monotonic()
            bot.poll()
            next_elapsed = time.monotonic() - started_next
        finally:
            bot.server.stop()
            bot.parts.store.close()

        posts = slack.calls_to("chat.postMessage")
        first_post = min((c.at for c in posts), default=started) - started
        statuses = Counter(c.status for c in posts)
        top = slack.channel_messages(CHANNEL, top_level_only=True)
        replies = [m for m in slack.channel_messages(CHANNEL) if m.is_reply]
        once = posted_alerts(slack)
        delivery = outcome.delivery
        next_lookups = [c for c in aws.calls if c.outcome == "ok"]
        follow_ups = sum(
            1
            for c in next_lookups
            if (c.params.get("LookupAttributes") or [{}])[0].get("AttributeKey") == "AccessKeyId"
        )

    print(
        f"{args.findings} new findings in one poll cycle; FakeSlack rate limit "
        f"{args.slack_rate:g}/s per channel (burst 1); Poster pacing {args.post_rate:g}/s; "
        f"burst threshold {args.threshold}"
    )
    print(f"  poll cycle: {outcome.new_findings} new, {elapsed:.1f} s until the last post")
    print(f"    hunt and store before the first post: {first_post:.1f} s")
    print(f"    delivery: {elapsed - first_post:.1f} s")
    if delivery is not None:
        print(f"  delivered {delivery.posted}, left pending {delivery.failed}")
    print(f"  LookupEvents calls of the cycle: {len(first_lookups)}")
    print(
        f"  next cycle (nothing new): {len(next_lookups)} LookupEvents calls in "
        f"{next_elapsed:.1f} s, {follow_ups} of them follow-ups by AccessKeyId (at most "
        f"{FOLLOW_UPS_PER_TARGET} open keys per target and poll, of {args.findings} open)"
    )
    print(f"  channel-level (top-level) messages: {len(top)}; thread replies: {len(replies)}")
    print(
        f"  chat.postMessage calls: {len(posts)} ({dict(sorted(statuses.items()))}); "
        f"429s met: {statuses.get(429, 0)}"
    )
    print(
        f"  each finding posted exactly once: "
        f"{len(once) == args.findings and set(once.values()) == {1}} "
        f"({len(once)} distinct alerts)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bot_burst",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--findings", type=int, default=200)
    parser.add_argument("--slack-rate", type=float, default=1.0, help="FakeSlack posts/s")
    parser.add_argument(
        "--post-rate", type=float, default=POSTS_PER_SECOND, help="Poster posts/s (product default)"
    )
    parser.add_argument("--threshold", type=int, default=10, help="KEYHUNT_BURST_THRESHOLD")
    args = parser.parse_args(argv)
    print(f"keyhunt burst delivery — Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory(prefix="keyhunt-bench-burst-") as tmp:
        run(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
