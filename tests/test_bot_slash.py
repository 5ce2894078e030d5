"""/keyhunt through the real HTTP app: ack first, answer at response_url, usage on bad input.

CONTRACT section 5: acknowledged within 3 seconds whatever the hunt costs; the result arrives
through response_url; `help` and any text it cannot parse answer with usage. Every test on
the `bot` fixture runs twice: over HTTP and over Socket Mode (the ack is then the envelope's
ack payload).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.render import ACTION_EXPECTED
from tests.slackbot import (
    CALLER,
    OTHER,
    TRANSPORTS,
    TRIAGER,
    Bot,
    BotFactory,
    FlakyResponseUrl,
    mrkdwn_texts,
    now_utc,
    root_key,
    unique,
    wait_for,
)


@pytest.fixture(params=TRANSPORTS)
def bot(make_bot: BotFactory, request: pytest.FixtureRequest) -> Bot:
    return make_bot(transport=request.param)


def answer_text(body: dict[str, object]) -> str:
    return "\n".join([str(body.get("text", "")), *mrkdwn_texts(body.get("blocks") or [])])


def test_the_ack_comes_before_the_hunt_and_the_answer_arrives_at_response_url(
    bot: Bot, make_bot: BotFactory
) -> None:
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(hours=1)))
    make_bot.aws.set_latency(1.0)  # every LookupEvents now takes a second

    reply = bot.slash("last 24h")

    assert reply.status == 200
    assert reply.body is not None
    assert reply.body["response_type"] == "ephemeral"
    assert reply.text.startswith("🔎 Hunting")
    assert [p for p in make_bot.slack.responses if p.key == reply.key] == []  # not yet
    answer = bot.answer(reply.key)
    assert answer.body["response_type"] == "ephemeral"
    assert answer.body["text"].startswith("Hunted 1 account × 1 region")
    assert f"{CALLER}" in answer_text(answer.body)
    assert "critical 1" in answer_text(answer.body)
    assert len(make_bot.aws.calls) >= 1  # the answer really came from a hunt
    assert event_id  # (the one root key seeded)


def test_acks_do_not_wait_for_hunts_already_running(make_bot: BotFactory) -> None:
    """A regression test: acks ran on the pool the lazy hunts run in, so with `workers`
    hunts in flight the next ack waited behind them and Bolt answered 404 after 3 s."""
    bot = make_bot(workers=2)  # the default is 16; two makes the third command the victim
    make_bot.aws.set_latency(3.5)  # each hunt takes longer than Slack's 3 s

    replies = [bot.slash("last 24h"), bot.slash("last 24h")]  # both hunts now running
    replies.append(bot.slash("status"))

    try:
        assert [reply.status for reply in replies] == [200, 200, 200], [
            (reply.status, reply.raw[:80]) for reply in replies
        ]
    finally:  # every hunt still answers; let them land before the fakes go away
        for reply in replies:
            bot.answer(reply.key, timeout=60)


@pytest.mark.parametrize("text", ["help", "", "  HELP  ", "?", "usage"])
def test_help_answers_with_usage_in_the_ack(bot: Bot, text: str) -> None:
    reply = bot.slash(text)

    assert reply.status == 200
    assert reply.is_usage
    assert reply.body is not None
    usage = "\n".join(mrkdwn_texts(reply.body["blocks"]))
    for form in (
        "/keyhunt last &lt;DUR&gt;",
        "/keyhunt since &lt;T&gt;",
        "/keyhunt key &lt;ACCESS_KEY_ID&gt;",
        "/keyhunt status",
    ):
        assert form in usage
    assert "<" not in usage


def test_help_is_answered_once(bot: Bot, make_bot: BotFactory) -> None:
    reply = bot.slash("help")
    assert reply.is_usage
    # A command sent after it has been answered through the lazy pool: a second usage
    # answer for `help` (the old behaviour) would be there by now.
    status = bot.slash("status")
    bot.answer(status.key)
    assert [p for p in make_bot.slack.responses if p.key == reply.key] == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("hunt everything", "unknown command"),
        ("last", "needs a value"),
        ("last 24", "bad duration"),
        ("last 91d", "at most 90d"),
        ("last 1d user", "needs a value"),
        ("last 1d colour red", "unknown option"),
        ("last 1d last 2d", "given twice"),
        ("last 1d account 12345", "is not valid"),
        ("since yesterday", "bad time"),
        ("until 2026-11-29", "unknown command"),
        ("last 1d until 2026-11-29", "either `last` or `since`"),
        ("key not-a-key", "bad access key ID"),
        ("status please", "takes nothing"),
        ("help me", "takes nothing"),
        ("<!channel> &amp; <@U123>", "unknown command"),
    ],
)
def test_text_it_cannot_parse_answers_with_usage_and_the_problem(
    bot: Bot, make_bot: BotFactory, text: str, problem: str
) -> None:
    reply = bot.slash(text)

    assert reply.status == 200
    assert reply.is_usage
    assert reply.body is not None
    # (The problem is shown as code, so its own backticks come out as ˋ.)
    shown = "\n".join(mrkdwn_texts(reply.body["blocks"])).replace("ˋ", "`")
    assert problem in shown
    assert "Traceback" not in shown
    for raw in ("<!", "<@", "<http"):
        assert raw not in shown  # the user's own text is echoed escaped, inside code


def test_a_window_the_grammar_accepts_but_the_hunt_cannot_use_answers_with_usage(
    bot: Bot,
) -> None:
    reply = bot.slash("since 2020-01-01")  # older than CloudTrail's 90 days

    assert reply.status == 200
    answer = bot.answer(reply.key).body
    assert answer["text"] == "keyhunt usage"
    assert "more than 90 days ago" in answer_text(answer)


def test_status_shows_each_account_and_region_and_the_pending_posts(
    make_bot: BotFactory,
) -> None:
    bot = make_bot(KEYHUNT_ACCOUNTS=f"{CALLER},{OTHER}")
    make_bot.aws.deny_lookup(OTHER)
    make_bot.seed(root_key(now_utc() - timedelta(minutes=5)))
    make_bot.slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    bot.poll()

    reply = bot.slash("status")

    assert reply.status == 200
    assert reply.text.startswith("Checking")
    answer = bot.answer(reply.key).body
    text = answer_text(answer)
    assert "Poller: every 5 min, last success 0 min ago" in text
    assert "1 post pending" in text
    lines = {line.split(":")[0]: line for line in text.splitlines() if line.startswith("`")}
    assert lines[f"`{CALLER}` `us-east-1`"].endswith("last read 0 min ago")
    failing = lines[f"`{OTHER}` `us-east-1`"]
    assert "last read never" in failing
    assert "1 failure" in failing
    assert "AccessDeniedException" in failing


def test_key_lookup_answers_at_response_url(bot: Bot) -> None:
    reply = bot.slash("key AKIAIOSFODNN7EXAMPLE")

    assert reply.status == 200
    answer = bot.answer(reply.key).body
    assert answer["text"].startswith("Investigation of AKIA…MPLE")


@pytest.mark.parametrize("status", [429, 500])
def test_respond_retries_when_response_url_fails_once(bot: Bot, status: int) -> None:
    key = unique("flaky")
    with FlakyResponseUrl(bot.slack.response_url(key), failures=1, status=status) as flaky:
        reply = bot.slash("status", response_url=flaky.url, key=key)
        assert reply.status == 200
        answer = bot.answer(key)
        assert flaky.attempts == [status, 200]
    assert answer.body["text"].startswith("Poller:")


@pytest.mark.parametrize(
    "text",
    ["since 0001-01-01T00:00+01:00", "since 2026-11-01 until 9999-12-31T23:59-01:00"],
)
def test_an_out_of_range_instant_answers_with_usage(bot: Bot, text: str) -> None:
    reply = bot.slash(text)
    assert reply.status == 200
    assert reply.is_usage
    assert reply.body is not None
    assert "outside the range of dates" in answer_text(reply.body)


WORDS = st.sampled_from(
    [
        "last",
        "since",
        "until",
        "user",
        "actor",
        "account",
        "severity",
        "key",
        "status",
        "help",
        "payload",
        "payload=",
        "24h",
        "90m",
        "2026-11-29",
        "123456789012",
        "AKIAIOSFODNN7EXAMPLE",
        "&",
        "&amp;",
        "<",
        "&lt;@U123&gt;",
        "<!channel>",
        "%26",
        "é",
        "🔑",
        "\u202e",
    ]
)
SLASH_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=8).map(" ".join),
    st.text(max_size=20).map(lambda name: f"last 1d user {name}"),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example("last 1d user payload")
@example("payload")
@example("last 24h & payload={}")
@example("user <@U123> & last 1d")
@given(text=SLASH_TEXT)
def test_any_slash_text_gets_an_answer_and_never_a_5xx(bot: Bot, text: str) -> None:
    reply = bot.slash(text)

    assert reply.status == 200, (text, reply.status, reply.raw[:200])
    assert reply.body is not None, reply.raw[:200]
    if reply.is_usage:
        shown = answer_text(reply.body)
    else:
        shown = answer_text(bot.answer(reply.key, timeout=20).body)
    assert shown.strip()
    assert "Traceback" not in shown
    assert "could not answer" not in shown  # the lazy listener's catch-all


def test_a_text_holding_the_word_payload_is_still_a_slash_command(
    bot: Bot, make_bot: BotFactory
) -> None:
    """Bolt takes any form body containing "payload" for an interactivity request."""
    reply = bot.slash("last 1d user payload")

    assert reply.status == 200
    assert reply.text.startswith("🔎 Hunting")
    answer = bot.answer(reply.key).body
    assert answer["text"].startswith("Hunted ")
    # And a real click still works next to it.
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=5)))
    bot.poll()
    assert bot.click(event_id, ACTION_EXPECTED, TRIAGER) == 200
    wait_for(lambda: bot.store.history(event_id), what="the decision")


def test_healthz_reports_the_scheduler_and_the_last_poll_age(bot: Bot) -> None:
    status, body = bot.healthz()
    assert status == 503  # no scheduler running, nothing polled yet
    assert body["scheduler_alive"] is False
    assert body["last_poll_age_seconds"] is None

    bot.parts.state.alive = lambda: True
    status, body = bot.healthz()
    assert status == 200  # alive, and no poll yet is not stale
    assert body["ok"] is True

    bot.poll()
    status, body = bot.healthz()
    assert status == 200
    assert body["scheduler_alive"] is True
    assert isinstance(body["last_poll_age_seconds"], float)
    assert 0 <= body["last_poll_age_seconds"] < 600
    assert set(body) == {"ok", "scheduler_alive", "last_poll_age_seconds", "detail", "queue"}
    assert body["queue"] is None  # no KEYHUNT_SQS_QUEUE_URL (tests/test_realtime.py has one)
    assert json.dumps(body)  # plain JSON
