"""/keyhunt: an ack that answers within Slack's 3 s (parse only, no AWS), then a lazy
listener that does the work and answers at the command's response_url."""

from __future__ import annotations

import html
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from bot.commands import (
    CommandError,
    Help,
    Hunt,
    KeyLookup,
    Snoozes,
    Status,
    Unsnooze,
    parse_command,
)
from bot.hunting import HuntRequest, make_window
from bot.render import render_hunt, render_investigation, render_status, render_usage
from bot.render_asking import render_snoozes
from bot.slack_io import RetryingRespond
from checks.model import Window
from checks.timeutil import MAX_LOOKBACK

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.listeners import Deps

log = logging.getLogger(__name__)


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
    elif isinstance(parsed, Snoozes | Unsnooze):
        ack(text="One moment…", response_type="ephemeral")
    else:
        ack(text="🔎 Hunting… the answer will appear here.", response_type="ephemeral")


def run_command(deps: Deps, command: dict[str, Any]) -> None:
    """The lazy half: the answer the ack promised, at the command's response_url."""
    # Bolt's own respond() has no retry handlers; this one retries 429s and 5xx.
    respond = RetryingRespond(response_url=command.get("response_url"))
    try:
        parsed = parse_command(html.unescape(command.get("text", "")))
    except CommandError:
        return  # already answered with usage in the ack
    if isinstance(parsed, Help):
        return  # likewise
    try:
        text, blocks = answer(deps, parsed, str(command.get("user_id", "")))
    except Exception as exc:
        log.exception("/keyhunt failed")
        text = f"⚠ keyhunt could not answer: {type(exc).__name__}. The details are in its log."
        blocks = None
    respond(text=text, blocks=blocks, response_type="ephemeral")


def answer(deps: Deps, parsed: Any, user: str = "") -> tuple[str, Any]:
    """The text and blocks for a parsed command (bot.commands.Command), asked by `user`."""
    now = deps.clock()
    if isinstance(parsed, Help):
        return render_usage()
    if isinstance(parsed, Snoozes):
        return render_snoozes(deps.store.active_snoozes(now), now)
    if isinstance(parsed, Unsnooze):
        if deps.settings.triagers and user not in deps.settings.triagers:
            return "Only the people in KEYHUNT_TRIAGERS can lift a snooze; nothing changed.", None
        lifted = deps.store.remove_snooze(parsed.snooze_id, user, now)
        if lifted is None:
            return f"No snooze {parsed.snooze_id} is in force; see `/keyhunt snoozes`.", None
        return f"Snooze {lifted.id} lifted: those alerts are posted again.", None
    if isinstance(parsed, Status):
        health = deps.store.target_health()
        return render_status(
            health,
            deps.store.poll_runs_since(now - timedelta(hours=24)),
            deps.store.pending_count(),
            now,
            deps.settings.poll_minutes,
            deps.state.last_error,
            names=deps.hunter.names_for(h.account_id for h in health),
            queue=deps.state.queue,
        )
    if isinstance(parsed, KeyLookup):
        report = deps.hunter.investigate(parsed.access_key_id, Window(now - MAX_LOOKBACK, now))
        return render_investigation(report, now)
    assert isinstance(parsed, Hunt)
    try:
        window = make_window(parsed.last, parsed.since, parsed.until, now)
    except ValueError as exc:
        return render_usage(str(exc))
    result = deps.hunter.hunt(
        HuntRequest(window, parsed.user, parsed.actor, parsed.account, parsed.min_severity)
    )
    return render_hunt(result)


def register(app: App, deps: Deps) -> None:
    # Bolt injects by parameter name: these wrappers have exactly the names it knows.
    def run_keyhunt(command: dict[str, Any]) -> None:
        run_command(deps, command)

    # A literal: tests/test_deploy_artifacts.py checks it against the Slack manifest.
    app.command("/keyhunt")(ack=ack_command, lazy=[run_keyhunt])
