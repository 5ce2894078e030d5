"""The triage buttons: ack at once, then decide in the store (compare-and-set from the state
the clicked message showed), update the alert, and investigate in its thread when asked.

Decisions live in the store, never in memory: any replica, any Socket Mode connection can
handle any click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from bot.render import (
    ACTION_EXPECTED,
    ACTION_INVESTIGATE,
    render_alert,
    render_investigation,
    render_stale_click,
)
from bot.store import StoredFinding
from bot.triage import EXPECTED_ROTATION, INVESTIGATING, decode_value
from checks.followup import followups_of, raised_severity
from checks.model import Window

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.listeners import Deps

NOT_A_TRIAGER = (
    "Only the people listed in KEYHUNT_TRIAGERS can triage keyhunt alerts; "
    "nothing was changed. Ask one of them, or your keyhunt admin."
)
UNKNOWN_ALERT = "keyhunt has no record of this alert any more."


def ack_click(ack: Ack) -> None:
    ack()


def who_and_where(body: dict[str, Any]) -> tuple[str, str]:
    """(the clicking user, the channel of the clicked message) of a block action."""
    user = str(body.get("user", {}).get("id", ""))
    channel = str(
        body.get("channel", {}).get("id") or body.get("container", {}).get("channel_id", "")
    )
    return user, channel


def handle_triage(deps: Deps, body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
    """The lazy half of a click on "Expected rotation" or "Investigate"."""
    user, channel = who_and_where(body)
    status = EXPECTED_ROTATION if action.get("action_id") == ACTION_EXPECTED else INVESTIGATING
    triagers = deps.settings.triagers
    if triagers and user not in triagers:
        client.chat_postEphemeral(channel=channel, user=user, text=NOT_A_TRIAGER)
        return
    button = decode_value(str(action.get("value", "")))
    finding = deps.store.get(button.event_id) if button is not None else None
    if button is None or finding is None:
        client.chat_postEphemeral(channel=channel, user=user, text=UNKNOWN_ALERT)
        return
    # Only what the clicked message offered: from the state it showed, by its buttons.
    shown = button.rendered_for or finding.triage.status
    decision = deps.store.decide(finding.event_id, status, user, deps.clock(), expected=shown)
    current = deps.store.get(finding.event_id) or finding
    if decision is None or not decision.changed:
        client.chat_postEphemeral(
            channel=channel, user=user, text=render_stale_click(current.triage)
        )
        return
    update_alert(deps, client, current)
    if status == INVESTIGATING:
        investigate_in_thread(deps, client, current)


def update_alert(deps: Deps, client: Any, stored: StoredFinding) -> None:
    """The alert redrawn in place from what the store holds now."""
    message = stored.message
    if message.channel and message.ts:
        text, blocks = render_alert(stored, deps.clock(), deps.settings.response_actions)
        client.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=blocks)


def investigate_in_thread(deps: Deps, client: Any, stored: StoredFinding) -> None:
    """What the clicked key did since it was created, as a reply in the alert's thread."""
    finding, message = stored.finding, stored.message
    key = finding.event.access_key_id
    if not key:
        client.chat_postMessage(
            channel=message.channel,
            thread_ts=message.thread,
            text="The call failed, so there is no key to follow. Check what else the actor "
            "did with `/keyhunt last 24h actor &lt;name&gt;`.",
        )
        return
    report = deps.hunter.investigate(key, Window(finding.event.event_time, deps.clock()))
    found = followups_of(finding, report.activity)
    if found and deps.store.add_followups(stored.event_id, found, raised_severity(finding, found)):
        # The alert itself says it now, and is raised: the channel sees it, not only the thread.
        update_alert(deps, client, deps.store.get(stored.event_id) or stored)
    text, blocks = render_investigation(report, deps.clock(), reasons=finding.reasons)
    client.chat_postMessage(
        channel=message.channel,
        thread_ts=message.thread,
        text=text,
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )


def register(app: App, deps: Deps) -> None:
    # Bolt injects by parameter name: this wrapper has exactly the names it knows.
    def triage_click(body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
        handle_triage(deps, body, client, action)

    app.action(ACTION_EXPECTED)(ack=ack_click, lazy=[triage_click])
    app.action(ACTION_INVESTIGATE)(ack=ack_click, lazy=[triage_click])
