"""CloudTrail text is attacker-chosen: through the whole bot it stays literal and bounded.

CONTRACT section 5: text that comes from CloudTrail (user agents, names, error messages) is
shown literally: it can never mention a user or channel, form a link, or break the message's
formatting. Assertions are on the JSON the bot sent to (fake) Slack, which also enforces
Block Kit's limits and would refuse an oversized message.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.render import ACTION_EXPECTED
from keyhunt_dev import records as r
from tests.slack_tokens import without_date_tokens
from tests.slackbot import (
    CALLER,
    CHANNEL,
    SLACK_CONTROL,
    TRIAGER,
    BotFactory,
    block_kit_problems,
    buttons_of,
    mrkdwn_texts,
    new_key_id,
    now_utc,
    ok_calls,
    outside_code_spans,
    text_objects,
    unique,
    wait_for,
)

HOSTILE_AGENT = "<!channel> <https://evil.example|click> *bold* `backtick` _it_ ~strike~"
HOSTILE_NAME = "<@U123>"


def hostile_records(when: Any) -> list[dict[str, Any]]:
    """A key made with a hostile user agent by a user whose name is a mention; a failed call
    whose error is a broadcast; both aimed at a user named like a link."""
    actor = r.iam_user(CALLER, HOSTILE_NAME)
    made = r.create_access_key(
        actor,
        CALLER,
        when,
        user="<https://evil.example/x|bob>",
        new_key=new_key_id(),
        agent=HOSTILE_AGENT,
        ip="<!here>",
        event_id=unique("hostile"),
    )
    failed = r.create_access_key(
        actor,
        CALLER,
        when + timedelta(minutes=1),
        user="*bob*",
        new_key=None,
        agent=HOSTILE_AGENT,
        error=("<!everyone>", "User <@U999> is not authorized `x` *y*"),
        event_id=unique("hostile"),
    )
    return [made, failed]


def assert_literal(message: dict[str, Any], allowed_mentions: tuple[str, ...] = ()) -> None:
    """No mention, broadcast or link outside `allowed_mentions`; every mrkdwn object is
    verbatim; hostile words only ever inside inline code; Block Kit limits respected."""
    dumped = without_date_tokens(json.dumps(message, ensure_ascii=False))
    for allowed in allowed_mentions:
        dumped = dumped.replace(allowed, "")
    for control in SLACK_CONTROL:
        assert control not in dumped, (control, dumped[:500])
    for obj in text_objects(message.get("blocks") or []):
        if obj["type"] == "mrkdwn":
            assert obj.get("verbatim") is True, obj
            visible = outside_code_spans(obj["text"])
            for word in ("evil", "bold", "backtick", "strike", "channel", "U123", "U999"):
                assert word not in visible, (word, obj["text"][:300])
            assert obj["text"].count("`") % 2 == 0, obj["text"][:300]  # code spans balanced
    text = str(message.get("text", ""))
    assert text.strip()
    for ch in "<>*`_~":
        assert ch not in text, (ch, text)
    assert block_kit_problems(list(message.get("blocks") or [])) == []


def test_hostile_names_and_user_agents_stay_literal_in_alerts_updates_and_answers(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    events = make_bot.seed(*hostile_records(now_utc() - timedelta(minutes=30)))

    outcome = bot.poll()

    assert outcome.delivery is not None
    assert outcome.delivery.posted == 2
    posts = ok_calls(make_bot.slack, "chat.postMessage")
    assert len(posts) == 2  # Slack (the fake) accepted both
    for post in posts:
        assert_literal(post.args)
        # The hostile text is there, shown literally (escaped, inside code).
        shown = "\n".join(mrkdwn_texts(post.args["blocks"]))
        assert "`&lt;@U123&gt;`" in shown
        assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; *bold* ˋbacktickˋ" in shown

    # After a click the message gains exactly one real mention: the triager's.
    assert bot.click(events[0], ACTION_EXPECTED, TRIAGER) == 200
    (update,) = wait_for(lambda: ok_calls(make_bot.slack, "chat.update"), what="chat.update")
    assert_literal(update.args, allowed_mentions=(f"<@{TRIAGER}>",))
    assert f"<@{TRIAGER}>" in json.dumps(update.args)

    # The /keyhunt answer lists both findings, literally too.
    reply = bot.slash("last 24h")
    answer = bot.answer(reply.key).body
    assert_literal(answer)
    assert answer["text"].startswith("Hunted 1 account × 1 region")
    assert "&lt;@U123&gt;" in "\n".join(mrkdwn_texts(answer["blocks"]))


def test_huge_hostile_fields_are_bounded_and_slack_accepts_the_message(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    huge_agent = ("<!channel> &<>`*" * 700)[:10_000]  # 10 kB, the worst characters
    actor = r.iam_user(CALLER, "<@U123>" * 200, path="/" + "&" * 300 + "/")
    record = r.create_access_key(
        actor,
        CALLER,
        now_utc() - timedelta(minutes=5),
        user="<!here>" * 500,
        new_key=None,
        agent=huge_agent,
        ip="<" * 5000,
        error=("&" * 5000, "<!channel>" * 1000),
        event_id=unique("huge"),
    )
    (event_id,) = make_bot.seed(record)

    outcome = bot.poll()

    assert outcome.delivery is not None
    assert outcome.delivery.posted == 1
    (post,) = ok_calls(make_bot.slack, "chat.postMessage")
    assert_literal(post.args)
    assert len(json.dumps(post.args)) < 20_000  # bounded, whatever came in
    assert buttons_of(post.args["blocks"]) == ["Expected rotation", "Investigate"]
    # And the hunt answer with it, too.
    answer = bot.answer(bot.slash("last 24h").key).body
    assert_literal(answer)
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.channel == CHANNEL
