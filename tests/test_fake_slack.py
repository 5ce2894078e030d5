"""FakeSlack against the real slack_sdk WebClient, and the Slack-style signing helpers."""

from __future__ import annotations

import http.client
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
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from keyhunt_dev.slack import (
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


def alert_metadata(finding: str) -> dict[str, Any]:
    return {"event_type": "keyhunt_alert", "event_payload": {"finding": finding}}


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages]


def post_texts(client: WebClient, *items: str, channel: str = ALERTS) -> list[str]:
    """Post each text as its own message; their ts, in posting order."""
    return [client.chat_postMessage(channel=channel, text=t)["ts"] for t in items]


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


# ---- message ts from the wall clock ---------------------------------------------------


def test_ts_comes_from_the_wall_clock(client: WebClient) -> None:
    before = time.time()
    ts = client.chat_postMessage(channel=ALERTS, text="x")["ts"]
    after = time.time()
    seconds, micros = ts.split(".")
    assert (len(seconds), len(micros)) == (10, 6)
    assert before - 0.001 <= float(ts) <= after + 0.001


def test_ts_stays_unique_and_increasing_when_the_clock_stands_still() -> None:
    with FakeSlack(TOKEN, clock=lambda: 1733486400.0) as frozen:
        worker = WebClient(token=TOKEN, base_url=frozen.api_url, retry_handlers=[])
        stamps = post_texts(worker, "a", "b", "c")
        assert stamps == ["1733486400.000000", "1733486400.000001", "1733486400.000002"]
        frozen.reset()  # reset() forgets messages, not the ts already handed out
        assert post_texts(worker, "d") == ["1733486400.000003"]


def test_ts_never_goes_backwards_with_the_clock() -> None:
    now = [1733486400.5]
    with FakeSlack(TOKEN, clock=lambda: now[0]) as fake:
        worker = WebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[])
        first = post_texts(worker, "a")[0]
        now[0] -= 10  # an NTP step back
        second = post_texts(worker, "b")[0]
    assert (first, second) == ("1733486400.500000", "1733486400.500001")


def test_oldest_as_a_real_time_filters_history(client: WebClient) -> None:
    post_texts(client, "before")
    time.sleep(0.01)
    cut = time.time()
    time.sleep(0.01)
    post_texts(client, "after 1", "after 2")
    page = client.conversations_history(channel=ALERTS, oldest=f"{cut:.6f}")
    assert texts(page["messages"]) == ["after 2", "after 1"]


# ---- message metadata -----------------------------------------------------------------


def test_post_stores_metadata_from_a_json_body(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel=ALERTS, text="alert", metadata=alert_metadata("e1"))
    assert fake.messages[ALERTS][posted["ts"]].metadata == alert_metadata("e1")
    # The poster's own answer shows the metadata it sent.
    assert posted["message"]["metadata"] == alert_metadata("e1")
    assert "metadata" not in client.chat_postMessage(channel=ALERTS, text="plain")["message"]


def test_post_accepts_metadata_as_json_text_in_a_form_body(
    fake: FakeSlack, client: WebClient
) -> None:
    client.api_call(
        "chat.postMessage",
        params={"channel": ALERTS, "text": "a", "metadata": json.dumps(alert_metadata("e2"))},
    )
    [message] = fake.channel_messages(ALERTS)
    assert message.metadata == alert_metadata("e2")


@pytest.mark.parametrize(
    "metadata",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        "42",
        json.dumps({"event_payload": {"finding": "e1"}}),
        json.dumps({"event_type": "", "event_payload": {}}),
        json.dumps({"event_type": 7, "event_payload": {}}),
        json.dumps({"event_type": "keyhunt_alert"}),
        json.dumps({"event_type": "keyhunt_alert", "event_payload": "e1"}),
        json.dumps({"event_type": "keyhunt_alert", "event_payload": ["e1"]}),
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "number",
        "no-event-type",
        "empty-event-type",
        "event-type-not-a-string",
        "no-event-payload",
        "payload-a-string",
        "payload-an-array",
    ],
)
def test_malformed_metadata_is_invalid_metadata_format(
    fake: FakeSlack, client: WebClient, metadata: str
) -> None:
    with pytest.raises(SlackApiError) as exc:
        client.api_call(
            "chat.postMessage", params={"channel": ALERTS, "text": "a", "metadata": metadata}
        )
    assert slack_error(exc) == (200, "invalid_metadata_format")
    assert fake.messages == {}


