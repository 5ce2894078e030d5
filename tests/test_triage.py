"""Triage is a state machine: only the transitions a message offers, only from the state it
showed. Unit tests of bot/triage.py, then the same rules through signed HTTP clicks."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from bot.render import ACTION_EXPECTED, ACTION_INVESTIGATE, triage_buttons
from bot.triage import (
    EXPECTED_ROTATION,
    INVESTIGATING,
    OPEN,
    STATUSES,
    TRANSITIONS,
    ButtonValue,
    allowed,
    decode_value,
    encode_value,
)
from keyhunt_dev.slack import post_to_bot
from tests.slackbot import (
    CHANNEL,
    SIGNING_SECRET,
    TRIAGER,
    BotFactory,
    key_for_other,
    now_utc,
    wait_for,
)


def test_the_transitions_are_the_buttons_each_state_shows() -> None:
    targets = {ACTION_EXPECTED: EXPECTED_ROTATION, ACTION_INVESTIGATE: INVESTIGATING}
    for status in STATUSES:
        shown = [targets[b["action_id"]] for b in triage_buttons(status, "evt-1")]
        assert tuple(shown) == TRANSITIONS[status]
    assert allowed(OPEN, INVESTIGATING)
    assert allowed(INVESTIGATING, EXPECTED_ROTATION)
    assert not allowed(EXPECTED_ROTATION, INVESTIGATING)  # no way back
    assert not allowed(OPEN, OPEN)
    assert not allowed("closed", OPEN)


@pytest.mark.parametrize("status", STATUSES)
def test_a_button_value_round_trips(status: str) -> None:
    event_id = "a" * 128  # the longest event ID parse lets through
    value = encode_value(event_id, status)
    assert len(value) <= 2000
    assert decode_value(value) == ButtonValue(event_id, status)


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("5f0c2a1e-legacy-id", ButtonValue("5f0c2a1e-legacy-id", None)),  # alerts of 0.1
        ("", None),
        ("[", None),
        ('["evt"]', None),
        ('["evt","closed"]', None),
        ('["","open"]', None),
        ('[1,"open"]', None),
        ('{"e":"evt","v":"open"}', ButtonValue('{"e":"evt","v":"open"}', None)),
    ],
)
def test_values_keyhunt_never_wrote_are_not_taken_for_a_version(
    value: str, decoded: ButtonValue | None
) -> None:
    assert decode_value(value) == decoded


def ephemerals_to(make_bot: BotFactory, user: str) -> list[str]:
    return [e.text for e in make_bot.slack.ephemerals if e.user == user]


def investigations(make_bot: BotFactory, parent: str) -> int:
    return len(make_bot.slack.thread(CHANNEL, parent)) - 1


def test_a_replayed_investigate_click_cannot_reopen_an_expected_rotation(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(key_for_other(now_utc() - timedelta(minutes=10)))
    bot.poll()
    # An attacker (or a proxy) keeps a signed Investigate click made on the open alert.
    replay = bot.click_body(event_id, ACTION_INVESTIGATE, TRIAGER)
    assert bot.click(event_id, ACTION_EXPECTED, "U0DAVE") == 200
    wait_for(lambda: make_bot.slack.calls_to("chat.update"), what="the update")

    status, _, _ = post_to_bot(bot.events_url, replay, SIGNING_SECRET)  # < 5 min old: valid

    assert status == 200
    wait_for(lambda: ephemerals_to(make_bot, TRIAGER), what="the refusal")
    (answer,) = ephemerals_to(make_bot, TRIAGER)
    assert "already *expected rotation* by <@U0DAVE>" in answer
    assert "nothing changed" in answer
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.triage.status == EXPECTED_ROTATION
    assert [d.status for d in bot.store.history(event_id)] == [EXPECTED_ROTATION]
    time.sleep(0.3)  # let a stray investigation land, if there were one
    assert investigations(make_bot, str(stored.message.ts)) == 0
    assert len(make_bot.slack.calls_to("chat.update")) == 1


def test_ten_people_clicking_both_buttons_at_once_make_one_transition(
    make_bot: BotFactory,
) -> None:
    bot = make_bot(workers=32)
    (event_id,) = make_bot.seed(key_for_other(now_utc() - timedelta(minutes=10)))
    bot.poll()
    users = [f"U0USER{i:02d}" for i in range(10)]
    bodies = [
        bot.click_body(event_id, action, user)
        for user in users
        for action in (ACTION_EXPECTED, ACTION_INVESTIGATE)
    ]

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(
            pool.map(lambda b: post_to_bot(bot.events_url, b, SIGNING_SECRET)[0], bodies)
        )

    assert statuses == [200] * 20
    # Every click was made on the open alert: one wins, nineteen are told nothing changed.
    wait_for(lambda: len(make_bot.slack.ephemerals) >= 19, what="nineteen refusals")
    history = bot.store.history(event_id)
    assert len(history) == 1
    assert history[0].previous_status == OPEN
    stored = bot.store.get(event_id)
    assert stored is not None
    assert stored.triage.status == history[0].status
    if stored.triage.status == INVESTIGATING:
        wait_for(
            lambda: investigations(make_bot, str(stored.message.ts)) >= 1, what="the investigation"
        )
    time.sleep(0.3)
    assert investigations(make_bot, str(stored.message.ts)) == (
        stored.triage.status == INVESTIGATING
    )
    assert len(make_bot.slack.calls_to("chat.update")) == 1
    assert len(make_bot.slack.ephemerals) == 19


def test_expected_rotation_offered_while_investigating_is_accepted_once(
    make_bot: BotFactory,
) -> None:
    bot = make_bot()
    (event_id,) = make_bot.seed(key_for_other(now_utc() - timedelta(minutes=10)))
    bot.poll()
    assert bot.click(event_id, ACTION_INVESTIGATE, TRIAGER) == 200
    wait_for(lambda: make_bot.slack.calls_to("chat.update"), what="the first update")
    # The message now offers only Expected rotation, drawn for "investigating".
    assert bot.click(event_id, ACTION_EXPECTED, "U0DAVE") == 200
    wait_for(lambda: len(make_bot.slack.calls_to("chat.update")) >= 2, what="the second update")
    assert [(d.previous_status, d.status) for d in bot.store.history(event_id)] == [
        (OPEN, INVESTIGATING),
        (INVESTIGATING, EXPECTED_ROTATION),
    ]
