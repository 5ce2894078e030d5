"""Block Kit for the people side of a finding: the "Was this you?" DM, its modal, the
escalation reply, the snooze modal and the containment replies. Pure, like bot.render, and
escaping the same way: every CloudTrail string goes through `code()`, every answer a person
typed through `plain()`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.render import Blocks, account_of, code, context, mrkdwn, plain, section, slack_time
from bot.stored import CONFIRMED, DENIED, Engagement, Snooze, StoredFinding

ACTION_OWNER_YES = "keyhunt_owner_yes"
ACTION_OWNER_NO = "keyhunt_owner_no"
VIEW_OWNER_REASON = "keyhunt_owner_reason"
VIEW_SNOOZE = "keyhunt_snooze_reason"
REASON_BLOCK, REASON_INPUT = "reason", "reason_text"


def question_facts(stored: StoredFinding) -> str:
    e = stored.finding.event
    return (
        f"*Key* {code(e.access_key_id, 128)} for {code(e.target_user, 64)} "
        f"in {code(account_of(stored.finding), 100)}\n"
        f"*When* {slack_time(e.event_time)} · *From* {code(e.source_ip, 64)}\n"
        f"*User agent* {code(e.user_agent, 200)}"
    )


def render_question(stored: StoredFinding, deadline: datetime) -> tuple[str, Blocks]:
    """The DM to the actor: the facts, and two buttons only they can answer."""
    e = stored.finding.event
    value = json.dumps([stored.event_id], separators=(",", ":"))
    text = f"keyhunt: did you create access key {plain(e.access_key_id, 128)}?"
    blocks: Blocks = [
        section(
            "*Was this you?* keyhunt saw a new long-term access key made by your identity, "
            f"{code(e.actor.arn, 200)}.\n{question_facts(stored)}"
        ),
        {
            "type": "actions",
            "block_id": "owner",
            "elements": [
                {
                    "type": "button",
                    "action_id": ACTION_OWNER_YES,
                    "text": {"type": "plain_text", "text": "Yes, this was me"},
                    "value": value,
                    "style": "primary",
                },
                {
                    "type": "button",
                    "action_id": ACTION_OWNER_NO,
                    "text": {"type": "plain_text", "text": "No, I didn't"},
                    "value": value,
                    "style": "danger",
                },
            ],
        },
        context(
            f"Unanswered by {slack_time(deadline, '{time}')}, the security team is told. "
            f"event {code(stored.event_id, 128)} · keyhunt"
        ),
    ]
    return text, blocks


def render_question_answered(stored: StoredFinding, people: Engagement) -> tuple[str, Blocks]:
    """The DM once answered (or escalated): the facts, and what happens now; no buttons."""
    if people.state == CONFIRMED:
        said = "You answered *Yes, this was me*. Thank you: the alert says so."
    elif people.state == DENIED:
        said = (
            "You answered *No, I didn't*. The security team has been told and will treat the "
            "key as compromised; they may contact you."
        )
    else:
        said = "No answer came in time, so the security team has been told."
    blocks: Blocks = [
        section(f"*Was this you?*\n{question_facts(stored)}"),
        section(said),
        context(f"event {code(stored.event_id, 128)} · keyhunt"),
    ]
    return "keyhunt: thank you, your answer is recorded", blocks


def reason_modal(event_id: str) -> dict[str, Any]:
    """ "Yes, this was me", with an optional reason."""
    return {
        "type": "modal",
        "callback_id": VIEW_OWNER_REASON,
        "private_metadata": json.dumps([event_id], separators=(",", ":")),
        "title": {"type": "plain_text", "text": "Yes, this was me"},
        "submit": {"type": "plain_text", "text": "Confirm"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Why did you create it? (optional)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }


def snooze_modal(event_id: str, days: int, stored: StoredFinding) -> dict[str, Any]:
    e = stored.finding.event
    return {
        "type": "modal",
        "callback_id": VIEW_SNOOZE,
        "private_metadata": json.dumps([event_id, days], separators=(",", ":")),
        "title": {"type": "plain_text", "text": f"Snooze for {days}d"},
        "submit": {"type": "plain_text", "text": "Snooze"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(
                f"No alert for keys {code(e.actor.name, 64)} makes for {code(e.target_user, 64)} "
                f"in {code(account_of(stored.finding), 100)} for {days} days. They are still "
                "stored and shown by hunts; root keys are never snoozed."
            ),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "max_length": 300,
                },
            },
        ],
    }


def render_escalation(
    stored: StoredFinding, people: Engagement, why: str, responders: Sequence[str]
) -> str:
    """The thread reply that escalates: the responders mentioned (once: the store says so)."""
    who = " ".join(f"<@{r}>" for r in responders) or "Security (no KEYHUNT_RESPONDERS set)"
    key = code(stored.finding.event.access_key_id, 128)
    return (
        f"🚨 {who}: {why}. Treat {key} as compromised until shown otherwise: deactivate it "
        "(don't delete it), then check what it did (Investigate) and watch for a second key."
    )


def escalation_reason(people: Engagement, timeout: timedelta) -> str:
    asked = f"<@{people.actor_user}>"
    if people.state == DENIED:
        return f"{asked} answered *No, I didn't* to “Was this you?”"
    minutes = int(timeout.total_seconds() // 60)
    return f"{asked} did not answer “Was this you?” within {minutes} min"


def render_snoozed(snooze: Snooze) -> str:
    return (
        f"💤 <@{snooze.created_by}> snoozed similar alerts until "
        f"{slack_time(snooze.expires_at)}: “{plain(snooze.reason, 300)}” "
        f"(`/keyhunt unsnooze {snooze.id}` lifts it)"
    )


def render_snoozes(snoozes: Sequence[Snooze], now: datetime) -> tuple[str, Blocks]:
    if not snoozes:
        return "No snoozes in force.", [section("No snoozes in force.")]
    rows = [
        f"`{s.id}` {code(s.actor_arn, 200)} → {code(s.target_user, 64)} in "
        f"{code(s.account_id, 32)} until {slack_time(s.expires_at)} by <@{s.created_by}>: "
        f"“{plain(s.reason, 200)}”"
        for s in snoozes
    ]
    text = f"{len(snoozes)} snooze(s) in force"
    return text, [section(f"*{text}*"), *[{"type": "section", "text": mrkdwn(r)} for r in rows]]