def test_malformed_metadata_in_a_json_body(fake: FakeSlack, client: WebClient) -> None:
    body = {"channel": ALERTS, "text": "a", "metadata": {"event_type": "x", "event_payload": 1}}
    with pytest.raises(SlackApiError) as exc:
        client.api_call("chat.postMessage", json=body)
    assert slack_error(exc) == (200, "invalid_metadata_format")
    assert fake.messages == {}


def test_update_keeps_replaces_or_removes_metadata(fake: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=ALERTS, text="a", metadata=alert_metadata("e1"))["ts"]
    message = fake.messages[ALERTS][ts]

    client.chat_update(channel=ALERTS, ts=ts, text="b")  # no metadata: Slack keeps it
    assert message.metadata == alert_metadata("e1")

    updated = client.chat_update(channel=ALERTS, ts=ts, text="c", metadata=alert_metadata("e9"))
    assert message.metadata == alert_metadata("e9")
    assert updated["message"]["metadata"] == alert_metadata("e9")

    with pytest.raises(SlackApiError) as exc:
        client.api_call(
            "chat.update", json={"channel": ALERTS, "ts": ts, "text": "z", "metadata": "x"}
        )
    assert slack_error(exc) == (200, "invalid_metadata_format")
    assert (message.text, message.metadata) == ("c", alert_metadata("e9"))

    client.api_call("chat.update", json={"channel": ALERTS, "ts": ts, "text": "d", "metadata": {}})
    assert message.metadata is None  # an empty object removes it
    assert [v.metadata for v in message.history] == [
        alert_metadata("e1"),
        alert_metadata("e1"),
        alert_metadata("e9"),
        None,
    ]


# ---- conversations.history ------------------------------------------------------------


def test_history_lists_top_level_messages_newest_first(client: WebClient) -> None:
    blocks = [section("alert one")]
    first = client.chat_postMessage(channel=ALERTS, text="one", blocks=blocks)["ts"]
    client.chat_postMessage(channel=ALERTS, text="reply", thread_ts=first)
    client.chat_postMessage(channel=ALERTS, text="two")
    client.chat_postMessage(channel=OTHER, text="elsewhere")

    page = client.conversations_history(channel=ALERTS)
    assert texts(page["messages"]) == ["two", "one"]  # no thread reply, no other channel
    assert page["has_more"] is False
    assert "response_metadata" not in page  # the last page carries no cursor

    two, one = page["messages"]
    assert {"type", "user", "bot_id", "app_id", "text", "ts", "team"} <= two.keys()
    assert (two["type"], two["user"]) == ("message", "U0BOT")
    assert "thread_ts" not in two  # an unthreaded message has no thread fields
    assert one["blocks"] == blocks
    assert one["ts"] == first
    assert (one["thread_ts"], one["reply_count"], one["reply_users"]) == (first, 1, ["U0BOT"])
    assert one["latest_reply"] > first


def test_history_includes_broadcast_replies(client: WebClient) -> None:
    parent = client.chat_postMessage(channel=ALERTS, text="parent")["ts"]
    client.chat_postMessage(channel=ALERTS, text="quiet", thread_ts=parent)
    client.chat_postMessage(channel=ALERTS, text="loud", thread_ts=parent, reply_broadcast=True)
    messages = client.conversations_history(channel=ALERTS)["messages"]
    assert texts(messages) == ["loud", "parent"]
    loud = messages[0]
    assert (loud["subtype"], loud["thread_ts"], loud["root"]["ts"]) == (
        "thread_broadcast",
        parent,
        parent,
    )
    assert messages[1]["reply_count"] == 2


