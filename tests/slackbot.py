"""Helpers for the Slack-bot scenario tests and the bot benchmarks.

The bot under test is the real one, from the composition root `bot.compose.Components` (store,
Web API client with its retry handlers, Hunter, Poller, Poster, the Bolt app) served by waitress on
127.0.0.1 port 0, a real SQLite file. Around it only fakes that speak HTTP: FakeAWS (moto +
the LookupEvents emulator, reached by boto3 through AWS_ENDPOINT_URL) and FakeSlack (reached
by slack_sdk through SLACK_API_URL). Requests go to the bot signed exactly like Slack signs
them.

A bot is reached over HTTP (the default) or over Socket Mode (`transport=SOCKET`): then it
connects to FakeSlack's WebSocket with `SLACK_APP_TOKEN` and no signing secret, as
`keyhunt serve --socket-mode` does, and `slash` and `click` send envelopes instead of signed
requests; the same assertions hold for both.

Nothing here is a pytest fixture, so test files import what they use explicitly and declare
their own small fixtures around `BotFactory` (see tests/test_bot_flow.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.compose import Components
from bot.poller import PollOutcome
from bot.render import ACTION_EXPECTED
from bot.service import close_socket_mode, connect_socket_mode
from bot.settings import Settings, load_settings
from bot.store import Store
from checks.classify import classify
from checks.model import Finding, Target
from checks.parse import parse_record
from checks.ratelimit import RateLimiter
from keyhunt_dev import records as r
from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import (
    ApiCall,
    FakeSlack,
    OpenedView,
    ResponsePost,
    block_action_body,
    post_to_bot,
    slash_command_body,
    view_submission_body,
)
from keyhunt_dev.slack_socket import Ack

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

CALLER = "123456789012"  # moto's account for the dummy credentials: keyhunt's own account
OTHER = "222222222222"  # reached through AssumeRole
REGION = "us-east-1"
CHANNEL = "C0ALERTS"
TRIAGER = "U0CAROL"
OUTSIDER = "U0MALLORY"
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
DUMMY_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
DUMMY_SECRET_KEY = "dummy"

# How the bot is reached: HTTP requests signed like Slack's, or Socket Mode envelopes.
HTTP = "http"
SOCKET = "socket"
TRANSPORTS = (HTTP, SOCKET)
# The Socket Mode client checks its connection this often (the product: 10 s), so a dropped
# socket is replaced within a test's patience.
SOCKET_PING_SECONDS = 0.5
# How long a socket-mode `slash`/`click` waits for the ack; HTTP's answer comes with the
# response, and Slack gives up after 3 s (a bot this slow fails the test either way).
ACK_WAIT_SECONDS = 10.0

Json = dict[str, Any]

# What every mention, broadcast or link in Slack's mrkdwn starts with.
SLACK_CONTROL = ("<!", "<@", "<#", "<http", "<mailto")
EVENT_IN_CONTEXT = re.compile(r"event `([^`]+)` · keyhunt")


# --------------------------------------------------------------------------- small things


def unique(prefix: str) -> str:
    """A name no other test uses (moto's IAM state is shared by the whole process)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy and return it; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --------------------------------------------------------------------------- AWS side


def aws_env_vars(endpoint: str, tmp_path: Path) -> dict[str, str]:
    """boto3 aimed at the fake with dummy credentials, and no file or metadata fallback."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def aws_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path) -> None:
    """The test's environment aimed at the fake (conftest already removed real credentials)."""
    for name, value in aws_env_vars(endpoint, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def isolate_process_from_aws(endpoint: str, tmp_path: Path) -> None:
    """For benchmarks (no monkeypatch): this whole process talks to the fake only."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(aws_env_vars(endpoint, tmp_path))


def self_key(
    when: datetime,
    *,
    account: str = CALLER,
    user: str | None = None,
    key: str | None = None,
    agent: str = r.SDK_AGENT,
    event_id: str | None = None,
) -> Json:
    """An IAM user creating a key for itself (medium, `self_service`)."""
    name = user or unique("selfie")
    return r.create_access_key(
        r.iam_user(account, name),
        account,
        when,
        user=None,
        new_key=key or new_key_id(),
        agent=agent,
        event_id=event_id or unique("evt"),
    )


def key_for_other(
    when: datetime,
    *,
    account: str = CALLER,
    actor: str | None = None,
    user: str | None = None,
    key: str | None = None,
    event_id: str | None = None,
) -> Json:
    """An IAM user creating a key for somebody else (high, `key_for_other_user`)."""
    return r.create_access_key(
        r.iam_user(account, actor or unique("alice")),
        account,
        when,
        user=user or unique("bob"),
        new_key=key or new_key_id(),
        event_id=event_id or unique("evt"),
    )


def root_key(when: datetime, *, account: str = CALLER, event_id: str | None = None) -> Json:
    """The root user creating its own key (critical, `root_actor`)."""
    return r.create_access_key(
        r.root(account),
        account,
        when,
        user=None,
        new_key=new_key_id(),
        agent=r.CONSOLE_AGENT,
        event_id=event_id or unique("evt"),
    )


def event_id_of(record: Json) -> str:
    return str(record["eventID"])


def finding_of(record: Json, target: Target | None = None) -> Finding:
    """The finding the hunt would make of `record` (pure: parse + classify)."""
    return classify(parse_record(json.dumps(record)), target=target or Target(CALLER, REGION))


# --------------------------------------------------------------------------- Slack side


def posted_alerts(slack: FakeSlack) -> Counter[str]:
    """How many times each event's alert was accepted by chat.postMessage."""
    seen: Counter[str] = Counter()
    for call in slack.calls_to("chat.postMessage"):
        if call.ok:
            for event_id in events_in(call.args.get("blocks") or []):
                seen[event_id] += 1
    return seen


def events_in(blocks: Iterable[Json]) -> list[str]:
    found: list[str] = []
    for block in blocks:
        for text in mrkdwn_texts(block):
            found.extend(EVENT_IN_CONTEXT.findall(text))
    return found


def text_objects(node: Any) -> Iterator[Json]:
    """Every Block Kit text object ({"type": "mrkdwn"|"plain_text", "text": ...}) in `node`."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def mrkdwn_texts(node: Any) -> list[str]:
    return [t["text"] for t in text_objects(node) if t["type"] == "mrkdwn"]


def block_kit_problems(blocks: list[Json]) -> list[str]:
    """Slack's documented Block Kit limits, checked independently of the fake's own checks."""
    problems: list[str] = []
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (max 50)")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "section":
            text = (block.get("text") or {}).get("text", "")
            if len(text) > 3000:
                problems.append(f"block {i}: section text {len(text)} chars (max 3000)")
            fields = block.get("fields") or []
            if len(fields) > 10:
                problems.append(f"block {i}: {len(fields)} fields (max 10)")
            problems.extend(
                f"block {i}: field {j} {len(f['text'])} chars (max 2000)"
                for j, f in enumerate(fields)
                if len(f["text"]) > 2000
            )
        elif kind == "context" and len(block.get("elements") or []) > 10:
            problems.append(f"block {i}: context with more than 10 elements")
        elif kind == "actions":
            for element in block.get("elements") or []:
                # A button has one label and value; an overflow menu up to five options.
                options = element.get("options") if element.get("type") == "overflow" else None
                if options is not None and not 1 <= len(options) <= 5:
                    problems.append(f"block {i}: overflow menu with {len(options)} options")
                for item in options or [element]:
                    if len(item["text"]["text"]) > 75:
                        problems.append(f"block {i}: label over 75 chars")
                    if len(str(item.get("value", ""))) > 2000:
                        problems.append(f"block {i}: value over 2000 chars")
    return problems


def outside_code_spans(text: str) -> str:
    """mrkdwn with every inline code span removed: what Slack would format or link."""
    return re.sub(r"`[^`]*`", "", text)


def buttons_of(blocks: list[Json]) -> list[str]:
    return [
        element["text"]["text"]
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]


@dataclass(frozen=True)
class SlashReply:
    """The bot's synchronous answer to a slash command (the ack): the HTTP response, or in
    Socket Mode the ack's payload (status 200 once acked, 0 when no ack came)."""

    key: str  # the response_url key where the deferred answer will arrive
    status: int
    body: Json | None
    raw: bytes

    @property
    def text(self) -> str:
        return str((self.body or {}).get("text", ""))

    @property
    def is_usage(self) -> bool:
        return self.text == "keyhunt usage"


# --------------------------------------------------------------------------- the bot


def bot_settings(slack: FakeSlack, tmp_path: Path, db: Path | None = None, **env: str) -> Settings:
    """Settings from an explicit environment and an empty config file (never the repo's)."""
    config = tmp_path / "keyhunt-test.yaml"
    config.write_text("", encoding="utf-8")
    environ = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "KEYHUNT_CHANNEL": CHANNEL,
        "KEYHUNT_DATABASE_URL": f"sqlite:///{db or tmp_path / 'keyhunt.db'}",
        **env,
    }
    return load_settings(config, environ)


def button_value(message: Json, action_id: str) -> str | None:
    """The value of the button `action_id` in the message as Slack holds it (what a click
    sends back), or None when the message has no such button."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return str(element.get("value"))
    return None


class Bot:
    """One keyhunt replica: the parts `keyhunt serve` builds (bot.compose), served on loopback;
    with `transport=SOCKET` also connected over Socket Mode (bot.service)."""

    def __init__(
        self,
        slack: FakeSlack,
        settings: Settings,
        *,
        posts_per_second: float = 50.0,
        workers: int | None = None,
        transport: str = HTTP,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
        self.slack = slack
        self.settings = settings
        self.transport = transport
        extra = {} if clock is None else {"clock": clock}
        self.parts = Components(settings, workers=workers, **extra)
        if self.parts.poster is not None:
            # Slack's ~1 post/s pacing is the Poster's own concern (bench/bot_burst.py measures
            # it); scenario tests post faster so they stay quick.
            self.parts.poster.limiter = RateLimiter(posts_per_second)
        self.app = self.parts.app
        self.server = self.parts.http_server("127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self.server.port}"
        self.events_url = f"{self.base_url}/slack/events"
        self.socket: SocketModeHandler | None = None
        if transport == SOCKET:
            before = len(slack.socket_mode.connections)
            self.socket = connect_socket_mode(self.parts, ping_interval=SOCKET_PING_SECONDS)
            wait_for(
                lambda: len(slack.socket_mode.connections) > before,
                10,
                "the Socket Mode connection",
            )

    @property
    def store(self) -> Store:
        return self.parts.store

    def poll(self) -> PollOutcome:
        return self.parts.poller.run_once()

    def close(self) -> None:
        if self.socket is not None:
            close_socket_mode(self.socket)
        self.server.stop()
        # Lazy listeners still at work (an investigation a test did not wait for) finish
        # here, not during the next test, nor after the session's fakes have stopped.
        self.app._listener_runner.lazy_listener_runner.executor.shutdown(wait=True)
        self.parts.close()

    # ---- talking to it like Slack ---------------------------------------------------

    def click_fields(
        self, event_id: str, action: str = ACTION_EXPECTED, user: str = TRIAGER
    ) -> tuple[str, str, dict[str, Any]]:
        """What a click on `action` in the alert of `event_id` sends: (action_id, value, the
        other fields of `block_action_body` / `block_action_payload`)."""
        finding = self.store.get(event_id)
        if finding is None or not finding.message.channel or not finding.message.ts:
            raise AssertionError(f"{event_id} was never posted")
        message = self.slack.messages[finding.message.channel][finding.message.ts].as_dict()
        fields: dict[str, Any] = {
            "user_id": user,
            "channel_id": finding.message.channel,
            "message_ts": finding.message.ts,
            "message": message,
            "response_url": self.slack.response_url(unique("click")),
        }
        return action, button_value(message, action) or event_id, fields

    def click_body(
        self, event_id: str, action: str = ACTION_EXPECTED, user: str = TRIAGER
    ) -> bytes:
        action_id, value, fields = self.click_fields(event_id, action, user)
        return block_action_body(action_id, value, **fields)

    def click(
        self,
        event_id: str,
        action: str = ACTION_EXPECTED,
        user: str = TRIAGER,
        *,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
    ) -> int:
        """The HTTP status of the click; in Socket Mode 200 once acked (0: never acked)."""
        if self.transport == SOCKET:
            self._no_signature_in_socket_mode(secret, timestamp)
            action_id, value, fields = self.click_fields(event_id, action, user)
            envelope = self.slack.socket_mode.block_action(action_id, value, **fields)
            return 200 if self.ack(envelope) is not None else 0
        body = self.click_body(event_id, action, user)
        status, _, _ = post_to_bot(self.events_url, body, secret, timestamp=timestamp)
        return status

    def click_menu(self, event_id: str, action: str, option: str, user: str = TRIAGER) -> int:
        """Choose `option` (its value) from the overflow menu `action` of an alert."""
        _, _, fields = self.click_fields(event_id, action, user)
        body = block_action_body(action, "", selected_option={"value": option}, **fields)
        status, _, _ = post_to_bot(self.events_url, body, SIGNING_SECRET)
        return status

    def click_dm(
        self,
        event_id: str,
        action: str,
        user: str,
        *,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
    ) -> int:
        """A click on `action` in the "Was this you?" DM about `event_id`, by `user`."""
        people = (found := self.store.get(event_id)) and found.engagement
        if not people or not people.dm_channel or not people.dm_ts:
            raise AssertionError(f"nobody was asked about {event_id}")
        message = self.slack.messages[people.dm_channel][people.dm_ts].as_dict()
        body = block_action_body(
            action,
            button_value(message, action) or "",
            user_id=user,
            channel_id=people.dm_channel,
            message_ts=people.dm_ts,
            message=message,
            response_url=self.slack.response_url(unique("dm")),
            block_id="owner",
        )
        status, _, _ = post_to_bot(self.events_url, body, secret, timestamp=timestamp)
        return status

    def submit(
        self, view: OpenedView, values: dict[str, dict[str, str]], user: str
    ) -> tuple[int, bytes]:
        """Submit a modal the bot opened, as `user` typed `values` into it."""
        body = view_submission_body(view.view, values, user_id=user, view_id=view.id)
        status, _, raw = post_to_bot(self.events_url, body, SIGNING_SECRET)
        return status, raw

    def ack(self, envelope_id: str, timeout: float = ACK_WAIT_SECONDS) -> Ack | None:
        """The bot's Socket Mode ack of `envelope_id`, once it came (None: not in time)."""
        return self.slack.socket_mode.wait_ack(envelope_id, timeout)

    @staticmethod
    def _no_signature_in_socket_mode(secret: str, timestamp: int | None) -> None:
        if secret != SIGNING_SECRET or timestamp is not None:
            raise ValueError("Socket Mode has no request signatures: test those over HTTP")

    def slash(
        self,
        text: str,
        *,
        user: str = TRIAGER,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        response_url: str | None = None,
        key: str | None = None,
    ) -> SlashReply:
        key = key or unique("cmd")
        fields: dict[str, Any] = {
            "user_id": user,
            "channel_id": CHANNEL,
            "response_url": response_url or self.slack.response_url(key),
        }
        if self.transport == SOCKET:
            self._no_signature_in_socket_mode(secret, timestamp)
            envelope = self.slack.socket_mode.slash_command(text, **fields)
            ack = self.ack(envelope)
            if ack is None:
                return SlashReply(key, 0, None, b"")
            # What Slack shows the user is the ack's payload, as HTTP's is the response body.
            raw = json.dumps(ack.payload).encode() if ack.payload is not None else b""
            return SlashReply(key, 200, ack.payload, raw)
        body = slash_command_body(text, **fields)
        status, _, raw = post_to_bot(self.events_url, body, secret, timestamp=timestamp)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return SlashReply(key, status, parsed if isinstance(parsed, dict) else None, raw)

    def answer(self, key: str, timeout: float = 30.0) -> ResponsePost:
        """The deferred answer posted to the response_url `key`."""
        found: list[ResponsePost] = wait_for(
            lambda: [p for p in self.slack.responses if p.key == key],
            timeout,
            f"an answer at response_url {key!r}",
        )
        return found[0]

    def healthz(self) -> tuple[int, Json]:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            finally:
                exc.close()


class BotFactory:
    """Builds bots (replicas) sharing one FakeSlack and the FakeAWS the test was given.

    Tests get one through the `make_bot` fixture in tests/conftest.py.
    """

    def __init__(self, aws: FakeAWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = aws
        self.tmp_path = tmp_path
        aws_environment(monkeypatch, aws.endpoint_url, tmp_path)
        self.slack = FakeSlack(BOT_TOKEN, channels=(CHANNEL,))
        self.bots: list[Bot] = []

    def __enter__(self) -> BotFactory:
        self.slack.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for bot in self.bots:
            bot.close()
        self.slack.stop()

    @property
    def db(self) -> Path:
        return self.tmp_path / "keyhunt.db"

    def settings(self, **env: str) -> Settings:
        return bot_settings(self.slack, self.tmp_path, self.db, **env)

    def __call__(
        self,
        *,
        posts_per_second: float = 50.0,
        workers: int | None = None,
        transport: str = HTTP,
        clock: Callable[[], datetime] | None = None,
        **env: str,
    ) -> Bot:
        """A replica; `workers` sizes the Bolt app's listener pools (default: the product's).
        Over Socket Mode it has the app-level token and, like a Socket Mode deployment, no
        signing secret."""
        if transport == SOCKET:
            env = {
                "SLACK_APP_TOKEN": self.slack.socket_mode.app_token,
                "SLACK_SIGNING_SECRET": "",
                **env,
            }
        bot = Bot(
            self.slack,
            self.settings(**env),
            posts_per_second=posts_per_second,
            workers=workers,
            transport=transport,
            clock=clock,
        )
        self.bots.append(bot)
        return bot

    def seed(self, *records: Json, account: str = CALLER) -> list[str]:
        """Put CloudTrail records where LookupEvents finds them; returns their event IDs."""
        self.aws.add_events(account, REGION, list(records))
        return [event_id_of(record) for record in records]


# --------------------------------------------------------------------------- a flaky endpoint


class FlakyResponseUrl:
    """A response_url that fails the first `failures` POSTs (429 with Retry-After, or 5xx),
    then forwards the body to `forward_to` (FakeSlack's response_url) and answers like it.

    FakeSlack can inject faults on Web API methods only, not on response_url posts; this
    stands in front of it for the respond() retry test.
    """

    def __init__(self, forward_to: str, failures: int = 1, status: int = 429) -> None:
        self.forward_to = forward_to
        self.failures = failures
        self.status = status
        self.attempts: list[int] = []  # the HTTP status answered, per attempt
        self._lock = threading.Lock()
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with flaky._lock:
                    fail = len(flaky.attempts) < flaky.failures
                    flaky.attempts.append(flaky.status if fail else 200)
                if fail:
                    payload = b"rate_limited" if flaky.status == 429 else b"internal_error"
                    self.send_response(flaky.status)
                    if flaky.status == 429:
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                request = urllib.request.Request(  # noqa: S310 - loopback URL from FakeSlack
                    flaky.forward_to,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    status, payload = answer.status, answer.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/response"

    def __enter__(self) -> FlakyResponseUrl:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def ok_calls(slack: FakeSlack, method: str) -> list[ApiCall]:
    return [c for c in slack.calls_to(method) if c.ok]


def statuses_met(slack: FakeSlack, method: str) -> Counter[int]:
    return Counter(c.status for c in slack.calls_to(method))
