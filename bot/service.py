"""The long-running side: `keyhunt serve` and `keyhunt poll --once`, over `Components`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.compose import Components
from bot.exits import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, say_if_nothing_was_read
from bot.hunting import planning_errors
from bot.poller import EXPECTED_FAILURES

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)
# How long `poll --once` waits at most for another poller to finish before leaving it the work.
LEASE_WAIT = timedelta(seconds=60)
# How often the Socket Mode client pings Slack and checks on its connection (Bolt's default).
# A reset connection is replaced at the next check, a silent one after about four checks
# without a pong, one closed without a close frame after five failed pings (see README).
SOCKET_PING_SECONDS = 10.0


class SocketModeRefused(Exception):
    """Slack would not open a Socket Mode connection with SLACK_APP_TOKEN."""


def connect_socket_mode(
    parts: Components, *, ping_interval: float = SOCKET_PING_SECONDS
) -> SocketModeHandler:
    """Bolt's SocketModeHandler for the app, connected; raises SocketModeRefused.

    apps.connections.open goes through the app's own Web API client, so SLACK_API_URL and
    keyhunt's retry handlers apply to it as to every other call. After this the client
    reconnects by itself: on Slack's `disconnect` (refresh) message, and when the socket
    closes or goes silent, each time with a fresh URL from apps.connections.open.
    """
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError

    handler = SocketModeHandler(
        parts.app,
        parts.settings.slack_app_token,
        web_client=parts.slack,
        ping_interval=ping_interval,
    )
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except SlackApiError as exc:
        close_socket_mode(handler)
        error = exc.response.get("error") if exc.response is not None else None
        raise SocketModeRefused(
            f"Slack refused SLACK_APP_TOKEN ({error or exc}): Socket Mode needs the app's "
            "app-level token (xapp-…) with the connections:write scope (Basic Information → "
            "App-Level Tokens), not the bot token"
        ) from None
    return handler


def close_socket_mode(handler: SocketModeHandler) -> None:
    """Close the Socket Mode client without waiting out its message loop.

    slack_sdk's close() returns once that loop takes its next turn, and the loop waits up to
    a second for a message; it is told to stop and handed one (None, which it skips) first.
    """
    client = handler.client
    client.closed = True
    client.message_queue.put(None)
    handler.close()  # type: ignore[no-untyped-call]


def poll_once(parts: Components) -> int:
    settings = parts.settings
    if parts.poster is None:
        print(
            "keyhunt: SLACK_BOT_TOKEN or KEYHUNT_CHANNEL not set: findings are stored and "
            "will be posted by a later poll once Slack is configured",
            file=sys.stderr,
        )
    # The same lease `serve` polls under: two pollers never post (nor summarise) together.
    with parts.leadership.held(min(LEASE_WAIT, settings.poll_interval)) as leading:
        if not leading:
            print(
                "keyhunt: another keyhunt is polling (it holds the poller lease); this run "
                "did nothing: that one stores and posts what is new",
                file=sys.stderr,
            )
            return EXIT_OK
        try:
            outcome = parts.poller.run_once()
        except EXPECTED_FAILURES as exc:  # logged by the poller in one line
            errors = planning_errors(None, exc)
            say_if_nothing_was_read(len(errors), errors, settings.role_name)
            return EXIT_PARTIAL
        except Exception as exc:  # noqa: BLE001 - a bug: its traceback is in the log above
            print(f"keyhunt: poll failed: {type(exc).__name__} (see the log)", file=sys.stderr)
            return EXIT_PARTIAL
    delivery = outcome.delivery
    posted = (
        f"{delivery.posted} posted, {delivery.failed} left pending" if delivery else "not posted"
    )
    print(f"poll: {outcome.new_findings} new finding(s), {posted}")
    for target in outcome.failed_targets:
        print(f"keyhunt: could not read {target} (see /keyhunt status)", file=sys.stderr)
    say_if_nothing_was_read(outcome.targets, outcome.errors, settings.role_name)
    return EXIT_OK if not outcome.failed_targets else EXIT_PARTIAL


def serve(parts: Components, socket_mode: bool = False, port: int | None = None) -> int:
    settings = parts.settings
    missing = [
        name
        for name, value in (
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
            ("KEYHUNT_CHANNEL", settings.channel),
            (
                "SLACK_APP_TOKEN" if socket_mode else "SLACK_SIGNING_SECRET",
                settings.slack_app_token if socket_mode else settings.slack_signing_secret,
            ),
        )
        if not value
    ]
    if missing:
        print(f"keyhunt: configuration error: serve needs {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    handler: SocketModeHandler | None = None
    if socket_mode:
        # Before the scheduler starts: a refused token leaves nothing running behind it.
        try:
            handler = connect_socket_mode(parts)
        except SocketModeRefused as exc:
            print(f"keyhunt: configuration error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    parts.scheduler.start()
    # Every replica consumes the queue, lease or not (bot.realtime says why).
    consumer = parts.queue_consumer
    if consumer is not None:
        consumer.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        # In Socket Mode too: /healthz and /metrics answer on the port, for the container's
        # HEALTHCHECK.
        http = parts.http_server("0.0.0.0", port or settings.port)  # noqa: S104
        log.warning(
            "keyhunt serving on port %s (%s mode)", http.port, "Socket" if socket_mode else "HTTP"
        )
        stop.wait()
    finally:
        if consumer is not None:
            consumer.stop()  # a receive in flight is left: its messages come back
        if handler is not None:
            close_socket_mode(handler)
        parts.scheduler.shutdown(wait=False)
        parts.leadership.release()
    return EXIT_OK