def test_history_of_an_unknown_channel(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as exc:
        client.conversations_history(channel="C0NOPE")
    assert slack_error(exc) == (200, "channel_not_found")
    with pytest.raises(SlackApiError) as exc:
        client.api_call("conversations.history", params={})
    assert slack_error(exc) == (200, "channel_not_found")


def test_history_returns_metadata_only_with_include_all_metadata(client: WebClient) -> None:
    client.chat_postMessage(channel=ALERTS, text="ours", metadata=alert_metadata("e1"))
    client.chat_postMessage(channel=ALERTS, text="plain")

    # Even the app's own messages come without metadata unless it is asked for.
    for plain in (
        client.conversations_history(channel=ALERTS),
        client.conversations_history(channel=ALERTS, include_all_metadata=False),
    ):
        assert all("metadata" not in m for m in plain["messages"])

    full = client.conversations_history(channel=ALERTS, include_all_metadata=True)
    assert [m.get("metadata") for m in full["messages"]] == [None, alert_metadata("e1")]
    # Non-slack_sdk callers send "true" rather than slack_sdk's "1".
    raw = client.api_call(
        "conversations.history", params={"channel": ALERTS, "include_all_metadata": "true"}
    )
    assert raw["messages"][1]["metadata"] == alert_metadata("e1")


def test_history_oldest_and_latest_are_exclusive_unless_inclusive(client: WebClient) -> None:
    a, b, c, d = post_texts(client, "a", "b", "c", "d")

    def listed(**kwargs: Any) -> list[str]:
        return texts(client.conversations_history(channel=ALERTS, **kwargs)["messages"])

    assert listed(oldest=a, latest=d) == ["c", "b"]
    assert listed(oldest=a, latest=d, inclusive=True) == ["d", "c", "b", "a"]
    assert listed(latest=c) == ["b", "a"]
    assert listed(oldest=b) == ["d", "c"]
    assert listed(oldest=b, inclusive=True) == ["d", "c", "b"]
    # inclusive alone changes nothing.
    assert listed(inclusive=True) == ["d", "c", "b", "a"]
    # Slack's recipes for fetching one message by its ts.
    assert listed(latest=b, inclusive=True, limit=1) == ["b"]
    assert listed(oldest=b, inclusive=True, limit=1) == ["b"]
    page = client.conversations_history(channel=ALERTS, latest=b, inclusive=True, limit=1)
    assert page["latest"] == b  # echoed, as Slack does


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"oldest": "yesterday"}, "invalid_ts_oldest"),
        ({"latest": "1.2.3"}, "invalid_ts_latest"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
    ],
)
def test_history_argument_errors(client: WebClient, kwargs: dict[str, Any], error: str) -> None:
    post_texts(client, "a")
    with pytest.raises(SlackApiError) as exc:
        client.conversations_history(channel=ALERTS, **kwargs)
    assert slack_error(exc) == (200, error)


def test_history_pages_back_from_latest(client: WebClient) -> None:
    post_texts(client, "1", "2", "3", "4", "5")
    first = client.conversations_history(channel=ALERTS, limit=2)
    assert (texts(first["messages"]), first["has_more"]) == (["5", "4"], True)
    cursor = first["response_metadata"]["next_cursor"]
    second = client.conversations_history(channel=ALERTS, limit=2, cursor=cursor)
    assert (texts(second["messages"]), second["has_more"]) == (["3", "2"], True)
    cursor = second["response_metadata"]["next_cursor"]
    third = client.conversations_history(channel=ALERTS, limit=2, cursor=cursor)
    assert (texts(third["messages"]), third["has_more"]) == (["1"], False)
    assert "response_metadata" not in third


