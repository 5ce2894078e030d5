"""The daily digest, posted through the real Web API client to (fake) Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.digest import post_digest
from bot.triage import EXPECTED_ROTATION
from tests.slackbot import (
    CHANNEL,
    OTHER,
    TRIAGER,
    BotFactory,
    block_kit_problems,
    key_for_other,
    mrkdwn_texts,
    now_utc,
    root_key,
    self_key,
    unique,
)


def test_digest_counts_by_severity_and_status_names_the_oldest_open_and_poller_health(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    now = now_utc()
    actor, target = unique("alice"), unique("bob")
    root, other, mine = make_bot.seed(
        root_key(now - timedelta(hours=3)),
        key_for_other(now - timedelta(hours=2), actor=actor, user=target),
        self_key(now - timedelta(hours=1)),
    )
    bot.poll()
    bot.store.decide(root, EXPECTED_ROTATION, TRIAGER)

    ts = post_digest(bot.store, bot.parts.slack, CHANNEL, 5, datetime.now(UTC))

    message = make_bot.slack.messages[CHANNEL][ts]
    assert not message.is_reply
    assert message.text == (
        "Yesterday: 3 new key events (critical 1 · high 1 · medium 1 · low 0); "
        "1 triaged, 2 still open"
    )
    shown = "\n".join(mrkdwn_texts(message.blocks))
    assert f"Oldest open: `{actor}` → `{target}` in `123456789012`, waiting 0 min" in shown
    assert "(2 open in all)" in shown
    assert "Poller: every 5 min, last success 0 min ago, 0 failures in 24 h" in shown
    assert block_kit_problems(message.blocks) == []
    assert other
    assert mine


def test_digest_of_a_quiet_day(make_bot: BotFactory) -> None:
    bot = make_bot()
    bot.poll()

    ts = post_digest(bot.store, bot.parts.slack, CHANNEL, 5, datetime.now(UTC))

    message = make_bot.slack.messages[CHANNEL][ts]
    assert message.text.startswith("Yesterday: 0 new key events")
    shown = "\n".join(mrkdwn_texts(message.blocks))
    assert "Oldest open" not in shown
    assert "Poller: every 5 min, last success 0 min ago, 0 failures in 24 h" in shown


def test_digest_names_an_account_that_could_not_be_read(make_bot: BotFactory) -> None:
    """ "0 new keys" must never read as "all clear" when an account could not be read."""
    bot = make_bot(KEYHUNT_ACCOUNTS=OTHER)
    make_bot.aws.break_lookup(OTHER)  # LookupEvents answers 503 there
    bot.poll()

    ts = post_digest(bot.store, bot.parts.slack, CHANNEL, 5, datetime.now(UTC))

    message = make_bot.slack.messages[CHANNEL][ts]
    assert message.text.startswith("Yesterday: 0 new key events")
    assert message.text.endswith("; ⚠ 1 account/region pair could not be read")
    shown = "\n".join(mrkdwn_texts(message.blocks))
    assert f"⚠ could not read `{OTHER}` `us-east-1` (1 poll in a row): `lookup: " in shown
