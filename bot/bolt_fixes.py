"""Workarounds for slack_bolt behaviour keyhunt cannot live with, each installed explicitly by
`bot.app.create_app` (never at import) and each with its own test (tests/test_bolt_fixes.py).
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import slack_bolt.request.request as bolt_request
import slack_sdk.socket_mode.builtin.internals as socket_frames
from slack_bolt import App
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from slack_bolt.request.internals import parse_body as bolt_parse_body


def parse_body_keeping_commands(body: str, content_type: str | None) -> dict[str, Any]:
    """Bolt's parse_body, except that a slash command is recognised by its `command` field.

    Bolt treats any form body containing the text "payload" as interactivity and drops it
    when there is no payload field, so `/keyhunt last 1d user payload` would vanish."""
    parsed = bolt_parse_body(body, content_type)
    if not parsed and body and not body.startswith("{"):
        fields = dict(parse_qsl(body, keep_blank_values=True))
        if "command" in fields and "payload" not in fields:
            return fields
    return parsed


def install_body_parser_fix() -> None:
    """Make BoltRequest parse bodies with `parse_body_keeping_commands`. Idempotent.

    BoltRequest calls the `parse_body` name bound in slack_bolt.request.request, so that is
    the one replaced (slack_bolt.request.internals.parse_body itself is left alone)."""
    bolt_request.parse_body = parse_body_keeping_commands  # type: ignore[attr-defined]


# What slack_sdk's Socket Mode client draws each frame's masking key from, in place of the
# `random` module it imports: os.urandom through SystemRandom's `choices`, the one call made.
_MASK_KEYS = random.SystemRandom()


def install_socket_mode_mask_fix() -> None:
    """Mask Socket Mode frames with keys from os.urandom instead of the `random` module.

    RFC 6455 (5.3) wants a masking key from a strong source of entropy, and slack_sdk draws
    it from the shared global generator, advancing its state from the socket's threads on
    every ack and ping. Idempotent."""
    socket_frames.random = _MASK_KEYS  # type: ignore[assignment,attr-defined]


def give_lazy_listeners_their_own_pool(app: App, workers: int) -> ThreadPoolExecutor:
    """Run `app`'s lazy listeners on a pool of their own; returns that pool.

    Bolt runs acks and lazy listeners on one pool (its listener_executor), so a burst of slow
    hunts would leave no thread to ack the next command within Slack's 3 s. With this, Bolt's
    pool stays free for acks."""
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lazy")
    app._listener_runner.lazy_listener_runner = ThreadLazyListenerRunner(
        logger=app.logger, executor=executor
    )
    return executor
