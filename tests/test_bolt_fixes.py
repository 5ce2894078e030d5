"""bot.bolt_fixes: each workaround of slack_bolt, installed explicitly, does what it says."""

from __future__ import annotations

import random

import slack_bolt.request.request as bolt_request
import slack_sdk.socket_mode.builtin.internals as socket_frames
from slack_bolt import App, BoltRequest
from slack_bolt.request.internals import parse_body

from bot.bolt_fixes import (
    give_lazy_listeners_their_own_pool,
    install_body_parser_fix,
    install_socket_mode_mask_fix,
    parse_body_keeping_commands,
)

FORM = "application/x-www-form-urlencoded"
BODY = "command=%2Fkeyhunt&text=last+1d+user+payload&response_url=https%3A%2F%2Fhooks.example"


def test_bolt_alone_drops_a_slash_command_whose_text_says_payload() -> None:
    # The bug the fix exists for; if Bolt ever fixes it, this test says the fix can go.
    assert parse_body(BODY, FORM) == {}


def test_the_body_parser_fix_keeps_the_command_and_is_idempotent() -> None:
    install_body_parser_fix()
    install_body_parser_fix()
    assert bolt_request.parse_body is parse_body_keeping_commands  # type: ignore[attr-defined]
    assert BoltRequest(body=BODY, headers={"content-type": [FORM]}).body == {
        "command": "/keyhunt",
        "text": "last 1d user payload",
        "response_url": "https://hooks.example",
    }


def test_the_body_parser_fix_leaves_interactivity_and_json_to_bolt() -> None:
    click = "payload=%7B%22type%22%3A%22block_actions%22%7D"
    assert parse_body_keeping_commands(click, FORM) == {"type": "block_actions"}
    assert parse_body_keeping_commands('{"type":"event_callback"}', "application/json") == {
        "type": "event_callback"
    }
    assert parse_body_keeping_commands("", FORM) == {}


def test_lazy_listeners_get_a_pool_that_is_not_bolts_listener_pool() -> None:
    app = App(signing_secret="s", token="xoxb-t", token_verification_enabled=False)
    runner = app._listener_runner
    assert runner.lazy_listener_runner.executor is runner.listener_executor  # Bolt's default

    pool = give_lazy_listeners_their_own_pool(app, workers=3)
    try:
        assert runner.lazy_listener_runner.executor is pool
        assert pool is not runner.listener_executor
        assert pool._max_workers == 3
    finally:
        pool.shutdown(wait=False)


def test_socket_mode_frames_are_masked_from_os_urandom_not_the_shared_random() -> None:
    # Without the fix every frame the bot sends advanced `random`'s global state from the
    # socket's threads (Hypothesis saw it change under its strategies and failed the slash
    # command property test); RFC 6455 asks for a strong source of entropy anyway.
    install_socket_mode_mask_fix()
    install_socket_mode_mask_fix()
    assert isinstance(socket_frames.random, random.SystemRandom)
    before = random.getstate()
    frames = {socket_frames._build_data_frame_for_sending("ack", 0x1) for _ in range(8)}
    assert random.getstate() == before
    assert len(frames) > 1  # each frame its own mask key
    header = 2 + 4  # FIN|opcode, MASK|length, then the key
    (frame, *_) = frames
    key, masked = frame[2:header], frame[header:]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(masked)) == b"ack"