def test_history_with_only_oldest_pages_forward_from_oldest(client: WebClient) -> None:
    zero, *_ = post_texts(client, "0", "1", "2", "3", "4", "5")
    pages = [
        (texts(page["messages"]), page["has_more"])
        for page in client.conversations_history(channel=ALERTS, oldest=zero, limit=2)
    ]
    # The first page is the messages closest to `oldest`, not the newest ones.
    assert pages == [(["2", "1"], True), (["4", "3"], True), (["5"], False)]


def test_slack_sdk_iterates_every_page_with_a_window(client: WebClient) -> None:
    stamps = post_texts(client, *(str(i) for i in range(7)))
    seen = [
        m["text"]
        for page in client.conversations_history(
            channel=ALERTS, oldest=stamps[1], latest=stamps[6], limit=2
        )
        for m in page["messages"]
    ]
    assert seen == ["5", "4", "3", "2"]


def test_a_cursor_is_for_the_direction_it_came_from(client: WebClient) -> None:
    zero, *_ = post_texts(client, "0", "1", "2")
    backwards = client.conversations_history(channel=ALERTS, limit=1)
    cursor = backwards["response_metadata"]["next_cursor"]
    with pytest.raises(SlackApiError) as exc:
        client.conversations_history(channel=ALERTS, oldest=zero, limit=1, cursor=cursor)
    assert slack_error(exc) == (200, "invalid_cursor")
    with pytest.raises(SlackApiError) as exc:
        client.conversations_replies(channel=ALERTS, ts=zero, cursor=cursor)
    assert slack_error(exc) == (200, "invalid_cursor")


def test_history_limit_defaults_to_100_and_stops_at_999(client: WebClient) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: client.chat_postMessage(channel=ALERTS, text=str(i)), range(1001)))
    default = client.conversations_history(channel=ALERTS)
    assert (len(default["messages"]), default["has_more"]) == (100, True)
    most = client.conversations_history(channel=ALERTS, limit=5000)
    assert (len(most["messages"]), most["has_more"]) == (999, True)
    rest = client.conversations_history(
        channel=ALERTS, limit=5000, cursor=most["response_metadata"]["next_cursor"]
    )
    assert (len(rest["messages"]), rest["has_more"]) == (2, False)
    every = [m["ts"] for m in most["messages"] + rest["messages"]]
    assert len(set(every)) == 1001
    assert every == sorted(every, reverse=True)


# ---- conversations.replies ------------------------------------------------------------


def test_replies_lists_parent_then_replies_oldest_first(client: WebClient) -> None:
    parent = client.chat_postMessage(channel=ALERTS, text="parent")["ts"]
    for text in ("r1", "r2", "r3"):
        client.chat_postMessage(channel=ALERTS, text=text, thread_ts=parent)
    client.chat_postMessage(channel=ALERTS, text="unrelated")

    page = client.conversations_replies(channel=ALERTS, ts=parent)
    assert texts(page["messages"]) == ["parent", "r1", "r2", "r3"]
    assert page["has_more"] is False
    assert "response_metadata" not in page
    head, r1, *_ = page["messages"]
    assert (head["ts"], head["thread_ts"], head["reply_count"]) == (parent, parent, 3)
    assert (r1["thread_ts"], r1["parent_user_id"]) == (parent, "U0BOT")


def test_replies_of_a_message_without_replies_is_that_message(client: WebClient) -> None:
    ts = client.chat_postMessage(channel=ALERTS, text="alone")["ts"]
    page = client.conversations_replies(channel=ALERTS, ts=ts)
    assert (texts(page["messages"]), page["has_more"]) == (["alone"], False)


def test_replies_of_a_reply_ts_is_that_reply_alone(client: WebClient) -> None:
    parent = client.chat_postMessage(channel=ALERTS, text="parent")["ts"]
    reply = client.chat_postMessage(channel=ALERTS, text="r1", thread_ts=parent)["ts"]
    client.chat_postMessage(channel=ALERTS, text="r2", thread_ts=parent)
    assert texts(client.conversations_replies(channel=ALERTS, ts=reply)["messages"]) == ["r1"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": ALERTS, "ts": "1733486400.000001"}, "thread_not_found"),
        ({"channel": "C0NOPE", "ts": "1733486400.000001"}, "channel_not_found"),
    ],
)
def test_replies_errors(client: WebClient, kwargs: dict[str, Any], error: str) -> None:
    post_texts(client, "a")
    with pytest.raises(SlackApiError) as exc:
        client.conversations_replies(**kwargs)
    assert slack_error(exc) == (200, error)


