"""Containment and snoozes from the alert: Deactivate / Reactivate (responders only, behind
Slack's confirm dialog) and "Snooze similar" (triagers, with a reason in a modal).

Every action acks first; AWS work runs in a lazy listener. What happened is stored and audited
(bot.store.engagement), the alert is redrawn in place, and the thread says who did what.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from bot.containment import DEACTIVATE, REACTIVATE
from bot.listeners.actions import UNKNOWN_ALERT, ack_click, update_alert, who_and_where
from bot.listeners.owners import typed_reason
from bot.render import (
    ACTION_DEACTIVATE,
    ACTION_REACTIVATE,
    ACTION_SNOOZE,
    SNOOZE_DAYS,
    code,
    plain_text,
    section,
)
from bot.render import slack_time as at_time
from bot.render_asking import (
    REASON_BLOCK,
    VIEW_SNOOZE,
    render_snoozed,
    snooze_modal,
)
from bot.snoozes import new_snooze, snooze_key
from bot.stored import Snooze
from bot.triage import decode_value

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.listeners import Deps

log = logging.getLogger(__name__)
NOT_A_RESPONDER = (
    "Only the people listed in KEYHUNT_RESPONDERS can deactivate or reactivate keys, and only "
    "when response_actions includes deactivate; nothing was changed."
)
NOT_A_TRIAGER = "Only the people listed in KEYHUNT_TRIAGERS can snooze alerts; nothing changed."


def handle_key_action(
    deps: Deps, body: dict[str, Any], client: Any, action: dict[str, Any]
) -> None:
    user, channel = who_and_where(body)
    containment = deps.containment
    which = DEACTIVATE if action.get("action_id") == ACTION_DEACTIVATE else REACTIVATE
    if containment is None or not containment.allowed(user):
        client.chat_postEphemeral(channel=channel, user=user, text=NOT_A_RESPONDER)
        return
    button = decode_value(str(action.get("value", "")))
    stored = deps.store.get(button.event_id) if button is not None else None
    if stored is None:
        client.chat_postEphemeral(channel=channel, user=user, text=UNKNOWN_ALERT)
        return
    outcome = containment.act(stored, which, user)
    client.chat_postEphemeral(channel=channel, user=user, text=outcome.message)
    if not outcome.done:
        return
    current = deps.store.get(stored.event_id) or stored
    update_alert(deps, client, current)
    done = current.engagement.key_action if current.engagement else None
    e = current.finding.event
    if which == DEACTIVATE and done is not None and done.watch_until is not None:
        text = (
            f"🔒 <@{user}> deactivated {code(e.access_key_id, 128)} of "
            f"{code(e.target_user, 64)} (nothing deleted; Reactivate undoes it). keyhunt alerts "
            f"on any new key for {code(e.target_user, 64)} until "
            f"{at_time(done.watch_until, '{time}')}, snoozed or not."
        )
    else:
        text = f"🔓 <@{user}> reactivated {code(e.access_key_id, 128)}."
    if current.message.channel and current.message.thread:
        client.chat_postMessage(
            channel=current.message.channel,
            thread_ts=current.message.thread,
            text=plain_text(text),
            blocks=[section(text)],
        )


def snooze_choice(action: dict[str, Any]) -> tuple[str, int] | None:
    """(event ID, days) of a "Snooze similar for Nd" option keyhunt drew."""
    value = str((action.get("selected_option") or {}).get("value", ""))
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if (
        isinstance(decoded, list)
        and len(decoded) == 2
        and isinstance(decoded[0], str)
        and decoded[1] in SNOOZE_DAYS
    ):
        return decoded[0], int(decoded[1])
    return None


def _may_snooze(deps: Deps, user: str) -> bool:
    return not deps.settings.triagers or user in deps.settings.triagers


def handle_snooze(deps: Deps, body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
    user, channel = who_and_where(body)
    if not _may_snooze(deps, user):
        client.chat_postEphemeral(channel=channel, user=user, text=NOT_A_TRIAGER)
        return
    choice = snooze_choice(action)
    stored = deps.store.get(choice[0]) if choice else None
    if choice is None or stored is None:
        client.chat_postEphemeral(channel=channel, user=user, text=UNKNOWN_ALERT)
        return
    if snooze_key(stored) is None:
        client.chat_postEphemeral(
            channel=channel,
            user=user,
            text="Root findings (and what keyhunt cannot name exactly) cannot be snoozed.",
        )
        return
    client.views_open(
        trigger_id=body.get("trigger_id"), view=snooze_modal(choice[0], choice[1], stored)
    )


def read_snooze(deps: Deps, body: dict[str, Any]) -> tuple[Snooze | None, str]:
    """The snooze a modal's submission asks for, or why not (shown in the modal: Slack shows
    a modal's errors only in the ack). Store reads only, so it can run before the ack."""
    view = body.get("view") or {}
    user = str(body.get("user", {}).get("id", ""))
    if not _may_snooze(deps, user):
        return None, NOT_A_TRIAGER
    reason = typed_reason(view, 300)
    if not reason:
        return None, "Say why."
    choice = snooze_choice({"selected_option": {"value": view.get("private_metadata", "")}})
    stored = deps.store.get(choice[0]) if choice else None
    made = new_snooze(stored, choice[1], reason, user, deps.clock()) if stored and choice else None
    return made, "" if made else "This cannot be snoozed."


def record_snooze(deps: Deps, client: Any, made: Snooze) -> None:
    """Store the snooze, redraw its alert, and say it in the alert's thread."""
    snooze = deps.store.add_snooze(made)
    current = deps.store.get(str(made.event_id))
    if current is None:
        return
    update_alert(deps, client, current)
    if current.message.channel and current.message.thread:
        said = render_snoozed(snooze)
        client.chat_postMessage(
            channel=current.message.channel,
            thread_ts=current.message.thread,
            text=plain_text(said),
            blocks=[section(said)],
        )


def register(app: App, deps: Deps) -> None:
    def key_action(body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
        handle_key_action(deps, body, client, action)

    def snooze(ack: Ack, body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
        ack()  # then at once: the modal's trigger_id is good for 3 seconds
        handle_snooze(deps, body, client, action)

    def snooze_reason(ack: Ack, body: dict[str, Any], client: Any) -> None:
        made, problem = read_snooze(deps, body)
        if made is None:
            ack(response_action="errors", errors={REASON_BLOCK: problem})
            return
        ack()
        record_snooze(deps, client, made)

    app.action(ACTION_DEACTIVATE)(ack=ack_click, lazy=[key_action])
    app.action(ACTION_REACTIVATE)(ack=ack_click, lazy=[key_action])
    app.action(ACTION_SNOOZE)(snooze)
    app.view(VIEW_SNOOZE)(snooze_reason)
