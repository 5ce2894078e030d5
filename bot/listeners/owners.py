"""The "Was this you?" DM's buttons and its reason modal.

Only the person the question was put to can answer it, once: the store takes an answer only
from that Slack user and only while the question is open (a compare-and-set), so a replayed,
forged-user or second answer changes nothing. Bolt has already refused unsigned requests.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from bot import metrics
from bot.listeners.actions import who_and_where
from bot.render_asking import (
    ACTION_OWNER_NO,
    ACTION_OWNER_YES,
    REASON_BLOCK,
    REASON_INPUT,
    VIEW_OWNER_REASON,
    reason_modal,
)
from bot.stored import ASKED, CONFIRMED, DENIED

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.listeners import Deps

log = logging.getLogger(__name__)
NOT_YOURS = "This question was not put to you, so keyhunt did not take your answer."
ANSWERED = "This question is already answered (or has been escalated); nothing changed."


def event_id_of(value: str) -> str | None:
    """The finding a DM button or modal carries: `["<event id>", ...]`, written by keyhunt."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if isinstance(decoded, list) and decoded and isinstance(decoded[0], str) and decoded[0]:
        return decoded[0]
    return None


def _tell(client: Any, body: dict[str, Any], text: str) -> None:
    """Only the clicking person sees it, in the DM they clicked in."""
    user, channel = who_and_where(body)
    client.chat_postEphemeral(channel=channel, user=user, text=text)


def typed_reason(view: dict[str, Any], limit: int) -> str:
    """What was typed into a keyhunt modal's reason input, trimmed and bounded."""
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    return str((values.get(REASON_INPUT) or {}).get("value") or "").strip()[:limit]


def _open_question(deps: Deps, body: dict[str, Any], value: str, client: Any) -> str | None:
    """The event ID when `body`'s user may answer it now; else they are told why not."""
    user = str(body.get("user", {}).get("id", ""))
    event_id = event_id_of(value)
    stored = deps.store.get(event_id) if event_id else None
    people = stored.engagement if stored else None
    if event_id is None or people is None:
        _tell(client, body, "keyhunt has no record of this question any more.")
        return None
    if people.actor_user != user:
        log.warning("answer to %s by %s refused: asked was %s", event_id, user, people.actor_user)
        _tell(client, body, NOT_YOURS)
        return None
    if people.state != ASKED:
        _tell(client, body, ANSWERED)
        return None
    return event_id


def handle_yes(deps: Deps, body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
    """ "Yes, this was me": the reason modal (its submission records the answer)."""
    event_id = _open_question(deps, body, str(action.get("value", "")), client)
    if event_id is None:
        return
    try:
        client.views_open(trigger_id=body.get("trigger_id"), view=reason_modal(event_id))
    except Exception as exc:  # noqa: BLE001 - the answer matters more than its reason
        log.warning("could not open the reason modal (%s); taking the answer", exc)
        record_answer(deps, client, event_id, str(body["user"]["id"]), CONFIRMED, None)


def handle_no(deps: Deps, body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
    event_id = _open_question(deps, body, str(action.get("value", "")), client)
    if event_id is not None:
        record_answer(deps, client, event_id, str(body["user"]["id"]), DENIED, None)


def handle_reason(deps: Deps, body: dict[str, Any], client: Any) -> None:
    view = body.get("view") or {}
    user = str(body.get("user", {}).get("id", ""))
    event_id = event_id_of(str(view.get("private_metadata", "")))
    reason = typed_reason(view, 500) or None
    if event_id is not None:
        record_answer(deps, client, event_id, user, CONFIRMED, reason)


def record_answer(
    deps: Deps, client: Any, event_id: str, user: str, state: str, reason: str | None
) -> None:
    if not deps.store.answer(event_id, user, state, reason, deps.clock()):
        log.info("answer to %s by %s not taken (not theirs, or already answered)", event_id, user)
        return
    metrics.OWNER_QUESTIONS.labels(state).inc()
    if state == CONFIRMED:
        deps.store.confirm_by_actor(event_id, user, deps.clock())
    asking = deps.asking
    if asking is None:
        return
    if state == DENIED:
        asking.escalate(event_id)  # redraws the alert and the DM
    else:
        asking.refresh(event_id)
        asking.update_question(event_id)


def register(app: App, deps: Deps) -> None:
    def ack_click(ack: Ack) -> None:
        ack()

    def yes(ack: Ack, body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
        ack()  # then at once: the modal's trigger_id is good for 3 seconds
        handle_yes(deps, body, client, action)

    def no(body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
        handle_no(deps, body, client, action)

    def reason(ack: Ack, body: dict[str, Any], client: Any) -> None:
        ack()
        handle_reason(deps, body, client)

    app.action(ACTION_OWNER_YES)(yes)
    app.action(ACTION_OWNER_NO)(ack=ack_click, lazy=[no])
    app.view(VIEW_OWNER_REASON)(reason)