def test_replies_ts_of_another_channel_is_not_found(client: WebClient) -> None:
    ts = post_texts(client, "elsewhere", channel=OTHER)[0]
    with pytest.raises(SlackApiError) as exc:
        client.conversations_replies(channel=ALERTS, ts=ts)
    assert slack_error(exc) == (200, "thread_not_found")


def test_replies_window_filters_replies_but_the_parent_opens_the_page(
    client: WebClient,
) -> None:
    parent = client.chat_postMessage(channel=ALERTS, text="parent")["ts"]
    r1, r2, r3 = (
        client.chat_postMessage(channel=ALERTS, text=t, thread_ts=parent)["ts"]
        for t in ("r1", "r2", "r3")
    )

    def listed(**kwargs: Any) -> list[str]:
        return texts(client.conversations_replies(channel=ALERTS, ts=parent, **kwargs)["messages"])

    assert listed(oldest=r1) == ["parent", "r2", "r3"]
    assert listed(oldest=r1, inclusive=True) == ["parent", "r1", "r2", "r3"]
    assert listed(latest=r3) == ["parent", "r1", "r2"]
    assert listed(oldest=r1, latest=r3) == ["parent", "r2"]
    assert listed(oldest=r2, latest=r2, inclusive=True) == ["parent", "r2"]
    assert listed(oldest=r2, latest=r2, inclusive=True, limit=1) == ["parent"]
    with pytest.raises(SlackApiError) as exc:
        client.conversations_replies(channel=ALERTS, ts=parent, latest="soon")
    assert slack_error(exc) == (200, "invalid_ts_latest")


def test_replies_pages_by_cursor(client: WebClient) -> None:
    parent = client.chat_postMessage(channel=ALERTS, text="parent")["ts"]
    for i in range(1, 6):
        client.chat_postMessage(channel=ALERTS, text=f"r{i}", thread_ts=parent)
    pages = [
        (texts(page["messages"]), page["has_more"])
        for page in client.conversations_replies(channel=ALERTS, ts=parent, limit=2)
    ]
    # The parent counts towards the first page's limit and is not repeated after it.
    assert pages == [(["parent", "r1"], True), (["r2", "r3"], True), (["r4", "r5"], False)]


def test_replies_metadata_only_with_include_all_metadata(client: WebClient) -> None:
    burst = {"event_type": "keyhunt_burst", "event_payload": {"burst": "b1"}}
    parent = client.chat_postMessage(channel=ALERTS, text="summary", metadata=burst)["ts"]
    client.chat_postMessage(
        channel=ALERTS, text="alert", thread_ts=parent, metadata=alert_metadata("e1")
    )
    plain = client.conversations_replies(channel=ALERTS, ts=parent)["messages"]
    assert all("metadata" not in m for m in plain)
    full = client.conversations_replies(channel=ALERTS, ts=parent, include_all_metadata=True)
    assert [m["metadata"] for m in full["messages"]] == [burst, alert_metadata("e1")]


# ---- lost answers: the call lands, the client never hears -----------------------------


@pytest.mark.parametrize(
    ("status", "error"), [(500, "internal_error"), (503, "service_unavailable")]
)
def test_5xx_after_accept_stores_the_message(
    fake: FakeSlack, client: WebClient, status: int, error: str
) -> None:
    fake.fail_next("chat.postMessage", status=status, after_accept=True)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=ALERTS, text="alert", metadata=alert_metadata("e1"))
    assert slack_error(exc) == (status, error)

    [call] = fake.calls_to("chat.postMessage")
    assert (call.ok, call.accepted, call.status, call.error, call.lost) == (
        True,
        True,
        status,
        error,
        "server_error",
    )
    [message] = fake.channel_messages(ALERTS)
    assert call.response["ts"] == message.ts  # the ts the client never saw
    # It is in the channel for anyone who looks.
    found = client.conversations_history(channel=ALERTS, include_all_metadata=True)["messages"]
    assert [(m["ts"], m["metadata"]) for m in found] == [(message.ts, alert_metadata("e1"))]
    # The fault is used up.
    assert client.chat_postMessage(channel=ALERTS, text="next")["ok"] is True


