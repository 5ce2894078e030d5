"""FakeSlack against the real slack_sdk WebClient, and the Slack-style signing helpers."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from slack_bolt import App, BoltRequest, Respond
from slack_bolt.request.internals import parse_body
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.fakes.slack import (
    FakeSlack,
    block_action_body,
    post_to_bot,
    sign,
    slash_command_body,
)

TOKEN = "xoxb-test-token"
SECRET = "test-signing-secret"
ALERTS = "C0ALERTS"
OTHER = "C0OTHER"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(TOKEN, channels=(ALERTS, OTHER)) as running:
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    # No retry handlers: each test opts into the retries it exercises.
    return WebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str = "Ack", value: str = "k1", action_id: str = "ack") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": "triage", "elements": list(elements)}


def slack_error(exc: pytest.ExceptionInfo[SlackApiError]) -> tuple[int, str]:
    return exc.value.response.status_code, exc.value.response["error"]


# ---- Web API round trips -------------------------------------------------------------


def test_construction_does_no_io() -> None:
    fake = FakeSlack()
    with pytest.raises(RuntimeError):
        _ = fake.api_url


def test_api_url_is_in_slack_sdk_base_url_form(fake: FakeSlack) -> None:
    assert fake.api_url.startswith("http://127.0.0.1:")
    assert fake.api_url.endswith("/api/")


def test_auth_test_reports_bot_identity(client: WebClient) -> None:
    response = client.auth_test()
    assert response["user_id"] == "U0BOT"
    assert response["team_id"] == "T0001"
    assert response["bot_id"]
    assert response["url"].startswith("https://")


def test_post_update_and_ephemeral_round_trip(fake: FakeSlack, client: WebClient) -> None:
    blocks = [section("new key AKIA..."), actions(button())]
    posted = client.chat_postMessage(channel=ALERTS, text="new key", blocks=blocks)
    ts = posted["ts"]
    assert posted["channel"] == ALERTS
    assert posted["message"]["blocks"] == blocks

    updated = client.chat_update(channel=ALERTS, ts=ts, text="acked", blocks=[section("acked")])
    assert updated["ts"] == ts

    ephemeral = client.chat_postEphemeral(channel=ALERTS, user="U0ALICE", text="only you")
    assert ephemeral["message_ts"]

    message = fake.messages[ALERTS][ts]
    assert message.text == "acked"
    assert message.blocks == [section("acked")]
    assert message.updated_count == 1
    assert [v.text for v in message.history] == ["new key", "acked"]
    assert [(e.user, e.text) for e in fake.ephemerals] == [("U0ALICE", "only you")]
    # The recorded call carries decoded blocks and the auth header, but no token in args.
    call = fake.calls_to("chat.postMessage")[0]
    assert call.args["blocks"] == blocks
    assert "token" not in call.args
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert (call.status, call.ok, call.missing_text) == (200, True, False)


def test_update_without_blocks_keeps_previous_blocks(fake: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=ALERTS, text="a", blocks=[section("a")])["ts"]
    client.chat_update(channel=ALERTS, ts=ts, text="b")
    assert fake.messages[ALERTS][ts].blocks == [section("a")]
    assert fake.messages[ALERTS][ts].text == "b"


def test_ts_values_are_unique_increasing_and_slack_shaped(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel=ALERTS, text=str(i))["ts"] for i in range(3)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 3
    seconds, micros = stamps[0].split(".")
    assert (len(seconds), len(micros)) == (10, 6)


def test_concurrent_posts_get_distinct_ts(fake: FakeSlack) -> None:
    def post_ten(channel: str) -> list[str]:
        worker = WebClient(token=TOKEN, base_url=fake.api_url)
        return [worker.chat_postMessage(channel=channel, text="x")["ts"] for _ in range(10)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        stamps = [ts for batch in pool.map(post_ten, [ALERTS, OTHER] * 2) for ts in batch]
    assert len(set(stamps)) == 40
    assert len(fake.calls) == 40


def test_threads_and_top_level_listing(fake: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel=ALERTS, text="alert")["ts"]
    client.chat_postMessage(channel=ALERTS, text="detail", thread_ts=parent)
    client.chat_postMessage(channel=ALERTS, text="second alert")

    assert [m.text for m in fake.thread(ALERTS, parent)] == ["alert", "detail"]
    top = fake.channel_messages(ALERTS, top_level_only=True)
    assert [m.text for m in top] == ["alert", "second alert"]
    assert len(fake.channel_messages(ALERTS)) == 3


def test_conversations_and_users(client: WebClient) -> None:
    info = client.conversations_info(channel=ALERTS)
    assert info["channel"]["id"] == ALERTS
    assert info["channel"]["is_member"] is True
    assert "U0BOT" in client.conversations_members(channel=ALERTS)["members"]
    user = client.users_info(user="U0ALICE")["user"]
    assert user["id"] == "U0ALICE"
    assert user["profile"]["email"]


def test_form_encoded_bodies(fake: FakeSlack, client: WebClient) -> None:
    blocks = [section("from a form")]
    # api_call(params=...) makes slack_sdk send a form body, blocks as a JSON string.
    client.api_call(
        "chat.postMessage",
        params={"channel": ALERTS, "text": "a", "blocks": json.dumps(blocks)},
    )
    # Non-slack_sdk callers (curl, scripts) may put the token in a form field instead.
    form = {"token": TOKEN, "channel": ALERTS, "text": "b", "blocks": json.dumps(blocks)}
    status, _, reply = post_to_bot(
        fake.api_url + "chat.postMessage", urllib.parse.urlencode(form).encode(), SECRET
    )
    assert (status, json.loads(reply)["ok"]) == (200, True)

    calls = fake.calls_to("chat.postMessage")
    assert [c.args["blocks"] for c in calls] == [blocks, blocks]
    assert "token" not in calls[1].args
    assert [m.blocks for m in fake.channel_messages(ALERTS)] == [blocks, blocks]


def test_blocks_without_text_is_ok_but_flagged(fake: FakeSlack, client: WebClient) -> None:
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        client.chat_postMessage(channel=ALERTS, blocks=[section("no fallback text")])
    assert fake.calls_to("chat.postMessage")[0].missing_text is True


def test_reset_clears_state(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel=ALERTS, text="x")
    fake.fail_next("auth.test")
    fake.reset()
    assert (fake.calls, fake.messages, fake.responses) == ([], {}, [])
    assert client.auth_test()["ok"] is True


# ---- application errors (HTTP 200, ok: false) ----------------------------------------


def test_invalid_token(fake: FakeSlack) -> None:
    bad = WebClient(token="xoxb-wrong", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as exc:
        bad.chat_postMessage(channel=ALERTS, text="x")
    assert slack_error(exc) == (200, "invalid_auth")
    assert fake.messages == {}


def test_missing_token_is_not_authed(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as exc:
        WebClient(base_url=fake.api_url).auth_test()
    assert slack_error(exc) == (200, "not_authed")


@pytest.mark.parametrize(
    ("method", "kwargs", "error"),
    [
        ("chat_postMessage", {"channel": "C0NOPE", "text": "x"}, "channel_not_found"),
        ("chat_update", {"channel": ALERTS, "ts": "1.000001", "text": "x"}, "message_not_found"),
        (
            "chat_postEphemeral",
            {"channel": "C0NOPE", "user": "U1", "text": "x"},
            "channel_not_found",
        ),
        ("conversations_info", {"channel": "C0NOPE"}, "channel_not_found"),
    ],
)
def test_slack_errors(client: WebClient, method: str, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(SlackApiError) as exc:
        getattr(client, method)(**kwargs)
    assert slack_error(exc) == (200, error)


def test_message_without_text_or_blocks(client: WebClient) -> None:
    # api_call skips chat_postMessage's client-side missing-text warning.
    with pytest.raises(SlackApiError) as exc:
        client.api_call("chat.postMessage", json={"channel": ALERTS})
    assert slack_error(exc) == (200, "no_text")


def test_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as exc:
        client.api_call("keyhunt.nothing")
    assert slack_error(exc) == (200, "unknown_method")


# ---- injected HTTP failures and retries ----------------------------------------------


def test_429_raises_without_a_retry_handler(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=ALERTS, text="x")
    assert slack_error(exc) == (429, "ratelimited")
    assert exc.value.response.headers["Retry-After"] == "7"
    # The fault is used up: the next call goes through.
    assert client.chat_postMessage(channel=ALERTS, text="x")["ok"] is True


def test_429_then_success_with_rate_limit_retry_handler(fake: FakeSlack) -> None:
    retrying = WebClient(
        token=TOKEN, base_url=fake.api_url, retry_handlers=[RateLimitErrorRetryHandler()]
    )
    fake.fail_next("chat.postMessage", retry_after=1)
    assert retrying.chat_postMessage(channel=ALERTS, text="x")["ok"] is True

    first, second = fake.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0  # the client honoured Retry-After
    assert len(fake.channel_messages(ALERTS)) == 1


def test_500_then_success_with_server_error_retry_handler(fake: FakeSlack) -> None:
    handler = ServerErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    retrying = WebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[handler])
    fake.fail_next("chat.update", status=500)
    ts = retrying.chat_postMessage(channel=ALERTS, text="a")["ts"]
    assert retrying.chat_update(channel=ALERTS, ts=ts, text="b")["ok"] is True
    assert [c.status for c in fake.calls_to("chat.update")] == [500, 200]


def test_5xx_raises_with_json_error_body(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("auth.test", status=503, count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as exc:
            client.auth_test()
        assert slack_error(exc) == (503, "service_unavailable")
    assert client.auth_test()["ok"] is True


def test_fail_next_with_an_ordinary_error(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", status=200, error="is_archived")
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=ALERTS, text="x")
    assert slack_error(exc) == (200, "is_archived")


def test_rate_limit_enforcement_per_channel(fake: FakeSlack, client: WebClient) -> None:
    fake.enforce_rate_limit(1.0)
    client.chat_postMessage(channel=ALERTS, text="1")
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=ALERTS, text="2")
    assert slack_error(exc) == (429, "ratelimited")
    assert exc.value.response.headers["Retry-After"] == "1"
    # Other channels have their own budget, and other methods are not limited.
    assert client.chat_postMessage(channel=OTHER, text="3")["ok"] is True
    assert client.auth_test()["ok"] is True


def test_rate_limit_refills_and_can_be_turned_off(fake: FakeSlack, client: WebClient) -> None:
    fake.enforce_rate_limit(20.0)  # one post per 50 ms keeps the test fast
    client.chat_postMessage(channel=ALERTS, text="1")
    time.sleep(0.06)
    client.chat_postMessage(channel=ALERTS, text="2")
    fake.enforce_rate_limit(None)
    for i in range(5):
        client.chat_postMessage(channel=ALERTS, text=str(i))


# ---- Block Kit limits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "ok"),
    [
        ([section("x")] * 50, True),
        ([section("x")] * 51, False),
        ([section("x" * 3000)], True),
        ([section("x" * 3001)], False),
        ([actions(button(text="x" * 75))], True),
        ([actions(button(text="x" * 76))], False),
        ([actions(button(value="x" * 2000))], True),
        ([actions(button(value="x" * 2001))], False),
        ([{**section("x"), "accessory": button(text="x" * 76)}], False),
    ],
    ids=[
        "50-blocks",
        "51-blocks",
        "section-3000",
        "section-3001",
        "button-text-75",
        "button-text-76",
        "button-value-2000",
        "button-value-2001",
        "accessory-button-text-76",
    ],
)
def test_block_kit_limits(
    fake: FakeSlack, client: WebClient, blocks: list[dict[str, Any]], ok: bool
) -> None:
    if ok:
        ts = client.chat_postMessage(channel=ALERTS, text="t", blocks=blocks)["ts"]
        assert client.chat_update(channel=ALERTS, ts=ts, text="t", blocks=blocks)["ok"]
        return
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=ALERTS, text="t", blocks=blocks)
    assert slack_error(exc) == (200, "invalid_blocks")
    assert exc.value.response["errors"]  # says which limit, like Slack does
    assert fake.messages == {}


def test_block_limits_apply_to_update(client: WebClient) -> None:
    ts = client.chat_postMessage(channel=ALERTS, text="t")["ts"]
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel=ALERTS, ts=ts, text="t", blocks=[section("x" * 3001)])
    assert slack_error(exc) == (200, "invalid_blocks")


# ---- response_url --------------------------------------------------------------------


def test_response_url_records_json_posts(fake: FakeSlack) -> None:
    # WebhookClient is what Bolt's respond() uses under the hood.
    response = WebhookClient(fake.response_url("cmd-1")).send(
        text="working on it", response_type="ephemeral"
    )
    assert (response.status_code, response.body) == (200, "ok")
    [post] = fake.responses
    assert post.key == "cmd-1"
    assert post.body == {"text": "working on it", "response_type": "ephemeral"}


# ---- signing helpers -----------------------------------------------------------------


def test_sign_is_accepted_by_signature_verifier() -> None:
    body = slash_command_body("list", response_url="http://127.0.0.1:1/response/x")
    headers = sign(SECRET, body)
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)


def test_stale_timestamp_or_tampered_body_fails_verification() -> None:
    body = b"text=list"
    verifier = SignatureVerifier(SECRET)
    stale = sign(SECRET, body, timestamp=int(time.time()) - 10 * 60)
    assert not verifier.is_valid_request(body, stale)
    assert not verifier.is_valid_request(b"text=rotate", sign(SECRET, body))
    assert not verifier.is_valid_request(body, sign("other-secret", body))


def test_slash_command_body_has_slacks_fields() -> None:
    body = slash_command_body("list --days 7", response_url="http://127.0.0.1:1/r")
    fields = parse_body(body.decode(), "application/x-www-form-urlencoded")
    assert fields["command"] == "/keyhunt"
    assert fields["text"] == "list --days 7"
    expected = {"token", "team_id", "team_domain", "channel_id", "channel_name", "user_id"}
    expected |= {"user_name", "api_app_id", "response_url", "trigger_id"}
    assert expected <= fields.keys()


def test_block_action_body_has_slacks_shape(fake: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(
        channel=ALERTS, text="alert", blocks=[actions(button(text="Acknowledge"))]
    )["ts"]
    message = fake.messages[ALERTS][ts].as_dict()
    body = block_action_body(
        "ack", "k1", message_ts=ts, message=message, response_url=fake.response_url()
    )
    payload = parse_body(body.decode(), "application/x-www-form-urlencoded")
    assert payload["type"] == "block_actions"
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": ALERTS,
        "is_ephemeral": False,
    }
    [action] = payload["actions"]
    assert (action["action_id"], action["value"], action["type"]) == ("ack", "k1", "button")
    assert action["text"]["text"] == "Acknowledge"  # echoed from the message's button
    assert payload["message"]["ts"] == ts
    assert {"id", "username", "name", "team_id"} <= payload["user"].keys()


def test_post_to_bot_signs_and_returns_errors_without_raising(fake: FakeSlack) -> None:
    body = json.dumps({"text": "hello"}).encode()
    status, _, reply = post_to_bot(
        fake.response_url("signed"), body, SECRET, content_type="application/json"
    )
    assert (status, reply) == (200, b"ok")
    assert SignatureVerifier(SECRET).is_valid_request(body, fake.responses[0].headers)

    status, _, _ = post_to_bot(fake.base_url + "/nowhere", b"x=1", SECRET)
    assert status == 404


def test_bodies_drive_a_real_bolt_app(fake: FakeSlack) -> None:
    """End to end: signed Slack-shaped bodies -> Bolt listeners -> fake Web API/response_url."""
    app = App(
        token=TOKEN,
        signing_secret=SECRET,
        client=WebClient(token=TOKEN, base_url=fake.api_url),
        process_before_response=True,  # run listeners inside dispatch, deterministically
    )

    @app.command("/keyhunt")
    def on_command(ack: Any, respond: Respond, command: dict[str, Any]) -> None:
        ack()
        respond(f"got {command['text']}")

    @app.action("ack")
    def on_ack(ack: Any, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.chat_update(
            channel=body["channel"]["id"], ts=body["container"]["message_ts"], text="acknowledged"
        )

    def dispatch(body: bytes, *, timestamp: int | None = None) -> int:
        headers: dict[str, str | Sequence[str]] = {
            "content-type": "application/x-www-form-urlencoded",
            **sign(SECRET, body, timestamp),
        }
        return app.dispatch(BoltRequest(body=body.decode(), headers=headers)).status

    assert dispatch(slash_command_body("list", response_url=fake.response_url("c1"))) == 200
    assert fake.responses[0].body["text"] == "got list"

    ts = WebClient(token=TOKEN, base_url=fake.api_url).chat_postMessage(
        channel=ALERTS, text="alert", blocks=[actions(button())]
    )["ts"]
    click = block_action_body("ack", "k1", message_ts=ts, response_url=fake.response_url("a1"))
    assert dispatch(click) == 200
    assert fake.messages[ALERTS][ts].text == "acknowledged"

    assert dispatch(click, timestamp=int(time.time()) - 3600) == 401
