"""/keyhunt ack latency while the hunts behind it take over ten seconds each.

    python -m bench.bot_ack [--commands 50] [--waves 10] [--gap 6] [--latency 3.5]
                            [--events 120] [--answer-timeout 600]

The real path: the Bolt app from `create_app` served by waitress on 127.0.0.1, slash
commands signed like Slack signs them, the lazy listener running the real hunt through boto3
against FakeAWS, whose LookupEvents answers after `--latency` seconds; `--events` root-user
CreateAccessKey events make each `/keyhunt last 24h` read 3 pages (3 x 3.5 s = 10.5 s of
LookupEvents alone). `--commands` commands go out in `--waves` waves `--gap` seconds apart,
the commands of a wave concurrently. Every answer must then arrive at its response_url
(FakeSlack records them).

Prints ack latency (HTTP round trip of the signed POST) p50/p90/p99/max in ms, the HTTP
statuses, how many acks took longer than Slack's 3 s, answer latency, and whether every
answer arrived. Figures only, no pass/fail; the target for ack p99 is under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack, post_to_bot, slash_command_body
from tests.slackbot import (
    BOT_TOKEN,
    CALLER,
    CHANNEL,
    REGION,
    SIGNING_SECRET,
    TRIAGER,
    Bot,
    bot_settings,
    isolate_process_from_aws,
    now_utc,
    root_key,
)


@dataclass
class Sent:
    key: str
    sent_at: float  # time.monotonic(), the clock FakeSlack stamps responses with
    ack_ms: float
    status: int


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def send(bot: Bot, slack: FakeSlack, key: str) -> Sent:
    body = slash_command_body(
        "last 24h", user_id=TRIAGER, channel_id=CHANNEL, response_url=slack.response_url(key)
    )
    started = time.monotonic()
    status, _, _ = post_to_bot(bot.events_url, body, SIGNING_SECRET, timeout=30)
    return Sent(key, started, (time.monotonic() - started) * 1000, status)


def run(args: argparse.Namespace, tmp: Path) -> None:
    with FakeAWS() as aws, FakeSlack(BOT_TOKEN, channels=(CHANNEL,)) as slack:
        isolate_process_from_aws(aws.endpoint_url, tmp)
        now = now_utc()
        aws.add_events(
            CALLER,
            REGION,
            [root_key(now - timedelta(minutes=5 + i)) for i in range(args.events)],
        )
        bot = Bot(slack, bot_settings(slack, tmp))
        try:
            # Warm-up (not counted): imports, the first boto3 client, the first SQLite file.
            warm = send(bot, slack, "warm-up")
            while not any(p.key == "warm-up" for p in slack.responses):
                time.sleep(0.05)
            single = next(p for p in slack.responses if p.key == "warm-up").at - warm.sent_at
            aws.clear_calls()
            aws.set_latency(args.latency)

            per_wave = max(1, args.commands // args.waves)
            sent: list[Sent] = []
            lock = threading.Lock()
            began = time.monotonic()
            with ThreadPoolExecutor(max_workers=per_wave) as pool:
                number = 0
                for wave in range(args.waves):
                    target = began + wave * args.gap
                    time.sleep(max(0.0, target - time.monotonic()))
                    keys = [f"cmd-{number + i}" for i in range(per_wave)]
                    number += per_wave
                    for result in pool.map(lambda k: send(bot, slack, k), keys):
                        with lock:
                            sent.append(result)
            sending = time.monotonic() - began

            deadline = time.monotonic() + args.answer_timeout
            wanted = {s.key for s in sent}
            while time.monotonic() < deadline:
                arrived = {p.key for p in slack.responses} & wanted
                if arrived == wanted:
                    break
                time.sleep(0.2)
            answers = {p.key: p for p in slack.responses if p.key in wanted}
            total = time.monotonic() - began
        finally:
            bot.server.stop()
            bot.parts.store.close()

    acks = [s.ack_ms for s in sent]
    statuses = Counter(s.status for s in sent)
    answer_s = [answers[s.key].at - s.sent_at for s in sent if s.key in answers]
    hunted = sum(1 for p in answers.values() if str(p.body.get("text", "")).startswith("Hunted"))
    print(
        f"{len(sent)} signed /keyhunt commands in {args.waves} waves of {per_wave}, "
        f"{args.gap:g} s apart (sent over {sending:.1f} s); LookupEvents latency "
        f"{args.latency:g} s, {args.events} events = "
        f"{-(-args.events // 50)} pages per hunt"
    )
    print(f"  one hunt alone, before the latency was set: {single * 1000:.0f} ms")
    print(
        f"  ack latency ms: p50 {percentile(acks, 50):.0f}  p90 {percentile(acks, 90):.0f}  "
        f"p99 {percentile(acks, 99):.0f}  max {max(acks):.0f}  (mean "
        f"{statistics.fmean(acks):.0f})"
    )
    print(f"  HTTP statuses: {dict(sorted(statuses.items()))}")
    print(f"  acks slower than Slack's 3 s: {sum(1 for a in acks if a > 3000)}")
    print(
        f"  answers at response_url: {len(answers)}/{len(sent)} "
        f"({hunted} hunt results) within {total:.0f} s of the first command"
    )
    if answer_s:
        print(
            f"  answer latency s: p50 {percentile(answer_s, 50):.1f}  "
            f"p99 {percentile(answer_s, 99):.1f}  max {max(answer_s):.1f}"
        )
    missing = sorted(wanted - answers.keys(), key=lambda k: int(k.split("-")[1]))
    if missing:
        print(f"  MISSING answers: {', '.join(missing)}")
    print(f"  LookupEvents calls: {len(aws.calls)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bot_ack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--gap", type=float, default=6.0, help="seconds between waves")
    parser.add_argument("--latency", type=float, default=3.5, help="seconds per LookupEvents")
    parser.add_argument("--events", type=int, default=120, help="events a hunt reads")
    parser.add_argument("--answer-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    print(f"keyhunt /keyhunt ack — Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory(prefix="keyhunt-bench-ack-") as tmp:
        run(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