def test_drop_next_closes_without_a_response_after_storing(
    fake: FakeSlack, client: WebClient
) -> None:
    fake.drop_next("chat.postMessage")
    with pytest.raises(http.client.RemoteDisconnected):
        client.chat_postMessage(channel=ALERTS, text="alert")
    [call] = fake.calls_to("chat.postMessage")
    assert (call.ok, call.status, call.error, call.lost) == (True, 0, None, "closed")
    [message] = fake.channel_messages(ALERTS)
    assert (message.text, call.response["ts"]) == ("alert", message.ts)
    assert texts(client.conversations_history(channel=ALERTS)["messages"]) == ["alert"]


def test_delay_next_holds_the_answer_past_the_read_timeout(fake: FakeSlack) -> None:
    impatient = WebClient(token=TOKEN, base_url=fake.api_url, timeout=0.3, retry_handlers=[])  # type: ignore[arg-type]
    fake.delay_next("chat.postMessage", 5.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel=ALERTS, text="alert")
    assert time.monotonic() - started < 3.0  # the client gave up; the fake still holds it
    [call] = fake.calls_to("chat.postMessage")
    assert (call.ok, call.lost, call.held) == (True, "delayed", 5.0)
    assert [m.text for m in fake.channel_messages(ALERTS)] == ["alert"]


def test_a_patient_client_gets_the_delayed_answer(fake: FakeSlack, client: WebClient) -> None:
    fake.delay_next("chat.postMessage", 0.2)
    started = time.monotonic()
    posted = client.chat_postMessage(channel=ALERTS, text="slow")
    assert time.monotonic() - started >= 0.2
    assert posted["ts"] == fake.channel_messages(ALERTS)[0].ts


def test_lost_answers_apply_to_any_method(fake: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=ALERTS, text="new")["ts"]
    fake.fail_next("chat.update", status=500, after_accept=True)
    with pytest.raises(SlackApiError):
        client.chat_update(channel=ALERTS, ts=ts, text="acked")
    assert fake.messages[ALERTS][ts].text == "acked"


def test_a_refused_call_stores_nothing(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", status=500)  # no after_accept: refused up front
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel=ALERTS, text="x")
    [call] = fake.calls_to("chat.postMessage")
    assert (call.ok, call.status, call.lost) == (False, 500, None)
    assert fake.messages == {}


def test_lost_answer_of_a_call_slack_rejected(fake: FakeSlack, client: WebClient) -> None:
    fake.drop_next("chat.postMessage")
    with pytest.raises(http.client.RemoteDisconnected):
        client.chat_postMessage(channel="C0NOPE", text="x")
    [call] = fake.calls_to("chat.postMessage")
    assert (call.ok, call.lost, call.response["error"]) == (False, "closed", "channel_not_found")


def test_faults_of_every_kind_queue_in_order(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    fake.drop_next("chat.postMessage", count=2)
    fake.fail_next("chat.postMessage", status=503, after_accept=True)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel=ALERTS, text="refused")
    for text in ("dropped 1", "dropped 2"):
        with pytest.raises(http.client.RemoteDisconnected):
            client.chat_postMessage(channel=ALERTS, text=text)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel=ALERTS, text="lost to 503")
    client.chat_postMessage(channel=ALERTS, text="fine")
    calls = fake.calls_to("chat.postMessage")
    assert [(c.status, c.lost) for c in calls] == [
        (429, None),
        (0, "closed"),
        (0, "closed"),
        (503, "server_error"),
        (200, None),
    ]
    assert [m.text for m in fake.channel_messages(ALERTS)] == [
        "dropped 1",
        "dropped 2",
        "lost to 503",
        "fine",
    ]


