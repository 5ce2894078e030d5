"""Each finding is posted once, ever: replicas, processes, overlapping windows, Slack failures.

CONTRACT section 5: "Each new finding is posted to KEYHUNT_CHANNEL once, ever: restarts,
overlapping polls and late-delivered CloudTrail events never produce a second post, and a
failed post is retried until it succeeds."
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from bot.render import ACTION_EXPECTED
from tests.conftest import keyhunt_env, run_keyhunt
from tests.slackbot import (
    BOT_TOKEN,
    CHANNEL,
    TRIAGER,
    BotFactory,
    buttons_of,
    events_in,
    key_for_other,
    now_utc,
    ok_calls,
    posted_alerts,
    root_key,
    self_key,
    statuses_met,
    wait_for,
)


def test_pollers_in_two_processes_and_a_replica_post_each_finding_once(
    make_bot: BotFactory, tmp_path: Path
) -> None:
    now = now_utc()
    events = make_bot.seed(*(root_key(now - timedelta(minutes=m)) for m in range(1, 5)))
    replica = make_bot()  # an in-process replica on the same SQLite file
    env = keyhunt_env(
        make_bot.aws,
        tmp_path,
        KEYHUNT_DATABASE_URL=replica.settings.database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_API_URL=make_bot.slack.api_url,
        KEYHUNT_CHANNEL=CHANNEL,
        # slack_sdk reads HTTP(S)_PROXY but ignores NO_PROXY, so keyhunt_env's dead proxy
        # would swallow every Slack call of the subprocess; boto3 honours NO_PROXY.
        HTTP_PROXY=None,
        HTTPS_PROXY=None,
    )
    processes_done = threading.Event()

    def process() -> tuple[int, str]:
        done = run_keyhunt(["poll", "--once"], env, tmp_path)
        return done.returncode, done.stdout + done.stderr

    def replica_polls() -> int:
        """Poll again and again while the processes run; returns the findings it stored."""
        # Start once a process has stored the findings: from here on that process claims and
        # posts them (at Slack's 1/s pace) while this replica polls the same database.
        wait_for(lambda: replica.store.get(events[0]) is not None, what="a stored finding")
        stored = cycles = 0
        while not processes_done.is_set() or cycles == 0:
            stored += replica.poll().new_findings
            cycles += 1
            time.sleep(0.25)
        return stored

    with ThreadPoolExecutor(max_workers=3) as pool:
        processes = [pool.submit(process) for _ in range(2)]
        polling = pool.submit(replica_polls)
        outputs = [p.result() for p in processes]
        processes_done.set()
        stored_by_replica = polling.result()

    assert [code for code, _ in outputs] == [0, 0], outputs
    assert posted_alerts(make_bot.slack) == dict.fromkeys(events, 1)
    assert len(make_bot.slack.channel_messages(CHANNEL)) == len(events)
    assert replica.store.pending_count() == 0
    # Every finding was stored as new by exactly one of the three pollers.
    by_processes = sum(int(out.split(" new finding")[0].split()[-1]) for _, out in outputs)
    assert stored_by_replica + by_processes == len(events)

    # A restart, or the next cycle of any replica, posts nothing again.
    outcome = replica.poll()
    assert outcome.new_findings == 0
    assert outcome.delivery is not None
    assert outcome.delivery.posted == 0
    assert posted_alerts(make_bot.slack) == dict.fromkeys(events, 1)


def test_an_event_delivered_late_inside_the_overlap_is_posted_on_the_next_poll_once(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    first_poll = now_utc()
    (early,) = make_bot.seed(root_key(first_poll - timedelta(minutes=3)))
    assert bot.poll().new_findings == 1

    # CloudTrail delivers an event late: it happened before the first poll's window ended,
    # but LookupEvents only returns it now. The early event is in both windows.
    (late,) = make_bot.seed(root_key(first_poll - timedelta(minutes=2)))
    second = bot.poll()

    assert second.new_findings == 1
    assert second.delivery is not None
    assert second.delivery.posted == 1
    assert posted_alerts(make_bot.slack) == {early: 1, late: 1}
    # The second window really did re-read the first one's tail (the overlap).
    # (The hunt's lookups: a poll also follows each open key up, by AccessKeyId.)
    lookups = [
        c.params
        for c in make_bot.aws.calls
        if c.outcome == "ok"
        and c.params.get("LookupAttributes", [{}])[0].get("AttributeValue") == "CreateAccessKey"
    ]
    assert lookups[-1]["StartTime"] < first_poll.timestamp() - 120
    assert bot.poll().new_findings == 0  # and a third poll changes nothing
    assert posted_alerts(make_bot.slack) == {early: 1, late: 1}


def test_429s_and_500s_delay_a_post_but_never_lose_or_duplicate_it(make_bot: BotFactory) -> None:
    bot = make_bot()
    events = make_bot.seed(*(root_key(now_utc() - timedelta(minutes=m)) for m in (1, 2)))
    make_bot.slack.fail_next("chat.postMessage", status=429, count=2, retry_after=1)
    make_bot.slack.fail_next("chat.postMessage", status=500, count=1)

    outcome = bot.poll()

    assert outcome.delivery is not None
    assert (outcome.delivery.posted, outcome.delivery.failed) == (2, 0)
    assert statuses_met(make_bot.slack, "chat.postMessage") == {429: 2, 500: 1, 200: 2}
    assert posted_alerts(make_bot.slack) == dict.fromkeys(events, 1)
    assert len(make_bot.slack.channel_messages(CHANNEL)) == 2
    assert bot.store.pending_count() == 0


def test_a_post_failing_past_the_retries_stays_pending_and_goes_out_next_cycle(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=1)))
    # One more 429 than the client's RateLimitErrorRetryHandler retries (6); Retry-After: 0
    # keeps the test quick (the 1 s case is above).
    make_bot.slack.fail_next("chat.postMessage", status=429, count=7, retry_after=0)

    first = bot.poll()

    assert first.delivery is not None
    assert (first.delivery.posted, first.delivery.failed) == (0, 1)
    assert posted_alerts(make_bot.slack) == {}
    assert bot.store.pending_count() == 1
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.state == "pending"
    assert stored.message.ts is None

    second = bot.poll()  # no new event: the pending post alone is delivered

    assert second.new_findings == 0
    assert second.delivery is not None
    assert second.delivery.posted == 1
    assert posted_alerts(make_bot.slack) == {event_id: 1}
    assert bot.store.pending_count() == 0


def test_when_slack_keeps_failing_the_rest_of_the_batch_waits_for_the_next_cycle(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    events = make_bot.seed(*(root_key(now_utc() - timedelta(minutes=m)) for m in range(1, 6)))
    # Application errors (HTTP 200, ok=false) are not retried by the client: three in a row
    # and the Poster stops trying this cycle.
    make_bot.slack.fail_next("chat.postMessage", status=200, error="fatal_error", count=3)

    first = bot.poll()

    assert first.delivery is not None
    assert (first.delivery.posted, first.delivery.failed) == (0, 5)
    assert len(make_bot.slack.calls_to("chat.postMessage")) == 3
    assert bot.store.pending_count() == 5

    second = bot.poll()

    assert second.delivery is not None
    assert second.delivery.posted == 5
    assert posted_alerts(make_bot.slack) == dict.fromkeys(events, 1)


def test_a_burst_becomes_one_summary_with_the_alerts_in_its_thread(make_bot: BotFactory) -> None:
    bot = make_bot(KEYHUNT_BURST_THRESHOLD="3")
    now = now_utc()
    events = make_bot.seed(
        root_key(now - timedelta(minutes=9)),
        key_for_other(now - timedelta(minutes=8)),
        self_key(now - timedelta(minutes=7)),
        self_key(now - timedelta(minutes=6)),
    )

    outcome = bot.poll()

    assert outcome.delivery is not None
    assert outcome.delivery.posted == 4
    (summary,) = make_bot.slack.channel_messages(CHANNEL, top_level_only=True)
    assert summary.text.startswith("🚨 4 new access keys in 1 account")
    assert "critical 1 · high 1 · medium 2" in summary.blocks[0]["text"]["text"]
    assert buttons_of(summary.blocks) == []
    replies = make_bot.slack.thread(CHANNEL, summary.ts)[1:]
    assert sorted(e for m in replies for e in events_in(m.blocks)) == sorted(events)
    for reply in replies:
        assert buttons_of(reply.blocks) == ["Expected rotation", "Investigate"]
        assert reply.text.strip()
    assert outcome.delivery.summary_ts == summary.ts

    # A button in the thread works like any other: that reply is updated in place.
    assert bot.click(events[0], ACTION_EXPECTED, TRIAGER) == 200
    update = wait_for(lambda: ok_calls(make_bot.slack, "chat.update"), what="chat.update")[0]
    stored = bot.store.get(events[0])
    assert stored is not None
    assert stored.message.thread_ts == summary.ts
    assert update.args["ts"] == stored.message.ts


def test_at_the_threshold_alerts_go_to_the_channel_without_a_summary(
    make_bot: BotFactory,
) -> None:
    bot = make_bot(KEYHUNT_BURST_THRESHOLD="3")
    now = now_utc()
    make_bot.seed(*(root_key(now - timedelta(minutes=m)) for m in (1, 2, 3)))

    bot.poll()

    top = make_bot.slack.channel_messages(CHANNEL, top_level_only=True)
    assert len(top) == 3
    assert all(buttons_of(m.blocks) == ["Expected rotation", "Investigate"] for m in top)
