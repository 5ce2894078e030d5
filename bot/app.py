"""The Bolt app: /keyhunt, the triage buttons, and the respond() that retries.

Built by `create_app` from what it is given (settings, store, hunter, Web API client); it does
no I/O of its own when built. Every listener acks first; AWS work runs in lazy listeners.
Decisions live in the store, never in memory: any replica, any Socket Mode connection can
handle any click.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl

import slack_bolt.request.request as bolt_request
from slack_bolt import Ack, App
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from slack_bolt.request.internals import parse_body as bolt_parse_body

from bot.commands import CommandError, Help, Hunt, KeyLookup, Status, parse_command
from bot.hunting import HuntRequest, make_window
from bot.render import (
    ACTION_EXPECTED,
    ACTION_INVESTIGATE,
    render_alert,
    render_hunt,
    render_investigation,
    render_stale_click,
    render_status,
    render_usage,
)
from bot.settings import Settings
from bot.slack_io import RetryingRespond
from bot.store import Store
from bot.triage import EXPECTED_ROTATION, INVESTIGATING, decode_value
from checks.investigate import KeyReport
from checks.model import HuntResult, Window

log = logging.getLogger(__name__)

KEY_LOOKBACK = timedelta(days=90)


class Hunter(Protocol):
    """The hunt path as the bot needs it (bot.runtime.SettingsHunter in production)."""

    def hunt(self, request: HuntRequest) -> HuntResult: ...

    def investigate(self, access_key_id: str, window: Window) -> KeyReport: ...


@dataclass
class SchedulerState:
    """What /keyhunt status and /healthz know about the in-process scheduler."""

    alive: Callable[[], bool] = lambda: False
    last_error: str | None = None


def _parse_body_keeping_commands(body: str, content_type: str | None) -> dict[str, Any]:
    """Bolt treats any form body containing the text "payload" as interactivity and drops
    it when there is no payload field, so `/keyhunt last 1d user payload` would vanish.
    A slash command is recognised by its `command` field instead."""
    parsed = bolt_parse_body(body, content_type)
    if not parsed and body and not body.startswith("{"):
        fields = dict(parse_qsl(body, keep_blank_values=True))
        if "command" in fields and "payload" not in fields:
            return fields
    return parsed


bolt_request.parse_body = _parse_body_keeping_commands  # type: ignore[attr-defined]


def create_app(
    settings: Settings,
    store: Store,
    hunter: Hunter,
    client: Any,
    scheduler: SchedulerState | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    workers: int = 16,
) -> App:
    state = scheduler or SchedulerState()
    app = App(
        signing_secret=settings.slack_signing_secret or None,
        client=client,  # carries the bot token and our retry handlers
        token_verification_enabled=False,  # no auth.test at build time; `keyhunt check` does it
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bolt"),
    )
    # Bolt runs acks and lazy listeners on one pool, so a burst of slow hunts would leave no
    # thread to ack the next command within Slack's 3 s. Lazy listeners get a pool of their
    # own; Bolt's stays free for acks.
    app._listener_runner.lazy_listener_runner = ThreadLazyListenerRunner(
        logger=app.logger,
        executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lazy"),
    )

    def ack_command(ack: Ack, command: dict[str, Any]) -> None:
        """Answers within Slack's 3 s whatever the hunt costs: parse only, no AWS here."""
        try:
            parsed = parse_command(html.unescape(command.get("text", "")))
        except CommandError as exc:
            text, blocks = render_usage(str(exc))
            ack(text=text, blocks=blocks, response_type="ephemeral")
            return
        if isinstance(parsed, Help):
            text, blocks = render_usage()
            ack(text=text, blocks=blocks, response_type="ephemeral")
        elif isinstance(parsed, Status):
            ack(text="Checking the poller…", response_type="ephemeral")
        else:
            ack(text="🔎 Hunting… the answer will appear here.", response_type="ephemeral")

    def run_command(command: dict[str, Any]) -> None:
        # Bolt's own respond() has no retry handlers; this one retries 429s and 5xx.
        respond = RetryingRespond(response_url=command.get("response_url"))
        try:
            parsed = parse_command(html.unescape(command.get("text", "")))
        except CommandError:
            return  # already answered with usage in the ack
        if isinstance(parsed, Help):
            return  # likewise
        try:
            text, blocks = _answer(parsed)
        except Exception as exc:
            log.exception("/keyhunt failed")
            text = f"⚠ keyhunt could not answer: {type(exc).__name__}. The details are in its log."
            blocks = None
        respond(text=text, blocks=blocks, response_type="ephemeral")

    def _answer(parsed: Any) -> tuple[str, Any]:
        now = clock()
        if isinstance(parsed, Help):
            return render_usage()
        if isinstance(parsed, Status):
            return render_status(
                store.target_health(),
                store.poll_runs_since(now - timedelta(hours=24)),
                store.pending_count(),
                now,
                settings.poll_minutes,
                state.last_error,
            )
        if isinstance(parsed, KeyLookup):
            report = hunter.investigate(parsed.access_key_id, Window(now - KEY_LOOKBACK, now))
            return render_investigation(report, now)
        assert isinstance(parsed, Hunt)
        try:
            window = make_window(parsed.last, parsed.since, parsed.until, now)
        except ValueError as exc:
            return render_usage(str(exc))
        result = hunter.hunt(
            HuntRequest(window, parsed.user, parsed.actor, parsed.account, parsed.min_severity)
        )
        return render_hunt(result)

    app.command("/keyhunt")(ack=ack_command, lazy=[run_command])

    def ack_click(ack: Ack) -> None:
        ack()

    def handle_triage(body: dict[str, Any], client: Any, action: dict[str, Any]) -> None:
        user = str(body.get("user", {}).get("id", ""))
        channel = str(
            body.get("channel", {}).get("id") or body.get("container", {}).get("channel_id", "")
        )
        status = EXPECTED_ROTATION if action.get("action_id") == ACTION_EXPECTED else INVESTIGATING
        if settings.triagers and user not in settings.triagers:
            client.chat_postEphemeral(
                channel=channel,
                user=user,
                text="Only the people listed in KEYHUNT_TRIAGERS can triage keyhunt alerts; "
                "nothing was changed. Ask one of them, or your keyhunt admin.",
            )
            return
        button = decode_value(str(action.get("value", "")))
        finding = store.get(button.event_id) if button is not None else None
        if button is None or finding is None:
            client.chat_postEphemeral(
                channel=channel, user=user, text="keyhunt has no record of this alert any more."
            )
            return
        # Only what the clicked message offered: from the state it showed, by its buttons.
        shown = button.rendered_for or finding.status
        decision = store.decide(finding.event_id, status, user, clock(), expected=shown)
        current = store.get(finding.event_id) or finding
        if decision is None or not decision.changed:
            client.chat_postEphemeral(channel=channel, user=user, text=render_stale_click(current))
            return
        if current.channel and current.ts:
            text, blocks = render_alert(current, clock())
            client.chat_update(channel=current.channel, ts=current.ts, text=text, blocks=blocks)
        if status == INVESTIGATING:
            _investigate_in_thread(client, current)

    def _investigate_in_thread(client: Any, finding: Any) -> None:
        key = finding.record.get("access_key_id")
        thread = finding.thread_ts or finding.ts
        if not key:
            client.chat_postMessage(
                channel=finding.channel,
                thread_ts=thread,
                text="The call failed, so there is no key to follow. Check what else the actor "
                "did with `/keyhunt last 24h actor &lt;name&gt;`.",
            )
            return
        report = hunter.investigate(str(key), Window(finding.event_time, clock()))
        text, blocks = render_investigation(report, clock())
        client.chat_postMessage(
            channel=finding.channel,
            thread_ts=thread,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )

    app.action(ACTION_EXPECTED)(ack=ack_click, lazy=[handle_triage])
    app.action(ACTION_INVESTIGATE)(ack=ack_click, lazy=[handle_triage])
    return app
