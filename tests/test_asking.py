"""Asking the owner and containing the key, end to end through the HTTP fakes (issue 9).

moto's IAM holds the users, keys and tags; the Slack fake answers users.lookupByEmail,
conversations.open (DM channels) and views.open; every request to the bot is signed.

The scenario: SSO session alice@example.com creates a key for deploy-bot -> DM to Alice ->
"No" -> escalation in the alert's thread with the responders mentioned once -> a responder
clicks Deactivate (behind Slack's confirm dialog) -> the key is Inactive in moto ->
Reactivate -> Active; every step audited once.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.render import ACTION_DEACTIVATE, ACTION_INVESTIGATE, ACTION_REACTIVATE, ACTION_SNOOZE
from bot.render_asking import (
    ACTION_OWNER_NO,
    ACTION_OWNER_YES,
    REASON_BLOCK,
    REASON_INPUT,
    VIEW_OWNER_REASON,
    VIEW_SNOOZE,
)
from bot.stored import ASKED, CONFIRMED, DENIED, TIMED_OUT, UNRESOLVED
from bot.triage import CONFIRMED_BY_ACTOR
from keyhunt_dev import records as r
from keyhunt_dev.aws import FakeAWS
from tests.conftest import keyhunt_env, run_keyhunt
from tests.slackbot import (
    CALLER,
    CHANNEL,
    OUTSIDER,
    REGION,
    SIGNING_SECRET,
    TRIAGER,
    Bot,
    BotFactory,
    buttons_of,
    mrkdwn_texts,
    now_utc,
    unique,
    wait_for,
)

ALICE, RESPONDER, BOB = "U0ALICE", "U0RESP", "U0BOBOWNER"
ROLE = "AWSReservedSSO_Admin_0123456789abcdef"


def iam() -> Any:
    return boto3.Session().client("iam", region_name=REGION)  # the env now, not a cached default


def sso_key_for_service_user(factory: BotFactory, email: str = "alice@example.com") -> tuple:
    """A real key in moto for a fresh service user, made (says CloudTrail) by an SSO session."""
    user = unique("deploy-bot")
    iam().create_user(UserName=user, Tags=[{"Key": "owner", "Value": "bob@example.com"}])
    key = iam().create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    record = r.create_access_key(
        r.assumed_role(CALLER, ROLE, email),
        CALLER,
        now_utc() - timedelta(minutes=2),
        user=user,
        new_key=key,
        agent="aws-cli/2.15.0 <@U0EVIL> *bold*",
        event_id=unique("evt"),
    )
    (event_id,) = factory.seed(record)
    return event_id, user, key


def another_key(factory: BotFactory, user: str, *, keep: bool = True) -> str:
    """A further key for `user` by the same SSO session, real in moto (unless not `keep`:
    IAM allows two keys a user); its event ID."""
    key = iam().create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    if not keep:
        iam().delete_access_key(UserName=user, AccessKeyId=key)
    record = r.create_access_key(
        r.assumed_role(CALLER, ROLE, "alice@example.com"),
        CALLER,
        now_utc(),
        user=user,
        new_key=key,
        event_id=unique("evt"),
    )
    return factory.seed(record)[0]


def snooze_from_menu(bot: Bot, event_id: str, days: int, reason: str) -> int:
    """ "Snooze similar for Nd" from the alert's menu, then its modal: the submission's status."""
    assert bot.click_menu(event_id, ACTION_SNOOZE, f'["{event_id}",{days}]', TRIAGER) == 200
    views = bot.slack.views
    view = wait_for(lambda: [v for v in views if v.callback_id == VIEW_SNOOZE])[-1]
    status, _ = bot.submit(view, {REASON_BLOCK: {REASON_INPUT: reason}}, TRIAGER)
    return status


def key_status(user: str, key: str) -> str:
    listed = iam().list_access_keys(UserName=user)["AccessKeyMetadata"]
    return next(k["Status"] for k in listed if k["AccessKeyId"] == key)


def responder_bot(make_bot: BotFactory, **env: str) -> Bot:
    make_bot.slack.emails.update({"alice@example.com": ALICE, "bob@example.com": BOB})
    settings = {
        "KEYHUNT_RESPONDERS": RESPONDER,
        "KEYHUNT_RESPONSE_ACTIONS": "deactivate",
        "KEYHUNT_TRIAGERS": f"{TRIAGER},{RESPONDER}",
        **env,
    }
    return make_bot(**settings)


def thread_texts(bot: Bot, event_id: str) -> list[str]:
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.ts
    # What a reader sees: the blocks (the notification text drops the formatting).
    return [
        " ".join(mrkdwn_texts(m.blocks)) or m.text
        for m in bot.slack.thread(CHANNEL, stored.message.ts)
    ]


def alert_blocks(bot: Bot, event_id: str) -> list[dict[str, Any]]:
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.message.ts
    return bot.slack.messages[CHANNEL][stored.message.ts].blocks


def audit_counts(bot: Bot, event_id: str) -> Counter[str]:
    since = now_utc() - timedelta(days=1)
    return Counter(e.action for e in bot.store.audit_since(since) if e.event_id == event_id)


def test_the_whole_flow_no_escalate_deactivate_reactivate(make_bot: BotFactory) -> None:
    bot = responder_bot(make_bot)
    event_id, user, key = sso_key_for_service_user(make_bot)
    bot.poll()

    # The alert names the people, and says the question is out.
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.engagement is not None
    people = stored.engagement
    assert (people.actor_user, people.state) == (ALICE, ASKED)
    assert people.actor_via == "the SSO session name"  # shown as `the SSO session name`
    assert people.target_user == BOB  # deploy-bot's owner tag
    text = " ".join(mrkdwn_texts(alert_blocks(bot, event_id)))
    assert f"👤 actor <@{ALICE}>" in text
    assert f"owner <@{BOB}>" in text
    assert "Was this you?" in text
    assert buttons_of(alert_blocks(bot, event_id)) == [
        "Expected rotation",
        "Investigate",
        "Deactivate key",
    ]

    # The DM: the facts, escaped; two buttons.
    dm = make_bot.slack.dms[ALICE]
    (question,) = make_bot.slack.channel_messages(dm)
    assert buttons_of(question.blocks) == ["Yes, this was me", "No, I didn't"]
    shown = " ".join(mrkdwn_texts(question.blocks))
    assert key in shown
    assert user in shown
    assert "<@U0EVIL>" not in shown
    assert "`aws-cli/2.15.0 &lt;@U0EVIL&gt; *bold*`" in shown

    # "No" -> escalation in the thread, the responders mentioned once.
    assert bot.click_dm(event_id, ACTION_OWNER_NO, ALICE) == 200
    wait_for(lambda: any(f"<@{RESPONDER}>" in t for t in thread_texts(bot, event_id)))
    escalations = [t for t in thread_texts(bot, event_id) if f"<@{RESPONDER}>" in t]
    assert len(escalations) == 1
    assert "answered *No, I didn't*" in escalations[0]
    wait_for(lambda: "Escalated" in mrkdwn_texts(alert_blocks(bot, event_id))[0])
    wait_for(lambda: buttons_of(make_bot.slack.channel_messages(dm)[0].blocks) == [])
    bot.poll()  # a later cycle does not escalate again
    assert len([t for t in thread_texts(bot, event_id) if f"<@{RESPONDER}>" in t]) == 1

    # Deactivate: Slack's confirm dialog names the key and the user.
    (button,) = [
        e
        for b in alert_blocks(bot, event_id)
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") == ACTION_DEACTIVATE
    ]
    assert key in button["confirm"]["text"]["text"]
    assert user in button["confirm"]["text"]["text"]
    assert bot.click(event_id, ACTION_DEACTIVATE, RESPONDER) == 200
    wait_for(lambda: key_status(user, key) == "Inactive", what="the key deactivated in moto")
    wait_for(lambda: "Reactivate key" in buttons_of(alert_blocks(bot, event_id)))
    assert any(
        f"deactivated* by <@{RESPONDER}>" in t for t in mrkdwn_texts(alert_blocks(bot, event_id))
    )
    assert any("deactivated" in t and "nothing deleted" in t for t in thread_texts(bot, event_id))

    # Reactivate undoes it.
    assert bot.click(event_id, ACTION_REACTIVATE, RESPONDER) == 200
    wait_for(lambda: key_status(user, key) == "Active", what="the key reactivated in moto")
    wait_for(lambda: "Deactivate key" in buttons_of(alert_blocks(bot, event_id)))

    assert audit_counts(bot, event_id) == Counter(
        {"asked": 1, "answered_denied": 1, "escalated": 1, "deactivate": 1, "reactivate": 1}
    )


def test_yes_with_a_reason_confirms_and_never_closes(make_bot: BotFactory) -> None:
    bot = responder_bot(make_bot)
    event_id, _, _ = sso_key_for_service_user(make_bot)
    bot.poll()
    assert bot.click_dm(event_id, ACTION_OWNER_YES, ALICE) == 200
    view = wait_for(
        lambda: [v for v in make_bot.slack.views if v.callback_id == VIEW_OWNER_REASON]
    )[0]
    status, _ = bot.submit(view, {REASON_BLOCK: {REASON_INPUT: "rotating <!channel> CI"}}, ALICE)
    assert status == 200
    stored = wait_for(
        lambda: (
            (s := bot.store.get(event_id))
            and s.engagement
            and s.engagement.state == CONFIRMED
            and s
        )
    )
    assert stored.triage.status == CONFIRMED_BY_ACTOR  # lowered, still shown, still open
    assert stored.engagement.reason == "rotating <!channel> CI"
    blocks = alert_blocks(bot, event_id)
    wait_for(
        lambda: any("Yes, this was me" in t for t in mrkdwn_texts(alert_blocks(bot, event_id)))
    )
    text = " ".join(mrkdwn_texts(alert_blocks(bot, event_id)))
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    assert buttons_of(blocks)[:2] == ["Expected rotation", "Investigate"]
    # A confirmed key is never escalated, even after the deadline.
    later = make_bot(clock=lambda: now_utc() + timedelta(hours=2), **_env())
    later.parts.asking.escalate_due()
    assert not [t for t in thread_texts(bot, event_id) if f"<@{RESPONDER}>" in t]


def _env() -> dict[str, str]:
    return {
        "KEYHUNT_RESPONDERS": RESPONDER,
        "KEYHUNT_RESPONSE_ACTIONS": "deactivate",
        "KEYHUNT_TRIAGERS": f"{TRIAGER},{RESPONDER}",
    }


def test_no_answer_escalates_after_a_restart(make_bot: BotFactory) -> None:
    """The deadline is stored: the process asking is gone; the one after it escalates."""
    first = responder_bot(make_bot)
    event_id, _, _ = sso_key_for_service_user(make_bot)
    first.poll()
    first.close()
    make_bot.bots.remove(first)
    early = make_bot(clock=lambda: now_utc() + timedelta(minutes=10), **_env())
    assert early.parts.asking.escalate_due() == 0  # not yet
    late = make_bot(clock=lambda: now_utc() + timedelta(minutes=31), **_env())
    assert late.parts.asking.escalate_due() == 1
    assert late.parts.asking.escalate_due() == 0  # once
    stored = late.store.get(event_id)
    assert stored is not None
    assert stored.engagement is not None
    assert stored.engagement.state == TIMED_OUT
    (escalation,) = [t for t in thread_texts(late, event_id) if f"<@{RESPONDER}>" in t]
    assert "did not answer" in escalation
    assert "within 30 min" in escalation
    assert audit_counts(late, event_id)["escalated"] == 1


def test_wrong_user_replayed_or_forged_answers_change_nothing(make_bot: BotFactory) -> None:
    bot = responder_bot(make_bot)
    event_id, _, _ = sso_key_for_service_user(make_bot)
    bot.poll()
    # Somebody else's click on Alice's question.
    assert bot.click_dm(event_id, ACTION_OWNER_NO, OUTSIDER) == 200
    wait_for(lambda: any(e.user == OUTSIDER for e in make_bot.slack.ephemerals))
    # A forged request: wrong signature; and a replayed one: a stale timestamp.
    assert bot.click_dm(event_id, ACTION_OWNER_NO, ALICE, secret="not-" + SIGNING_SECRET) == 401
    old = int(now_utc().timestamp()) - 3600
    assert bot.click_dm(event_id, ACTION_OWNER_NO, ALICE, timestamp=old) == 401
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.engagement is not None
    assert stored.engagement.state == ASKED
    # The real answer, then the same click again: taken once.
    assert bot.click_dm(event_id, ACTION_OWNER_NO, ALICE) == 200
    wait_for(lambda: (s := bot.store.get(event_id)) and s.engagement.escalated_at is not None)
    assert bot.click_dm(event_id, ACTION_OWNER_YES, ALICE) == 200
    wait_for(lambda: len([e for e in make_bot.slack.ephemerals if e.user == ALICE]) >= 1)
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.engagement is not None
    assert stored.engagement.state == DENIED
    assert audit_counts(bot, event_id)["answered_denied"] == 1
    assert not make_bot.slack.views  # no modal for an answered question


def test_no_mapping_means_no_dm_and_the_alert_says_so(make_bot: BotFactory) -> None:
    bot = responder_bot(make_bot)
    event_id, _, _ = sso_key_for_service_user(make_bot, email="nobody@example.com")
    bot.poll()
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.engagement is not None
    assert stored.engagement.state == UNRESOLVED
    assert not make_bot.slack.calls_to("conversations.open")
    text = " ".join(mrkdwn_texts(alert_blocks(bot, event_id)))
    assert "no Slack user for the actor" in text
    assert "nobody asked" in text


def test_deactivate_is_refused_for_non_responders_and_inactive_keys(make_bot: BotFactory) -> None:
    bot = responder_bot(make_bot)
    event_id, user, key = sso_key_for_service_user(make_bot)
    bot.poll()
    assert bot.click(event_id, ACTION_DEACTIVATE, TRIAGER) == 200
    wait_for(lambda: any("KEYHUNT_RESPONDERS" in e.text for e in make_bot.slack.ephemerals))
    assert key_status(user, key) == "Active"
    iam().update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")
    assert bot.click(event_id, ACTION_DEACTIVATE, RESPONDER) == 200
    wait_for(lambda: any("not Active" in e.text for e in make_bot.slack.ephemerals))
    assert audit_counts(bot, event_id)["deactivate"] == 0


def test_response_actions_are_off_by_default(make_bot: BotFactory) -> None:
    bot = make_bot()
    event_id, _, _ = sso_key_for_service_user(make_bot)
    bot.poll()
    assert buttons_of(alert_blocks(bot, event_id)) == ["Expected rotation", "Investigate"]
    assert bot.click(event_id, ACTION_DEACTIVATE, TRIAGER) == 200
    wait_for(lambda: any("KEYHUNT_RESPONDERS" in e.text for e in make_bot.slack.ephemerals))


def test_a_second_key_after_a_deactivation_is_alerted_even_when_snoozed(
    make_bot: BotFactory,
) -> None:
    bot = responder_bot(make_bot)
    event_id, user, key = sso_key_for_service_user(make_bot)
    bot.poll()
    # Snooze similar for 7 days (the menu, then the reason modal)...
    assert snooze_from_menu(bot, event_id, 7, "deploy rotation") == 200
    wait_for(lambda: bot.store.active_snoozes(now_utc()))
    # ...then deactivate; the attacker makes a second key, which the snooze would cover.
    assert bot.click(event_id, ACTION_DEACTIVATE, RESPONDER) == 200
    wait_for(lambda: key_status(user, key) == "Inactive")
    second_id = another_key(make_bot, user)
    bot.poll()
    stored = bot.store.get(second_id)
    assert stored is not None
    assert stored.message.ts, "posted despite the snooze"
    assert stored.finding.severity.value == "critical"
    assert any("A second key" in t for t in mrkdwn_texts(alert_blocks(bot, second_id)))


def test_snooze_skips_similar_alerts_until_lifted(make_bot: BotFactory) -> None:
    bot = responder_bot(make_bot)
    event_id, user, _ = sso_key_for_service_user(make_bot)
    bot.poll()
    assert bot.click_menu(event_id, ACTION_SNOOZE, f'["{event_id}",1]', TRIAGER) == 200
    view = wait_for(lambda: [v for v in make_bot.slack.views if v.callback_id == VIEW_SNOOZE])[0]
    # No reason: the modal says so and nothing is stored.
    status, raw = bot.submit(view, {REASON_BLOCK: {REASON_INPUT: " "}}, TRIAGER)
    assert status == 200
    assert b"errors" in raw
    assert not bot.store.active_snoozes(now_utc())
    # The outsider's submission is refused in the modal itself.
    status, raw = bot.submit(view, {REASON_BLOCK: {REASON_INPUT: "x"}}, OUTSIDER)
    assert status == 200
    assert b"KEYHUNT_TRIAGERS" in raw
    assert not bot.store.active_snoozes(now_utc())
    status, _ = bot.submit(view, {REASON_BLOCK: {REASON_INPUT: "known CI job"}}, TRIAGER)
    (snooze,) = wait_for(lambda: bot.store.active_snoozes(now_utc()))
    assert snooze.created_by == TRIAGER
    wait_for(lambda: any("snoozed similar alerts" in t for t in thread_texts(bot, event_id)))

    snoozed = another_key(make_bot, user, keep=False)
    bot.poll()
    stored = bot.store.get(snoozed)
    assert stored is not None
    assert stored.message.state == "skipped"
    assert not stored.message.ts
    # /keyhunt snoozes lists it; /keyhunt unsnooze lifts it.
    listing = bot.slash("snoozes")
    assert snooze.id in str(bot.answer(listing.key).body)
    lifted = bot.slash(f"unsnooze {snooze.id}")
    assert "lifted" in str(bot.answer(lifted.key).body)
    posted = another_key(make_bot, user, keep=False)
    bot.poll()
    stored = bot.store.get(posted)
    assert stored is not None
    assert stored.message.ts
    assert audit_counts(bot, event_id) >= Counter({"snoozed": 1, "unsnoozed": 1})


def test_root_findings_cannot_be_snoozed(make_bot: BotFactory) -> None:
    from tests.slackbot import root_key

    bot = make_bot()
    (event_id,) = make_bot.seed(root_key(now_utc()))
    bot.poll()
    elements = [
        e for b in alert_blocks(bot, event_id) if b["type"] == "actions" for e in b["elements"]
    ]
    assert not [e for e in elements if e.get("action_id") == ACTION_SNOOZE]
    # A menu choice keyhunt never drew (a forged option) is refused, without a modal.
    assert bot.click_menu(event_id, ACTION_SNOOZE, f'["{event_id}",30]', TRIAGER) == 200
    wait_for(lambda: any("cannot be snoozed" in e.text for e in make_bot.slack.ephemerals))
    assert not make_bot.slack.views
    assert not bot.store.active_snoozes(now_utc())


@pytest.mark.parametrize("text", ["unsnooze", "unsnooze nope", "snoozes now"])
def test_bad_snooze_commands_answer_with_usage(make_bot: BotFactory, text: str) -> None:
    reply = make_bot().slash(text)
    assert reply.is_usage


def test_keyhunt_audit_says_who_decided_what(
    make_bot: BotFactory, fake_aws: FakeAWS, tmp_path: Path
) -> None:
    bot = responder_bot(make_bot)
    event_id, _, _ = sso_key_for_service_user(make_bot)
    bot.poll()
    assert bot.click_dm(event_id, ACTION_OWNER_NO, ALICE) == 200
    wait_for(lambda: audit_counts(bot, event_id)["escalated"] == 1)
    replies = len(thread_texts(bot, event_id))
    bot.click(event_id, ACTION_INVESTIGATE, TRIAGER)
    wait_for(lambda: audit_counts(bot, event_id)["triage_investigating"] == 1)
    # Its investigation is posted before the test ends: no lookup of it outlives the test.
    wait_for(lambda: len(thread_texts(bot, event_id)) > replies, what="the investigation")
    env = keyhunt_env(
        fake_aws, tmp_path, KEYHUNT_DATABASE_URL=f"sqlite:///{make_bot.db}", KEYHUNT_CONFIG=""
    )
    done = run_keyhunt(["audit", "--last", "1d", "--format", "jsonl"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    mine = [json.loads(line) for line in done.stdout.splitlines()]
    mine = [(e["user_id"], e["action"]) for e in mine if e["event_id"] == event_id]
    assert mine == [
        ("keyhunt", "asked"),
        (ALICE, "answered_denied"),
        ("keyhunt", "escalated"),
        (TRIAGER, "triage_investigating"),
    ]
    table = run_keyhunt(["audit", "--last", "1d"], env, tmp_path)
    assert "answered_denied" in table.stdout
    assert "TIME (UTC)" in table.stdout
    usage = run_keyhunt(["audit"], env, tmp_path)
    assert usage.returncode == 2


def test_an_expired_snooze_stops_applying_and_the_digest_says_so(make_bot: BotFactory) -> None:
    from bot.snoozes import new_snooze

    bot = responder_bot(make_bot)
    event_id, user, _ = sso_key_for_service_user(make_bot)
    bot.poll()
    stored = bot.store.get(event_id)
    assert stored is not None
    made = new_snooze(stored, 1, "known CI job", TRIAGER, now_utc() - timedelta(days=1, hours=1))
    assert made is not None
    snooze = bot.store.add_snooze(made)
    assert not bot.store.active_snoozes(now_utc())  # ran out an hour ago, by itself
    later = another_key(make_bot, user)
    bot.poll()
    posted = bot.store.get(later)
    assert posted is not None
    assert posted.message.ts, "an expired snooze covers nothing"
    bot.parts.digest()
    digest = make_bot.slack.channel_messages(CHANNEL)[-1]
    assert f"snooze `{snooze.id}` expired" in " ".join(mrkdwn_texts(digest.blocks))


def test_a_burst_by_one_person_asks_them_a_few_times_not_once_per_key(
    make_bot: BotFactory,
) -> None:
    from bot.asking import QUESTIONS_PER_PERSON_PER_CYCLE

    bot = responder_bot(make_bot)
    made = [sso_key_for_service_user(make_bot)[0] for _ in range(5)]
    bot.poll()
    states = Counter(
        s.engagement.state
        for s in (bot.store.get(event_id) for event_id in made)
        if s is not None and s.engagement is not None
    )
    assert states == Counter({ASKED: QUESTIONS_PER_PERSON_PER_CYCLE, "not_asked": 2})
    assert len(make_bot.slack.channel_messages(make_bot.slack.dms[ALICE])) == 3
