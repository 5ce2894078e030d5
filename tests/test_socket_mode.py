"""Socket Mode, exercised: the bot with no public endpoint, over FakeSlack's WebSocket.

The real bot (bot.compose) connects the way `keyhunt serve --socket-mode` does
(bot.service.connect_socket_mode: Bolt's SocketModeHandler on slack_sdk's built-in client)
to FakeSlack's `apps.connections.open` and the WebSocket behind it. The slash, button and hunt
flows also run over it in tests/test_bot_slash.py and tests/test_bot_flow.py (their `bot` or
`transport` parameter); here: the protocol itself, Slack refreshing and dropping the socket,
and a refused app token.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.compose import Components
from bot.exits import EXIT_USAGE
from bot.service import serve
from keyhunt_dev.slack import FakeSlack
from keyhunt_dev.slack_socket import APP_TOKEN
from tests.slackbot import (
    BOT_TOKEN,
    CHANNEL,
    SOCKET,
    TRIAGER,
    Bot,
    BotFactory,
    now_utc,
    ok_calls,
    root_key,
    unique,
    wait_for,
)


@pytest.fixture
def bot(make_bot: BotFactory) -> Bot:
    return make_bot(transport=SOCKET)


def send_slash(slack: FakeSlack, text: str, key: str) -> str:
    """/keyhunt `text` as an envelope, its answer due at response_url `key`; the envelope_id
    (the test waits for the ack itself, where Bot.slash would wait at once)."""
    return slack.socket_mode.slash_command(
        text, user_id=TRIAGER, channel_id=CHANNEL, response_url=slack.response_url(key)
    )


def answers_at(slack: FakeSlack, key: str) -> list[Any]:
    return [p for p in slack.responses if p.key == key]


# --------------------------------------------------------------------------- the protocol


@pytest.fixture
def raw_client() -> Iterator[tuple[FakeSlack, SocketModeClient, list[dict[str, Any]]]]:
    """slack_sdk's own Socket Mode client on the fake, recording every message it reads and
    acking nothing by itself."""
    with FakeSlack(BOT_TOKEN) as fake:
        seen: list[dict[str, Any]] = []
        client = SocketModeClient(
            app_token=APP_TOKEN,
            web_client=WebClient(token=BOT_TOKEN, base_url=fake.api_url),
            ping_interval=0.5,
        )
        client.message_listeners.append(lambda _client, message, _raw: seen.append(message))
        try:
            yield fake, client, seen
        finally:
            client.closed = True  # as bot.service.close_socket_mode does, for a quick close
            client.message_queue.put(None)
            client.close()


def test_the_fake_says_hello_delivers_envelopes_and_records_acks(
    raw_client: tuple[FakeSlack, SocketModeClient, list[dict[str, Any]]],
) -> None:
    fake, client, seen = raw_client

    def answer(client: Any, request: SocketModeRequest) -> None:
        client.send_socket_mode_response(
            SocketModeResponse(request.envelope_id, payload={"text": f"re {request.type}"})
        )

    client.socket_mode_request_listeners.append(answer)
    client.connect()

    (opened,) = fake.calls_to("apps.connections.open")
    assert opened.ok
    assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"  # the app token, not xoxb
    assert opened.response["url"].startswith("ws://127.0.0.1:")
    hello = wait_for(lambda: seen, 10, "hello")[0]
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": "A0KEYHUNT"}

    envelope_id = fake.socket_mode.send("events_api", {"type": "event_callback"})
    ack = fake.socket_mode.wait_ack(envelope_id)
    assert ack is not None
    assert (ack.payload, ack.connection) == ({"text": "re events_api"}, 1)
    delivered = next(m for m in seen if m.get("envelope_id") == envelope_id)
    assert delivered == {
        "envelope_id": envelope_id,
        "type": "events_api",
        "payload": {"type": "event_callback"},
        "accepts_response_payload": False,
        "retry_attempt": 0,
        "retry_reason": "",
    }
    assert fake.socket_mode.connections[0].pings >= 1  # and each was answered with a pong


def test_an_envelope_not_acked_before_the_socket_dropped_is_delivered_again(
    raw_client: tuple[FakeSlack, SocketModeClient, list[dict[str, Any]]],
) -> None:
    fake, client, seen = raw_client
    client.connect()  # this client never acks
    envelope_id = fake.socket_mode.send("events_api", {"type": "event_callback"})
    wait_for(lambda: any(m.get("envelope_id") == envelope_id for m in seen), 10, "delivery")

    assert fake.socket_mode.drop() == 1
    assert fake.socket_mode.envelopes[envelope_id].deliveries == [1]

    again = wait_for(
        lambda: [m for m in seen if m.get("envelope_id") == envelope_id][1:],
        10,
        "the second delivery, on the new connection",
    )
    assert fake.socket_mode.envelopes[envelope_id].deliveries == [1, 2]
    assert (again[0]["retry_attempt"], again[0]["retry_reason"]) == (1, "timeout")
    assert len(fake.calls_to("apps.connections.open")) == 2  # a fresh URL for the reconnect


# --------------------------------------------------------------------------- the bot


def test_the_bot_acks_a_slash_command_on_the_socket_and_answers_at_response_url(
    bot: Bot, make_bot: BotFactory
) -> None:
    make_bot.seed(root_key(now_utc() - timedelta(minutes=5)))
    assert bot.settings.slack_signing_secret == ""  # Socket Mode needs none

    key = unique("cmd")
    envelope_id = send_slash(make_bot.slack, "last 24h", key)
    ack = bot.ack(envelope_id)

    assert ack is not None
    assert ack.payload is not None
    assert ack.payload["response_type"] == "ephemeral"
    assert ack.payload["text"].startswith("🔎 Hunting")
    answer = bot.answer(key)
    assert answer.body["text"].startswith("Hunted 1 account × 1 region")
    assert make_bot.slack.socket_mode.acks_for(envelope_id) == [ack]
    # The Web API calls went to SLACK_API_URL (the fake) with the right token for each.
    (opened,) = make_bot.slack.calls_to("apps.connections.open")
    assert opened.ok


def test_a_refresh_request_reconnects_with_a_new_url_and_commands_still_arrive(
    bot: Bot, make_bot: BotFactory
) -> None:
    socket_mode = make_bot.slack.socket_mode
    assert socket_mode.request_refresh() == 1

    first, second = wait_for(
        lambda: socket_mode.connections if len(socket_mode.connections) == 2 else None,
        10,
        "a second connection",
    )
    wait_for(lambda: not first.open, 10, "the old connection closed")
    assert first.disconnect_reason == "refresh_requested"
    assert first.closed_by in ("refreshed", "client")  # whichever side closed it first
    assert second.open
    assert second.ticket != first.ticket
    assert len(ok_calls(make_bot.slack, "apps.connections.open")) == 2

    reply = bot.slash("status")
    assert reply.status == 200
    assert bot.answer(reply.key).body["text"].startswith("Poller:")
    (ack,) = [a for a in socket_mode.acks if a.payload is not None]
    assert ack.connection == second.number


def test_a_dropped_socket_reconnects_and_a_command_sent_meanwhile_is_answered_once(
    bot: Bot, make_bot: BotFactory
) -> None:
    slack = make_bot.slack
    socket_mode = slack.socket_mode
    opened = len(slack.calls_to("apps.connections.open"))

    # Slack unreachable for a while: the socket is cut and the reconnects are turned away.
    socket_mode.refuse_connections = True
    assert socket_mode.drop() == 1
    key = unique("cmd")
    envelope_id = send_slash(slack, "status", key)
    assert socket_mode.envelopes[envelope_id].queued  # nowhere to deliver it yet
    wait_for(
        lambda: len(slack.calls_to("apps.connections.open")) > opened,
        10,
        "the bot trying to reconnect",
    )
    assert socket_mode.open_connections == []

    socket_mode.refuse_connections = False
    ack = bot.ack(envelope_id)
    assert ack is not None
    assert ack.payload is not None
    assert ack.payload["text"].startswith("Checking")
    assert bot.answer(key).body["text"].startswith("Poller:")
    (connection,) = socket_mode.open_connections
    assert ack.connection == connection.number
    assert socket_mode.envelopes[envelope_id].deliveries == [connection.number]

    # A command sent after it, once answered, shows nothing else of the first is on its way.
    later = bot.slash("status")
    bot.answer(later.key)
    assert len(answers_at(slack, key)) == 1
    assert socket_mode.acks_for(envelope_id) == [ack]


def test_a_click_over_the_socket_is_acked_and_decides(bot: Bot, make_bot: BotFactory) -> None:
    (event_id,) = make_bot.seed(root_key(now_utc() - timedelta(minutes=5)))
    bot.poll()

    assert bot.click(event_id) == 200

    (ack,) = make_bot.slack.socket_mode.acks
    assert ack.payload is None  # a click's ack is bare: the answer is the updated message
    wait_for(lambda: ok_calls(make_bot.slack, "chat.update"), what="chat.update")
    (entry,) = bot.store.history(event_id)
    assert entry.user_id == TRIAGER


@pytest.mark.parametrize(
    ("token", "error"),
    [("xapp-1-A0KEYHUNT-1-revoked", "invalid_auth"), (BOT_TOKEN, "not_allowed_token_type")],
)
def test_a_refused_app_token_is_a_configuration_error_naming_it(
    make_bot: BotFactory, capsys: pytest.CaptureFixture[str], token: str, error: str
) -> None:
    parts = Components(make_bot.settings(SLACK_APP_TOKEN=token))
    try:
        assert serve(parts, socket_mode=True) == EXIT_USAGE
    finally:
        parts.close()

    stderr = capsys.readouterr().err
    assert f"Slack refused SLACK_APP_TOKEN ({error})" in stderr
    assert "app-level token (xapp-…)" in stderr
    assert token not in stderr  # a token is never printed
    assert make_bot.slack.socket_mode.connections == []
    assert [c.error for c in make_bot.slack.calls_to("apps.connections.open")] == [error]
