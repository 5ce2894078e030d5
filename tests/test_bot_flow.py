"""The triage loop end to end: poll → post → click → message updated in place → hunt shows it.

Real bot (Bolt app over HTTP, SQLite store, Poller, Poster), FakeAWS and FakeSlack over HTTP,
every request signed like Slack signs it. The flows a click starts run over Socket Mode too
(`transport`): the same assertions, with envelopes in place of signed requests.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest

from bot.hunting import HuntRequest
from bot.render import ACTION_EXPECTED, ACTION_INVESTIGATE
from bot.triage import EXPECTED_ROTATION, INVESTIGATING, OPEN
from checks.model import Window
from keyhunt_dev import records as r
from keyhunt_dev.slack import post_to_bot
from tests.conftest import keyhunt_env, run_keyhunt
from tests.slack_tokens import date_token
from tests.slackbot import (
    CALLER,
    CHANNEL,
    OUTSIDER,
    REGION,
    SIGNING_SECRET,
    TRANSPORTS,
    TRIAGER,
    BotFactory,
    buttons_of,
    key_for_other,
    mrkdwn_texts,
    now_utc,
    ok_calls,
    root_key,
    self_key,
    unique,
    wait_for,
)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_click_updates_the_alert_in_place_and_the_hunt_shows_the_decision(
    make_bot: BotFactory, tmp_path: Path, transport: str
) -> None:
    bot = make_bot(KEYHUNT_TRIAGERS=TRIAGER, transport=transport)
    (event_id,) = make_bot.seed(key_for_other(now_utc() - timedelta(minutes=30)))

    outcome = bot.poll()
    assert outcome.new_findings == 1
    assert outcome.delivery is not None
    assert outcome.delivery.posted == 1
    (post,) = ok_calls(make_bot.slack, "chat.postMessage")
    assert post.args["text"].strip()
    assert post.args["blocks"]
    assert buttons_of(post.args["blocks"]) == ["Expected rotation", "Investigate"]
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.ts == post.response["ts"]
    assert stored.message.channel == CHANNEL

    assert bot.click(event_id, ACTION_EXPECTED, TRIAGER) == 200
    update = wait_for(lambda: ok_calls(make_bot.slack, "chat.update"), what="chat.update")[0]

    # The same message, updated in place: decision, who (<@USER>) and when; no buttons left.
    assert (update.args["channel"], update.args["ts"]) == (CHANNEL, stored.message.ts)
    message = make_bot.slack.messages[CHANNEL][stored.message.ts]
    assert message.updated_count == 1
    texts = "\n".join(mrkdwn_texts(message.blocks))
    decision = bot.store.history(event_id)
    assert len(decision) == 1
    at = date_token(decision[0].at, "{time}")
    assert f"Expected rotation* — marked by <@{TRIAGER}> at {at}" in texts
    assert buttons_of(message.blocks) == []
    assert update.args["text"].strip()  # chat.update carries the fallback text too
    assert len(make_bot.slack.channel_messages(CHANNEL)) == 1  # nothing new was posted

    # The audit log: who, when, from what to what.
    (entry,) = decision
    assert (entry.status, entry.previous_status, entry.user_id) == (
        EXPECTED_ROTATION,
        OPEN,
        TRIAGER,
    )
    assert abs(entry.at - now_utc()) < timedelta(minutes=5)

    # run_request (the path /keyhunt and `keyhunt hunt` share) shows the new status...
    now = now_utc()
    result = bot.parts.hunter.hunt(HuntRequest(Window(now - timedelta(hours=24), now)))
    assert {f.event.event_id: f.status for f in result.findings} == {event_id: EXPECTED_ROTATION}

    # ...and so does the /keyhunt answer.
    reply = bot.slash("last 24h")
    assert reply.status == 200
    answer = bot.answer(reply.key).body
    assert "expected rotation" in "\n".join(mrkdwn_texts(answer["blocks"]))

    # ...and `keyhunt hunt` in another process, reading the same store.
    env = keyhunt_env(make_bot.aws, tmp_path, KEYHUNT_DATABASE_URL=bot.settings.database_url)
    done = run_keyhunt(["hunt", "--last", "24h", "--format", "jsonl"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(row["event_id"], row["status"]) for row in rows] == [(event_id, EXPECTED_ROTATION)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_investigate_assigns_the_clicker_and_posts_the_keys_activity_in_the_thread(
    make_bot: BotFactory, transport: str
) -> None:
    bot = make_bot(transport=transport)
    # A real IAM user and key in moto, so IAM can say who owns the key and when it was used.
    user = unique("svc")
    iam = boto3.Session().client("iam", region_name=REGION)  # the env now, not a cached default
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    created = now_utc() - timedelta(hours=2)
    record = key_for_other(created, user=user, key=key)
    with_key = r.iam_user(CALLER, user, access_key=key)
    activity = [
        r.api_call(
            with_key,
            CALLER,
            created + timedelta(minutes=5),
            "sts.amazonaws.com",
            "GetCallerIdentity",
        ),
        r.api_call(
            with_key, CALLER, created + timedelta(minutes=9), "s3.amazonaws.com", "ListBuckets"
        ),
    ]
    (event_id,) = make_bot.seed(record)
    make_bot.seed(*activity)
    bot.poll()

    assert bot.click(event_id, ACTION_INVESTIGATE, TRIAGER) == 200
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.ts
    thread = wait_for(
        lambda: make_bot.slack.thread(CHANNEL, str(stored.message.ts))[1:],
        what="investigation reply",
    )
    finding = bot.store.get(event_id)
    assert finding is not None
    assert (finding.triage.status, finding.triage.decided_by) == (INVESTIGATING, TRIAGER)
    (reply,) = thread
    body = "\n".join(mrkdwn_texts(reply.blocks))
    assert "sts:GetCallerIdentity" in body
    assert "s3:ListBuckets" in body
    assert f"owner `{user}`" in body
    assert reply.text.startswith("Investigation of ")

    wait_for(lambda: ok_calls(make_bot.slack, "chat.update"), what="chat.update")
    message = make_bot.slack.messages[CHANNEL][str(stored.message.ts)]
    texts = "\n".join(mrkdwn_texts(message.blocks))
    assert f"Investigating* — <@{TRIAGER}> since" in texts
    # Investigating can still be closed as an expected rotation; Investigate again cannot.
    assert buttons_of(message.blocks) == ["Expected rotation"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_click_by_someone_not_in_triagers_changes_nothing_and_is_told_why(
    make_bot: BotFactory, transport: str
) -> None:
    bot = make_bot(KEYHUNT_TRIAGERS=f"{TRIAGER},U0DAVE", transport=transport)
    (event_id,) = make_bot.seed(self_key(now_utc() - timedelta(minutes=10)))
    bot.poll()
    before = bot.store.get(event_id)

    assert bot.click(event_id, ACTION_EXPECTED, OUTSIDER) == 200
    (ephemeral,) = wait_for(lambda: make_bot.slack.ephemerals, what="an ephemeral answer")

    assert (ephemeral.user, ephemeral.channel) == (OUTSIDER, CHANNEL)
    assert "KEYHUNT_TRIAGERS" in ephemeral.text
    assert "nothing was changed" in ephemeral.text
    assert bot.store.get(event_id) == before
    assert bot.store.history(event_id) == []
    assert make_bot.slack.calls_to("chat.update") == []
    assert make_bot.slack.calls_to("chat.postMessage")[1:] == []  # no thread reply either


def test_repeated_and_concurrent_clicks_leave_one_audit_entry(make_bot: BotFactory) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=10)))
    bot.poll()
    body = bot.click_body(event_id, ACTION_EXPECTED, TRIAGER)

    assert bot.click(event_id, ACTION_EXPECTED, TRIAGER) == 200
    assert bot.click(event_id, ACTION_EXPECTED, TRIAGER) == 200  # a double click
    with ThreadPoolExecutor(max_workers=6) as pool:  # the same click, six times at once
        statuses = list(
            pool.map(lambda _: post_to_bot(bot.events_url, body, SIGNING_SECRET)[0], range(6))
        )
    assert statuses == [200] * 6
    # One click changed the alert; the seven others were made on the message as it was and
    # are told so, privately, changing nothing (they used to re-render it, eight updates).
    # The winner stores its decision before it redraws, so the losers' answers can come first.
    wait_for(lambda: len(make_bot.slack.ephemerals) >= 7, what="seven ephemeral answers")
    wait_for(lambda: make_bot.slack.calls_to("chat.update"), what="the winner's redraw")
    time.sleep(0.3)  # let any stray second redraw land before counting
    assert len(make_bot.slack.calls_to("chat.update")) == 1
    assert all("nothing changed" in e.text for e in make_bot.slack.ephemerals)

    (entry,) = bot.store.history(event_id)
    assert (entry.status, entry.previous_status) == (EXPECTED_ROTATION, OPEN)
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.triage.status == EXPECTED_ROTATION
    assert all(c.ok for c in make_bot.slack.calls_to("chat.update"))
    assert len(make_bot.slack.channel_messages(CHANNEL)) == 1


def test_concurrent_investigate_clicks_post_one_investigation(make_bot: BotFactory) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(key_for_other(now_utc() - timedelta(minutes=10)))
    bot.poll()
    users = [TRIAGER, "U0DAVE", "U0ERIN", TRIAGER]
    bodies = [bot.click_body(event_id, ACTION_INVESTIGATE, user) for user in users]
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(
            pool.map(lambda b: post_to_bot(bot.events_url, b, SIGNING_SECRET)[0], bodies)
        )
    assert statuses == [200] * 4
    # One click wins; the three others were made on the open alert and are told, privately,
    # that it is already being investigated (they used to re-render it: four updates).
    # The winner stores its decision before it redraws, so the losers' answers can come first.
    wait_for(lambda: len(make_bot.slack.ephemerals) >= 3, what="three ephemeral answers")
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.ts
    wait_for(
        lambda: len(make_bot.slack.thread(CHANNEL, str(stored.message.ts))) >= 2, what="a reply"
    )
    time.sleep(0.3)  # let any stray second investigation land before counting
    assert len(make_bot.slack.calls_to("chat.update")) == 1

    history = bot.store.history(event_id)
    assert len(history) == 1
    assert stored.triage.decided_by == history[0].user_id
    assert len(make_bot.slack.thread(CHANNEL, str(stored.message.ts))) == 2  # alert + one reply


def test_forged_signature_is_refused_with_401_and_nothing_happens(make_bot: BotFactory) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=10)))
    bot.poll()
    calls_before = len(make_bot.slack.calls)

    assert bot.click(event_id, ACTION_EXPECTED, TRIAGER, secret="not-the-secret") == 401
    forged = bot.slash("last 24h", secret="not-the-secret")
    assert forged.status == 401

    time.sleep(0.3)  # a listener started by mistake would have acted by now
    assert len(make_bot.slack.calls) == calls_before
    assert make_bot.slack.responses == []
    assert bot.store.history(event_id) == []
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.triage.status == OPEN


def test_a_replayed_request_older_than_five_minutes_is_refused(make_bot: BotFactory) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=10)))
    bot.poll()
    stale = int(time.time()) - 6 * 60  # correctly signed, but six minutes old

    assert bot.click(event_id, ACTION_EXPECTED, TRIAGER, timestamp=stale) == 401
    assert bot.slash("status", timestamp=stale).status == 401
    time.sleep(0.3)
    assert bot.store.history(event_id) == []
    assert make_bot.slack.calls_to("chat.update") == []
    assert make_bot.slack.responses == []


def failed_attempt(when: datetime) -> dict[str, object]:
    return r.create_access_key(
        r.iam_user(CALLER, unique("mallory")),
        CALLER,
        when,
        user=unique("bob"),
        new_key=None,
        error=("AccessDenied", "not authorized"),
        event_id=unique("failed"),
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_investigating_a_failed_attempt_points_to_a_hunt_of_the_actor(
    make_bot: BotFactory, transport: str
) -> None:
    bot = make_bot(transport=transport)
    (event_id,) = make_bot.seed(failed_attempt(now_utc() - timedelta(minutes=5)))
    bot.poll()

    assert bot.click(event_id, ACTION_INVESTIGATE, TRIAGER) == 200

    stored = bot.store.get(event_id)
    assert stored is not None
    (reply,) = wait_for(
        lambda: make_bot.slack.thread(CHANNEL, str(stored.message.ts))[1:], what="the thread reply"
    )
    assert "The call failed, so there is no key to follow" in reply.text
    assert bot.store.history(event_id)[0].status == INVESTIGATING


def test_the_failed_attempt_reply_has_no_raw_angle_brackets(make_bot: BotFactory) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(failed_attempt(now_utc() - timedelta(minutes=5)))
    bot.poll()
    bot.click(event_id, ACTION_INVESTIGATE, TRIAGER)
    stored = bot.store.get(event_id)
    assert stored is not None
    (reply,) = wait_for(
        lambda: make_bot.slack.thread(CHANNEL, str(stored.message.ts))[1:], what="the thread reply"
    )
    assert "<" not in reply.text