def test_fault_arguments_are_checked(fake: FakeSlack) -> None:
    with pytest.raises(ValueError, match="5xx"):
        fake.fail_next("chat.postMessage", status=429, after_accept=True)
    with pytest.raises(ValueError, match="5xx"):
        fake.fail_next("chat.postMessage", status=200, error="x", after_accept=True)
    with pytest.raises(ValueError, match="count"):
        fake.drop_next("chat.postMessage", count=0)
    with pytest.raises(ValueError, match="seconds"):
        fake.delay_next("chat.postMessage", 0)


def test_reset_clears_lost_answer_faults(fake: FakeSlack, client: WebClient) -> None:
    fake.drop_next("chat.postMessage")
    fake.reset()
    assert client.chat_postMessage(channel=ALERTS, text="x")["ok"] is True


# ---- the danger the fake must reproduce: blind retries post twice ---------------------


def test_connection_error_retry_after_a_dropped_answer_posts_twice(fake: FakeSlack) -> None:
    handler = ConnectionErrorRetryHandler(
        interval_calculator=FixedValueRetryIntervalCalculator(0.01)
    )
    retrying = WebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[handler])
    fake.drop_next("chat.postMessage")
    posted = retrying.chat_postMessage(channel=ALERTS, text="alert", metadata=alert_metadata("e1"))
    assert posted["ok"] is True  # the caller believes it posted once...

    copies = fake.channel_messages(ALERTS)
    assert [m.metadata for m in copies] == [alert_metadata("e1")] * 2  # ...the channel has two
    assert [(c.ok, c.lost) for c in fake.calls_to("chat.postMessage")] == [
        (True, "closed"),
        (True, None),
    ]


def test_server_error_retry_after_a_lost_answer_posts_twice(fake: FakeSlack) -> None:
    handler = ServerErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    retrying = WebClient(token=TOKEN, base_url=fake.api_url, retry_handlers=[handler])
    fake.fail_next("chat.postMessage", status=503, after_accept=True)
    assert retrying.chat_postMessage(channel=ALERTS, text="alert")["ok"] is True
    assert [m.text for m in fake.channel_messages(ALERTS)] == ["alert", "alert"]
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [503, 200]


def test_looking_in_history_after_a_lost_answer_finds_the_one_copy(
    fake: FakeSlack, client: WebClient
) -> None:
    """The recovery the product relies on: search by metadata instead of posting again."""
    attempt = time.time()
    fake.drop_next("chat.postMessage")
    with pytest.raises(http.client.RemoteDisconnected):
        client.chat_postMessage(channel=ALERTS, text="alert", metadata=alert_metadata("e1"))

    found = [
        m["ts"]
        for page in client.conversations_history(
            channel=ALERTS, oldest=f"{attempt - 1:.6f}", include_all_metadata=True, limit=1
        )
        for m in page["messages"]
        if m.get("metadata") == alert_metadata("e1") and m["user"] == "U0BOT"
    ]
    assert found == [fake.channel_messages(ALERTS)[0].ts]
    assert len(fake.channel_messages(ALERTS)) == 1


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


def test_drop_next_can_skip_calls_before_the_one_it_drops(fake: FakeSlack) -> None:
    client = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
    fake.drop_next("chat.postMessage", skip=2)
    for n in range(2):
        assert client.chat_postMessage(channel="C0ALERTS", text=f"fine {n}")["ok"]
    with pytest.raises(ConnectionError):
        client.chat_postMessage(channel="C0ALERTS", text="dropped")
    assert client.chat_postMessage(channel="C0ALERTS", text="fine again")["ok"]
    assert [c.lost for c in fake.calls_to("chat.postMessage")] == [None, None, "closed", None]
    assert len(fake.channel_messages("C0ALERTS")) == 4
