"""Every key, once, ever: a poller killed at any step of a burst, or a Slack answer lost after
Slack accepted the post, leaves every alert in the channel exactly once.

Nothing lost is the first rule; nothing repeated the second. The crashing poller is the real
`keyhunt poll --once` in its own process, SIGKILLed by tests/crashpoint.py at the step named;
the next poller is another real `keyhunt poll --once` on the same SQLite file.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from bot.schedule import LEASE_NAME
from bot.store import Store
from keyhunt_dev.slack import FakeSlack
from tests import crashpoint
from tests.crashpoint import alerts_in_channel, expire_dead_poller, run_poll
from tests.slackbot import (
    CHANNEL,
    Bot,
    BotFactory,
    events_in,
    key_for_other,
    now_utc,
    root_key,
    self_key,
)

ALERTS = 12  # above the burst threshold of 10: one summary, the alerts in its thread
# Posts in call order: 1 is the burst summary, 2 the first alert, 13 the last.
CRASH_POINTS = [
    (step, n) for n in (1, 2, 7, 13) for step in ("before_post", "after_accept", "after_mark")
]


def seed_burst(make_bot: BotFactory) -> list[str]:
    now = now_utc()
    records = [
        (self_key if i % 2 else key_for_other)(now - timedelta(minutes=30 - i))
        for i in range(ALERTS)
    ]
    return make_bot.seed(*records)


def poll_env(make_bot: BotFactory, tmp_path: Path, **extra: str | None) -> dict[str, str]:
    return crashpoint.poll_env(
        make_bot.aws, make_bot.slack.api_url, f"sqlite:///{make_bot.db}", tmp_path, **extra
    )


def assert_each_alert_once_in_one_thread(slack: FakeSlack, events: list[str], db: Path) -> None:
    assert alerts_in_channel(slack, CHANNEL) == dict.fromkeys(events, 1)
    top = slack.channel_messages(CHANNEL, top_level_only=True)
    assert len(top) == 1, [m.text for m in top]  # the one summary
    (summary,) = top
    assert summary.text.startswith(f"🔴 {ALERTS} new access keys"), summary.text
    replies = slack.thread(CHANNEL, summary.ts)[1:]
    assert sorted(e for m in replies for e in events_in(m.blocks)) == sorted(events)
    store = Store(f"sqlite:///{db}")
    try:
        assert store.pending_count() == 0
        for event_id in events:
            stored = store.get(event_id)
            assert stored is not None
            assert stored.message.ts is not None
            # The ts the store holds is that of the message in the channel (clicks update it).
            assert events_in(slack.messages[CHANNEL][stored.message.ts].blocks) == [event_id]
            assert stored.message.thread_ts == summary.ts
    finally:
        store.close()


@pytest.mark.parametrize(("step", "n"), CRASH_POINTS, ids=[f"{s}:{n}" for s, n in CRASH_POINTS])
def test_a_poller_killed_at_any_step_of_a_burst_leaves_every_alert_in_the_channel_once(
    make_bot: BotFactory, tmp_path: Path, step: str, n: int
) -> None:
    events = seed_burst(make_bot)
    env = poll_env(make_bot, tmp_path)

    crashed = run_poll(env, tmp_path, crash_at=f"{step}:{n}")
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr

    expire_dead_poller(env["KEYHUNT_DATABASE_URL"])
    recovered = run_poll(env, tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr

    assert_each_alert_once_in_one_thread(make_bot.slack, events, make_bot.db)
    # Looking in the channel is paid only where a post may have landed unrecorded.
    searches = searches_made(make_bot.slack)
    # after_mark: nothing was in flight, so nothing is looked for.
    assert searches == (0 if step == "after_mark" else 1)


def test_the_crash_harness_really_kills_before_the_post(
    make_bot: BotFactory, tmp_path: Path
) -> None:
    """A harness that did not kill would make the test above pass for nothing."""
    seed_burst(make_bot)
    crashed = run_poll(poll_env(make_bot, tmp_path), tmp_path, crash_at="before_post:2")
    assert crashed.returncode == -9
    assert len(make_bot.slack.channel_messages(CHANNEL)) == 1  # the summary only


def test_two_pollers_at_once_post_one_summary_and_each_alert_once(make_bot: BotFactory) -> None:
    """Two replicas polling the same database in the same instant (a lease handover, or a
    poller without the lease): one burst, one summary, every alert once in its thread."""
    events = seed_burst(make_bot)
    pollers = [make_bot(KEYHUNT_BURST_THRESHOLD="10") for _ in range(2)]
    start = threading.Barrier(2)

    def poll(bot: Bot) -> None:
        start.wait()
        bot.poll()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(poll, pollers))

    assert_each_alert_once_in_one_thread(make_bot.slack, events, make_bot.db)


def test_poll_once_beside_a_polling_serve_leaves_the_work_to_it(
    make_bot: BotFactory, tmp_path: Path
) -> None:
    seed_burst(make_bot)
    store = Store(f"sqlite:///{make_bot.db}")
    store.migrate()
    # `keyhunt serve` elsewhere holds the poller lease and keeps renewing it.
    assert store.acquire_lease(LEASE_NAME, "serve-elsewhere", timedelta(minutes=5))
    store.close()

    done = run_poll(poll_env(make_bot, tmp_path, KEYHUNT_POLL_SECONDS="5"), tmp_path)

    assert done.returncode == 0, done.stderr
    assert "another keyhunt is polling" in done.stderr
    assert make_bot.slack.calls_to("chat.postMessage") == []
    assert make_bot.aws.calls == []  # it did not even read CloudTrail


# --------------------------------------------------------------- answers lost in transit


def searches_made(slack: FakeSlack) -> int:
    return len(slack.calls_to("conversations.history")) + len(
        slack.calls_to("conversations.replies")
    )


@pytest.mark.parametrize("n", [1, 2, 13], ids=["summary", "first-alert", "last-alert"])
def test_a_post_whose_answer_is_dropped_is_found_in_the_channel_not_posted_again(
    make_bot: BotFactory, n: int
) -> None:
    events = seed_burst(make_bot)
    bot = make_bot(KEYHUNT_BURST_THRESHOLD="10")
    make_bot.slack.drop_next("chat.postMessage", skip=n - 1)

    outcome = bot.poll()

    assert outcome.delivery is not None
    assert (outcome.delivery.posted, outcome.delivery.failed) == (ALERTS, 0)
    assert outcome.delivery.adopted == (0 if n == 1 else 1)  # a summary is not an alert
    assert outcome.delivery.search_calls == 1
    assert_each_alert_once_in_one_thread(make_bot.slack, events, make_bot.db)
    assert len(make_bot.slack.calls_to("chat.postMessage")) == ALERTS + 1  # no resend


def test_a_5xx_after_slack_accepted_is_found_in_the_channel_not_posted_again(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    now = now_utc()
    events = make_bot.seed(root_key(now - timedelta(minutes=2)), self_key(now))
    make_bot.slack.fail_next("chat.postMessage", status=503, after_accept=True)

    outcome = bot.poll()

    assert outcome.delivery is not None
    assert (outcome.delivery.posted, outcome.delivery.adopted) == (2, 1)
    assert alerts_in_channel(make_bot.slack, CHANNEL) == dict.fromkeys(events, 1)
    stored = bot.store.get(events[0])
    assert stored is not None
    assert stored.message.ts == make_bot.slack.calls_to("chat.postMessage")[0].response["ts"]
    assert stored.message.attempted_at is not None  # kept as the record of the attempt


def test_when_the_channel_cannot_be_searched_now_the_post_waits_and_is_found_later(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=1)))
    make_bot.slack.drop_next("chat.postMessage")
    # more 500s than the client retries (4), so this cycle cannot search at all
    make_bot.slack.fail_next("conversations.history", status=500, count=5)

    first = bot.poll()

    assert first.delivery is not None
    assert (first.delivery.posted, first.delivery.failed) == (0, 1)
    assert bot.store.pending_count() == 1  # not lost: waiting, its attempt mark kept
    assert alerts_in_channel(make_bot.slack, CHANNEL) == {event_id: 1}  # it did land

    second = bot.poll()

    assert second.delivery is not None
    assert (second.delivery.posted, second.delivery.adopted) == (1, 1)
    assert alerts_in_channel(make_bot.slack, CHANNEL) == {event_id: 1}
    assert bot.store.pending_count() == 0


def test_without_the_history_scope_an_alert_may_repeat_but_is_never_lost(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An app installed from an older manifest: nothing lost comes before nothing repeated."""
    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=1)))
    make_bot.slack.drop_next("chat.postMessage")
    make_bot.slack.fail_next("conversations.history", status=200, error="missing_scope", count=5)

    outcome = bot.poll()

    assert outcome.delivery is not None
    assert outcome.delivery.posted == 1
    assert alerts_in_channel(make_bot.slack, CHANNEL) == {event_id: 2}
    assert "channels:history" in caplog.text
    assert bot.store.pending_count() == 0


def test_a_refused_post_is_retried_without_searching(make_bot: BotFactory) -> None:
    """429 and ok:false mean Slack stored nothing: no search is needed before the retry."""
    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=1)))
    make_bot.slack.fail_next("chat.postMessage", status=200, error="fatal_error")

    bot.poll()
    bot.poll()

    assert alerts_in_channel(make_bot.slack, CHANNEL) == {event_id: 1}
    assert searches_made(make_bot.slack) == 0
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.state == "posted"
