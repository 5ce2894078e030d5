"""A local stand-in for the Slack Web API over real HTTP, plus Slack-style request signing.

``FakeSlack`` runs a standard-library HTTP server on 127.0.0.1 so the real
``slack_sdk.WebClient(token=..., base_url=fake.api_url)`` talks to it unchanged. It records
every call and every message, and it can inject the failures Slack really produces
(HTTP 429 with ``Retry-After``, 5xx, per-channel rate limiting, Block Kit limit violations)
so tests exercise the bot's error handling rather than a happy-path mock.

The signing helpers (``sign``, ``slash_command_body``, ``block_action_body``,
``post_to_bot``) go the other way: they let tests and the demo talk to the bot the way Slack
does, with bodies shaped like Slack's and a valid ``X-Slack-Signature``.

Behaviour worth knowing (it mirrors Slack, or slack_sdk's handling of it):

* slack_sdk POSTs every method, even the ones it calls with ``http_verb="GET"``
  (``conversations.info``, ``users.info``...). Methods called with ``json=`` (chat.*) arrive
  as JSON bodies with the token in ``Authorization``; the others arrive form-encoded, where
  ``blocks``/``attachments`` are JSON strings. Both shapes are accepted here.
* Application errors are HTTP 200 with ``{"ok": false, "error": ...}``, as on Slack; only
  rate limits (429) and injected server errors (5xx) use other HTTP statuses.
* A missing token answers ``not_authed`` and a wrong one ``invalid_auth`` (Slack's split).
* ``WebClient`` warns (``UserWarning``) when ``blocks`` come without ``text``; this project's
  pytest config turns warnings into errors, so tests posting blocks-only must expect it.
* Message ``ts`` values come from the wall clock, as on Slack: ``"1733486400.123456"`` is
  epoch seconds and six digits of microseconds, strictly increasing and unique (two posts in
  the same microsecond get consecutive microseconds), so ``oldest``/``latest`` filters given
  as real times work. ``FakeSlack(clock=...)`` swaps the clock.
* Message metadata (``{"event_type": str, "event_payload": object}``) is accepted by
  chat.postMessage and chat.update and checked as Slack does (``invalid_metadata_format``).
  chat.update keeps the old metadata when it sends none and drops it when it sends ``{}``.
  conversations.history / conversations.replies return a message's ``metadata`` only when
  the call passes ``include_all_metadata`` -- the app's own messages included.
* conversations.history lists top-level messages (and thread replies posted with
  ``reply_broadcast``) newest first, up to ``limit`` (default 100, at most 999) per page.
  Like Slack, a page is the messages closest to ``latest``, unless only ``oldest`` is given:
  then it is the messages closest to ``oldest`` (still newest first within the page) and the
  cursor walks forward in time. ``oldest``/``latest`` are exclusive unless ``inclusive``.
  ``has_more`` and ``response_metadata.next_cursor`` page through the rest; the last page
  has ``has_more: false`` and no ``response_metadata``.
* conversations.replies returns the thread's parent first, then its replies oldest first
  (default and maximum ``limit`` 1000). The parent opens the first page whatever
  ``oldest``/``latest`` say and counts towards ``limit``; pages reached by ``cursor`` hold
  replies only. A reply's ``ts`` gives that reply alone, and an unknown ``ts``
  ``thread_not_found``.
* ``fail_next`` refuses calls before they are processed (429, 5xx, an ``ok: false``), as
  Slack's refusals do; ``fail_next(..., after_accept=True)``, ``drop_next`` and
  ``delay_next`` model the dangerous case instead: the call is processed in full (the message
  is stored and listed in history) and then its answer is lost to a 5xx, a connection closed
  without any HTTP response, or a response held past the client's read timeout.
* Socket Mode (``apps.connections.open``, answered only for the app-level ``xapp-`` token,
  and the WebSocket it points to) is ``fake.socket_mode``, in ``keyhunt_dev.slack_socket``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from keyhunt_dev.slack_socket import SocketMode

__all__ = [
    "ApiCall",
    "Ephemeral",
    "FakeSlack",
    "Message",
    "MessageVersion",
    "ResponsePost",
    "block_action_body",
    "post_to_bot",
    "sign",
    "slash_command_body",
]

JsonDict = dict[str, Any]

# Block Kit limits Slack enforces on chat.postMessage / chat.update (answering
# ``invalid_blocks``). Enforcing them here makes our tests fail where production would.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_SECTION_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID_LENGTH = 255  # block_id and action_id
MAX_MESSAGE_TEXT = 40000  # Slack answers msg_too_long beyond this

# conversations.history and conversations.replies page sizes (Slack's defaults and maxima;
# a larger limit is cut down to the maximum, as Slack does).
HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 999
REPLIES_DEFAULT_LIMIT = 1000
REPLIES_MAX_LIMIT = 1000

_APP_ID = "A0KEYHUNT"
_BOT_ID = "B0BOT"
_TEAM_DOMAIN = "keyhunt-test"

# Form fields slack_sdk serialises to JSON strings when it sends a form body.
_JSON_FORM_FIELDS = ("blocks", "attachments", "metadata", "view")


# --------------------------------------------------------------------------------------
# Recorded state
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ApiCall:
    """One Web API request as the fake saw it, and what it answered.

    ``ok`` and ``response`` are the method's own answer: ``ok`` is true when Slack accepted
    the call and did what it asks (a message stored...). ``status`` and ``error`` are what the
    client was actually sent. They differ only when an injected fault lost the answer of an
    accepted call (``lost`` says how): then ``ok`` may be true while ``status`` is 500 (or 0,
    no HTTP response at all), and ``response`` still carries the ``ts`` the client never saw.
    """

    method: str
    args: JsonDict  # body + query params, token removed, blocks/metadata JSON-decoded
    headers: dict[str, str]
    status: int = 200  # HTTP status sent; 0 when the connection was closed without one
    at: float = field(default_factory=time.monotonic)
    ok: bool = False
    error: str | None = None  # the error sent to the client, if any
    response: JsonDict = field(default_factory=dict)
    missing_text: bool = False  # blocks/attachments without top-level text (accessibility)
    # How the answer of a processed call was lost: "server_error" (a 5xx was sent instead),
    # "closed" (the connection was closed without a response), "delayed" (the response was
    # held ``held`` seconds: a client with a shorter read timeout gave up). None: not lost.
    lost: str | None = None
    held: float = 0.0

    @property
    def accepted(self) -> bool:
        """Slack processed the call (whatever the client heard): same as ``ok``."""
        return self.ok


@dataclass(frozen=True, slots=True)
class MessageVersion:
    text: str
    blocks: list[JsonDict]
    at: float
    metadata: JsonDict | None = None


@dataclass(slots=True)
class Message:
    """A message as stored in a channel. ``history[-1]`` is always the current version."""

    channel: str
    ts: str
    text: str
    blocks: list[JsonDict]
    thread_ts: str | None = None
    user: str = "U0BOT"
    updated_count: int = 0
    history: list[MessageVersion] = field(default_factory=list)
    metadata: JsonDict | None = None  # {"event_type": ..., "event_payload": {...}}
    reply_broadcast: bool = False  # a thread reply also shown in the channel

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def as_dict(self, *, team_id: str = "T0001", include_metadata: bool = True) -> JsonDict:
        """The message as Slack renders it in API responses and interactivity payloads.

        ``include_metadata=False`` leaves out ``metadata``, as conversations.history and
        conversations.replies do unless called with ``include_all_metadata``.
        """
        message: JsonDict = {
            "type": "message",
            "user": self.user,
            "bot_id": _BOT_ID,
            "app_id": _APP_ID,
            "text": self.text,
            "ts": self.ts,
            "team": team_id,
        }
        if self.reply_broadcast and self.is_reply:
            message["subtype"] = "thread_broadcast"
        if self.blocks:
            message["blocks"] = self.blocks
        if self.thread_ts is not None:
            message["thread_ts"] = self.thread_ts
        if include_metadata and self.metadata is not None:
            message["metadata"] = self.metadata
        return message


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """A chat.postEphemeral message: seen by one user, never part of channel history."""

    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[JsonDict]
    thread_ts: str | None = None


@dataclass(frozen=True, slots=True)
class OpenedView:
    """A modal the bot opened with views.open: what a person would fill in and submit."""

    id: str
    trigger_id: str
    view: JsonDict

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id") or "")


@dataclass(frozen=True, slots=True)
class ResponsePost:
    """One POST the bot made to a ``response_url``."""

    key: str
    body: JsonDict
    headers: dict[str, str]
    at: float


@dataclass(slots=True)
class _Fault:
    status: int
    remaining: int
    retry_after: int
    error: str | None
    # "refuse": answered instead of processing. The others process the call, then lose its
    # answer: "server_error" (send ``status``), "closed" (no response), "delayed" (hold it).
    # "pass" answers as usual: it only lets calls by before the next fault in the queue.
    kind: str = "refuse"
    delay: float = 0.0


class _SlackError(Exception):
    """An ``{"ok": false}`` answer; raised by method handlers, turned into a response."""

    def __init__(
        self, error: str, status: int = 200, *, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.retry_after = retry_after  # seconds, sent as the Retry-After header on 429
        self.extra = extra  # more top-level response fields, e.g. "errors"


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    close: bool = False  # close the connection without sending anything
    hold: float = 0.0  # seconds to wait before sending (or closing)


# --------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------


class FakeSlack:
    """Slack Web API stand-in on 127.0.0.1. Construct (no I/O), then ``start()`` or ``with``."""

    def __init__(
        self,
        bot_token: str = "xoxb-test-token",  # noqa: S107 - the fake's test token, not a secret
        *,
        team_id: str = "T0001",
        bot_user_id: str = "U0BOT",
        channels: Iterable[str] = ("C0ALERTS",),
        clock: Callable[[], float] | None = None,
        names: Mapping[str, str] | None = None,
        app_token: str | None = None,
        emails: Mapping[str, str] | None = None,
    ) -> None:
        """``clock`` (epoch seconds, ``time.time`` by default) is where message ts come from;
        ``names`` gives channels and users a name (``conversations.info``, ``users.info``)
        other than their ID in lower case; ``app_token`` is the app-level token
        apps.connections.open accepts (Socket Mode, ``self.socket_mode``); ``emails`` maps
        e-mail addresses to the user IDs users.lookupByEmail finds (mutable, like channels)."""
        # Imported here: slack_socket builds its payloads with this module's body builders.
        from keyhunt_dev.slack_socket import APP_TOKEN, SocketMode

        self.socket_mode: SocketMode = SocketMode(app_token or APP_TOKEN)
        self.names = dict(names or {})
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.channels: set[str] = set(channels)  # mutable: tests may add channels
        self.emails: dict[str, str] = {k.lower(): v for k, v in (emails or {}).items()}
        self.dms: dict[str, str] = {}  # user ID -> the DM channel conversations.open gave
        self.views: list[OpenedView] = []  # modals opened with views.open, oldest first

        self.calls: list[ApiCall] = []
        self.messages: dict[str, dict[str, Message]] = {}
        self.ephemerals: list[Ephemeral] = []
        self.responses: list[ResponsePost] = []

        # One lock for all state: handler threads mutate, the test thread reads.
        self._lock = threading.RLock()
        self._faults: dict[str, deque[_Fault]] = {}
        self._rate_per_second: float | None = None
        self._rate_burst = 1
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, refilled_at)
        self._clock = clock
        self._last_ts_micros = 0  # never reset, so ts stays unique across reset()
        self._stopping = threading.Event()  # wakes handlers holding a response on stop()

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self._handlers: dict[str, Callable[[JsonDict], JsonDict]] = {
            "apps.connections.open": self.socket_mode.open_connection,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.history": self._conversations_history,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.open": self._conversations_open,
            "views.open": self._views_open,
        }

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        # A short poll interval keeps stop() (which waits for the next poll) fast in tests.
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-slack", kwargs={"poll_interval": 0.01}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        self._stopping.set()
        self.socket_mode.stop()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """The Web API root in slack_sdk's ``base_url`` form (trailing slash matters)."""
        return f"{self.base_url}/api/"

    def response_url(self, key: str = "default") -> str:
        """A URL on this server that records JSON POSTs (as a slash command's response_url)."""
        return f"{self.base_url}/response/{urllib.parse.quote(key, safe='')}"

    # ---- queries ---------------------------------------------------------------------

    def channel_messages(self, channel: str, *, top_level_only: bool = False) -> list[Message]:
        """Messages in ``channel`` oldest first; ``top_level_only`` drops thread replies."""
        with self._lock:
            found = sorted(self.messages.get(channel, {}).values(), key=_ts_key)
        return [m for m in found if not (top_level_only and m.is_reply)]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Parent first, then replies oldest first, as conversations.replies returns them."""
        return [
            m
            for m in self.channel_messages(channel)
            if m.ts == thread_ts or m.thread_ts == thread_ts
        ]

    def calls_to(self, method: str) -> list[ApiCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # ---- faults ----------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        count: int = 1,
        retry_after: int = 1,
        error: str | None = None,
        after_accept: bool = False,
    ) -> None:
        """Answer the next ``count`` calls to ``method`` with a failure.

        By default the call is refused before anything happens, as Slack's refusals are: 429
        carries ``Retry-After`` (whole seconds, as slack_sdk ``int()``s it) and
        ``ratelimited``; 5xx carries a JSON error body. ``status=200`` with ``error`` gives an
        ordinary ``{"ok": false, "error": error}`` answer.

        ``after_accept=True`` (5xx statuses only) models a lost answer instead: the call is
        processed in full -- a posted message is stored and listed by conversations.history --
        and only then is the 5xx (with its JSON error body) sent in place of the real answer.
        Its ``ApiCall`` has ``ok=True`` (if the call itself succeeded), ``status`` 500/503,
        ``lost="server_error"`` and the real answer (``ts`` included) in ``response``. A
        client retrying 5xx (slack_sdk's ``ServerErrorRetryHandler``) posts a second copy.

        Queued faults (these, ``drop_next``'s and ``delay_next``'s) apply in order.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        if after_accept and status < 500:
            raise ValueError("after_accept needs a 5xx status: Slack's 429s and ok:false refuse")
        kind = "server_error" if after_accept else "refuse"
        self._queue_fault(
            method, _Fault(status, count, retry_after=retry_after, error=error, kind=kind)
        )

    def drop_next(self, method: str, *, count: int = 1, skip: int = 0) -> None:
        """Process the next ``count`` calls to ``method``, then close without answering.
        With ``skip``, the ``skip`` calls before them are answered as usual.

        The call takes full effect (a message is stored and listed in history), then the
        connection is closed without any HTTP response, as when a proxy or the network drops
        it. slack_sdk raises ``http.client.RemoteDisconnected`` (a ``ConnectionResetError``),
        which its ``ConnectionErrorRetryHandler`` retries -- posting a second copy. The
        ``ApiCall`` has ``ok=True``, ``status=0`` and ``lost="closed"``.
        """
        if count < 1 or skip < 0:
            raise ValueError("count must be >= 1 and skip >= 0")
        if skip:
            self._queue_fault(method, _Fault(200, skip, retry_after=0, error=None, kind="pass"))
        self._queue_fault(method, _Fault(0, count, retry_after=0, error=None, kind="closed"))

    def delay_next(self, method: str, seconds: float, *, count: int = 1) -> None:
        """Process the next ``count`` calls to ``method``, then hold the answer ``seconds``.

        The call takes full effect at once; its answer is sent only ``seconds`` later (or
        dropped if the fake stops first). A client whose read timeout is shorter gives up:
        slack_sdk's ``WebClient(timeout=...)`` raises ``TimeoutError``, which its built-in
        retry handlers do not retry. The ``ApiCall`` has ``ok=True``, ``lost="delayed"`` and
        ``held=seconds``.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        fault = _Fault(200, count, retry_after=0, error=None, kind="delayed", delay=seconds)
        self._queue_fault(method, fault)

    def _queue_fault(self, method: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault(method, deque()).append(fault)

    def enforce_rate_limit(
        self, per_channel_per_second: float | None = 1.0, *, burst: int = 1
    ) -> None:
        """Rate-limit chat.postMessage per channel like Slack (~1/s); ``None`` turns it off.

        A token bucket of ``burst`` messages refilled at ``per_channel_per_second``; with the
        default burst of 1 a second post to a channel within 1/rate seconds gets 429.
        """
        with self._lock:
            self._rate_per_second = per_channel_per_second
            self._rate_burst = max(1, burst)
            self._buckets.clear()

    def reset(self) -> None:
        """Forget calls, messages, ephemerals, responses, faults and rate limiting."""
        with self._lock:
            self.calls.clear()
            self.messages.clear()
            self.ephemerals.clear()
            self.responses.clear()
            self.views.clear()
            self._faults.clear()
            self._rate_per_second = None
            self._buckets.clear()

    # ---- request handling (called from server threads) -------------------------------

    def _handle_api(self, method: str, headers: dict[str, str], args: JsonDict) -> _Reply:
        # slack_sdk sends the token as a Bearer header; form callers may send a token field.
        form_token = args.pop("token", None)
        token = _bearer_token(headers) or _optional_str(form_token)
        call = ApiCall(method=method, args=args, headers=headers)
        reply_headers = {"Content-Type": "application/json; charset=utf-8"}
        with self._lock:
            self.calls.append(call)
            fault = self._next_fault(method)
            try:
                if fault is not None and fault.kind == "refuse":
                    _raise_refusal(fault)
                payload = self._dispatch(call, token)
            except _SlackError as exc:
                call.status, call.error = exc.status, exc.error
                payload = {"ok": False, "error": exc.error, **exc.extra}
                if exc.retry_after is not None:
                    reply_headers["Retry-After"] = str(exc.retry_after)
            call.ok = bool(payload.get("ok"))
            call.response = payload
            if fault is None or fault.kind in ("refuse", "pass"):
                return _Reply(call.status, json.dumps(payload).encode(), reply_headers)
            return self._lose_answer(call, fault, payload, reply_headers)

    def _lose_answer(
        self, call: ApiCall, fault: _Fault, payload: JsonDict, headers: dict[str, str]
    ) -> _Reply:
        """The reply for a processed call whose answer an injected fault loses."""
        if fault.kind == "closed":
            call.status, call.error, call.lost = 0, None, "closed"
            return _Reply(0, b"", {}, close=True)
        if fault.kind == "delayed":
            call.lost, call.held = "delayed", fault.delay
            return _Reply(call.status, json.dumps(payload).encode(), headers, hold=fault.delay)
        error = fault.error or _server_error_name(fault.status)
        call.status, call.error, call.lost = fault.status, error, "server_error"
        body = json.dumps({"ok": False, "error": error}).encode()
        return _Reply(fault.status, body, {"Content-Type": "application/json; charset=utf-8"})

    def _dispatch(self, call: ApiCall, token: str | None) -> JsonDict:
        # Order matters: injected refusals hit whatever the request (see _handle_api), like an
        # outage would; unknown_method wins over auth, as on Slack.
        handler = self._handlers.get(call.method)
        if handler is None:
            raise _SlackError("unknown_method")
        if not token:
            raise _SlackError("not_authed")
        if call.method == "apps.connections.open":  # the one method wanting the app token
            error = self.socket_mode.token_error(token)
            if error is not None:
                raise _SlackError(error)
        elif not hmac.compare_digest(token, self.bot_token):
            raise _SlackError("invalid_auth")
        if call.method == "chat.postMessage":
            self._check_rate_limit(str(call.args.get("channel", "")))
        result = handler(call.args)
        call.missing_text = bool(result.pop("_missing_text", False))
        return result

    def _next_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    def _check_rate_limit(self, channel: str) -> None:
        rate = self._rate_per_second
        if rate is None or rate <= 0:
            return
        now = time.monotonic()
        tokens, refilled_at = self._buckets.get(channel, (float(self._rate_burst), now))
        tokens = min(float(self._rate_burst), tokens + (now - refilled_at) * rate)
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            raise _SlackError("ratelimited", 429, retry_after=1)
        self._buckets[channel] = (tokens - 1.0, now)

    def _handle_response_url(self, key: str, headers: dict[str, str], raw: bytes) -> _Reply:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _Reply(400, b"invalid_payload", {"Content-Type": "text/plain"})
        if not isinstance(body, dict):
            return _Reply(400, b"invalid_payload", {"Content-Type": "text/plain"})
        with self._lock:
            self.responses.append(ResponsePost(key, body, headers, time.monotonic()))
        # Slack answers response_url posts with a bare "ok", not JSON.
        return _Reply(200, b"ok", {"Content-Type": "text/plain; charset=utf-8"})

    # ---- Web API methods (called with the lock held) ---------------------------------

    def _auth_test(self, args: JsonDict) -> JsonDict:
        return {
            "ok": True,
            "url": f"https://{_TEAM_DOMAIN}.slack.com/",
            "team": _TEAM_DOMAIN,
            "user": "keyhunt",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": _BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: JsonDict) -> JsonDict:
        channel = self._require_channel(args)
        text, blocks, missing_text = _message_content(args)
        metadata = _validate_metadata(args.get("metadata"))
        thread_ts = _optional_str(args.get("thread_ts"))
        broadcast = thread_ts is not None and _truthy(args.get("reply_broadcast"))
        ts = self._next_ts()
        message = Message(
            channel,
            ts,
            text,
            blocks,
            thread_ts,
            user=self.bot_user_id,
            metadata=metadata or None,
            reply_broadcast=broadcast,
        )
        message.history.append(MessageVersion(text, blocks, time.monotonic(), message.metadata))
        self.messages.setdefault(channel, {})[ts] = message
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "message": self._render(message, include_metadata=True),
            "_missing_text": missing_text,
        }

    def _chat_update(self, args: JsonDict) -> JsonDict:
        channel = self._require_channel(args)
        message = self.messages.get(channel, {}).get(_optional_str(args.get("ts")) or "")
        if message is None:
            raise _SlackError("message_not_found")
        text, blocks, missing_text = _message_content(args)
        metadata = _validate_metadata(args.get("metadata"))
        # Slack keeps the previous blocks when an update omits them.
        if "blocks" in args:
            message.blocks = blocks
        # Slack keeps the previous metadata when an update omits it; {} removes it.
        if metadata is not None:
            message.metadata = metadata or None
        message.text = text
        message.updated_count += 1
        message.history.append(
            MessageVersion(message.text, message.blocks, time.monotonic(), message.metadata)
        )
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._render(message, include_metadata=True),
            "_missing_text": missing_text,
        }

    def _chat_post_ephemeral(self, args: JsonDict) -> JsonDict:
        channel = self._require_channel(args)
        user = _optional_str(args.get("user"))
        if not user:
            raise _SlackError("user_not_found")
        text, blocks, missing_text = _message_content(args)
        ts = self._next_ts()
        thread_ts = _optional_str(args.get("thread_ts"))
        self.ephemerals.append(Ephemeral(channel, user, ts, text, blocks, thread_ts))
        return {"ok": True, "message_ts": ts, "_missing_text": missing_text}

    def _conversations_info(self, args: JsonDict) -> JsonDict:
        channel = self._require_channel(args)
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": self.names.get(channel, channel.lower()),
                "name_normalized": self.names.get(channel, channel.lower()),
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
                "created": 1_700_000_000,
                "context_team_id": self.team_id,
            },
        }

    def _conversations_members(self, args: JsonDict) -> JsonDict:
        self._require_channel(args)
        return {
            "ok": True,
            "members": [self.bot_user_id, "U0ALICE"],
            "response_metadata": {"next_cursor": ""},
        }

    def _conversations_history(self, args: JsonDict) -> JsonDict:
        channel = self._require_channel(args)
        window = _Window.from_args(args)
        limit = _limit(args, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)
        # Top-level messages, plus thread replies also sent to the channel.
        listed = [m for m in self.channel_messages(channel) if not m.is_reply or m.reply_broadcast]
        listed = [m for m in listed if window.holds(m.ts)]
        # A page is the messages closest to `latest`, unless only `oldest` was given: then
        # those closest to `oldest`, and the cursor walks forward. Newest first either way.
        forward = window.oldest is not None and window.latest is None
        cursor = _decode_cursor(args.get("cursor"), "newer" if forward else "older")
        if not forward:
            listed.reverse()  # walk from `latest` back in time
        if cursor is not None:  # the ts of the first message the previous page left out
            listed = [
                m for m in listed if (_ts_key(m) >= cursor if forward else _ts_key(m) <= cursor)
            ]
        page, rest = listed[:limit], listed[limit:]
        page.sort(key=_ts_key, reverse=True)
        include_metadata = _truthy(args.get("include_all_metadata"))
        threads = self._threads(channel)
        rendered = [
            self._render(m, include_metadata=include_metadata, threads=threads) for m in page
        ]
        answer: JsonDict = {
            "ok": True,
            "messages": rendered,
            "has_more": bool(rest),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        for name in ("oldest", "latest"):
            if args.get(name) not in (None, ""):
                answer[name] = str(args[name])
        if rest:
            direction = "newer" if forward else "older"
            answer["response_metadata"] = {"next_cursor": _encode_cursor(direction, rest[0].ts)}
        return answer

    def _conversations_replies(self, args: JsonDict) -> JsonDict:
        channel = self._require_channel(args)
        ts = _optional_str(args.get("ts")) or ""
        found = self.messages.get(channel, {}).get(ts)
        if found is None:
            raise _SlackError("thread_not_found")
        window = _Window.from_args(args)
        limit = _limit(args, REPLIES_DEFAULT_LIMIT, REPLIES_MAX_LIMIT)
        cursor = _decode_cursor(args.get("cursor"), "replies")
        if found.is_reply:
            # Slack answers a reply's ts with that reply alone, not its whole thread.
            parent, replies = found, []
        else:
            parent, replies = found, self._threads(channel).get(found.ts, [])
        replies = [m for m in replies if window.holds(m.ts)]
        if cursor is None:
            # The parent opens the first page whatever the window, and counts towards limit.
            page, rest = [parent, *replies[: limit - 1]], replies[max(limit - 1, 0) :]
        else:
            replies = [m for m in replies if _ts_key(m) >= cursor]
            page, rest = replies[:limit], replies[limit:]
        include_metadata = _truthy(args.get("include_all_metadata"))
        threads = self._threads(channel)
        rendered = [
            self._render(m, include_metadata=include_metadata, threads=threads) for m in page
        ]
        answer: JsonDict = {"ok": True, "messages": rendered, "has_more": bool(rest)}
        if rest:
            answer["response_metadata"] = {"next_cursor": _encode_cursor("replies", rest[0].ts)}
        return answer

    def _users_info(self, args: JsonDict) -> JsonDict:
        user_id = _optional_str(args.get("user"))
        if not user_id:
            raise _SlackError("user_not_found")
        name = self.names.get(user_id, user_id.lower())
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "name": name,
                "real_name": f"Test User {user_id}",
                "deleted": False,
                "is_bot": user_id == self.bot_user_id,
                "is_admin": False,
                "tz": "Etc/UTC",
                "profile": {
                    "real_name": f"Test User {user_id}",
                    "display_name": name,
                    "email": f"{name}@example.com",
                },
            },
        }

    def _users_lookup_by_email(self, args: JsonDict) -> JsonDict:
        email = str(args.get("email") or "").strip().lower()
        if not email:
            raise _SlackError("invalid_email")
        user_id = self.emails.get(email)
        if user_id is None:
            raise _SlackError("users_not_found")
        answer = self._users_info({"user": user_id})
        answer["user"]["profile"]["email"] = email
        return answer

    def _conversations_open(self, args: JsonDict) -> JsonDict:
        """A DM with one user (group DMs are not needed): the same channel every time."""
        users = [u for u in str(args.get("users") or "").split(",") if u.strip()]
        if len(users) != 1:
            raise _SlackError("not_enough_users" if not users else "too_many_users")
        user = users[0].strip()
        if user == self.bot_user_id or not re.match(r"^[UW][A-Z0-9]{1,20}$", user):
            raise _SlackError("user_not_found")
        channel = self.dms.setdefault(user, "D" + user[1:])
        self.channels.add(channel)
        return {"ok": True, "channel": {"id": channel, "is_im": True, "user": user}}

    def _views_open(self, args: JsonDict) -> JsonDict:
        trigger = _optional_str(args.get("trigger_id"))
        view = args.get("view")
        if not trigger:
            raise _SlackError("invalid_trigger_id")
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise _SlackError("invalid_arguments")
        problems = list(_block_problems(list(view.get("blocks") or [])))
        if problems:
            raise _SlackError("invalid_blocks", errors=problems)
        view_id = f"V{len(self.views) + 1:08d}"
        self.views.append(OpenedView(view_id, trigger, view))
        return {"ok": True, "view": {"id": view_id, **view}}

    # ---- helpers ---------------------------------------------------------------------

    def _require_channel(self, args: JsonDict) -> str:
        channel = _optional_str(args.get("channel"))
        if not channel or channel not in self.channels:
            raise _SlackError("channel_not_found")
        return channel

    def _next_ts(self) -> str:
        """Now, as Slack writes it: "seconds.micros", unique and strictly increasing."""
        now = time.time_ns() // 1_000 if self._clock is None else int(self._clock() * 1e6)
        micros = max(now, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _render(
        self,
        message: Message,
        *,
        include_metadata: bool,
        threads: dict[str, list[Message]] | None = None,
    ) -> JsonDict:
        """``message`` as conversations.history/replies list it, thread fields included.

        ``threads`` (parent ts -> replies, from ``_threads``) saves a scan per message.
        """
        if threads is None:
            threads = self._threads(message.channel)
        rendered = message.as_dict(team_id=self.team_id, include_metadata=include_metadata)
        if message.is_reply:
            parent = self.messages.get(message.channel, {}).get(message.thread_ts or "")
            if parent is not None:
                rendered["parent_user_id"] = parent.user
                if message.reply_broadcast:
                    rendered["root"] = self._render(
                        parent, include_metadata=include_metadata, threads=threads
                    )
            return rendered
        replies = threads.get(message.ts)
        if replies:
            users = sorted({m.user for m in replies})
            rendered.update(
                thread_ts=message.ts,
                reply_count=len(replies),
                reply_users_count=len(users),
                latest_reply=replies[-1].ts,
                reply_users=users,
                is_locked=False,
                subscribed=False,
            )
        return rendered

    def _threads(self, channel: str) -> dict[str, list[Message]]:
        """Parent ts -> its replies, oldest first."""
        threads: dict[str, list[Message]] = {}
        for m in self.channel_messages(channel):
            if m.is_reply and m.thread_ts is not None:
                threads.setdefault(m.thread_ts, []).append(m)
        return threads


# --------------------------------------------------------------------------------------
# Message content and Block Kit validation
# --------------------------------------------------------------------------------------


def _message_content(args: JsonDict) -> tuple[str, list[JsonDict], bool]:
    """(text, blocks, missing_text) for a message-posting call, or raise its Slack error."""
    text = args.get("text")
    text = "" if text is None else str(text)
    if len(text) > MAX_MESSAGE_TEXT:
        raise _SlackError("msg_too_long")
    blocks = _validate_blocks(args.get("blocks"))
    has_attachments = bool(args.get("attachments"))
    if not text.strip() and not blocks and not has_attachments:
        raise _SlackError("no_text")
    return text, blocks, not text.strip()


def _validate_blocks(raw: Any) -> list[JsonDict]:
    if raw is None:
        return []
    if isinstance(raw, str):  # form bodies (and callers passing a str) carry JSON text
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _SlackError("invalid_blocks_format") from None
    if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
        raise _SlackError("invalid_blocks_format")
    blocks = cast(list[JsonDict], raw)
    problems = list(_block_problems(blocks))
    if problems:
        # Slack lists problems under "errors" and response_metadata.messages.
        raise _SlackError(
            "invalid_blocks",
            errors=problems,
            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
        )
    return blocks


def _block_problems(blocks: list[JsonDict]) -> Iterator[str]:
    if len(blocks) > MAX_BLOCKS:
        yield f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block.get("type"), str):
            yield f"missing required field: type [json-pointer:{where}]"
        yield from _too_long(block.get("block_id"), MAX_ID_LENGTH, f"{where}/block_id")
        yield from _type_specific_problems(block, where)


def _type_specific_problems(block: JsonDict, where: str) -> Iterator[str]:
    kind = block.get("type")
    if kind == "section":
        yield from _too_long(_text_of(block.get("text")), MAX_SECTION_TEXT, f"{where}/text/text")
        fields = block.get("fields") or []
        if len(fields) > MAX_SECTION_FIELDS:
            yield f"no more than {MAX_SECTION_FIELDS} items allowed [json-pointer:{where}/fields]"
        for j, item in enumerate(fields):
            yield from _too_long(_text_of(item), MAX_SECTION_FIELD_TEXT, f"{where}/fields/{j}/text")
        accessory = block.get("accessory")
        if isinstance(accessory, dict):
            yield from _element_problems(accessory, f"{where}/accessory")
    elif kind == "header":
        yield from _too_long(_text_of(block.get("text")), MAX_HEADER_TEXT, f"{where}/text/text")
    elif kind in ("actions", "context"):
        elements = block.get("elements") or []
        limit = MAX_ACTIONS_ELEMENTS if kind == "actions" else MAX_CONTEXT_ELEMENTS
        if len(elements) > limit:
            yield f"no more than {limit} items allowed [json-pointer:{where}/elements]"
        for j, element in enumerate(elements):
            if isinstance(element, dict):
                yield from _element_problems(element, f"{where}/elements/{j}")


def _element_problems(element: JsonDict, where: str) -> Iterator[str]:
    yield from _too_long(element.get("action_id"), MAX_ID_LENGTH, f"{where}/action_id")
    if element.get("type") == "button":
        yield from _too_long(_text_of(element.get("text")), MAX_BUTTON_TEXT, f"{where}/text/text")
        yield from _too_long(element.get("value"), MAX_BUTTON_VALUE, f"{where}/value")


def _too_long(value: Any, limit: int, pointer: str) -> Iterator[str]:
    if isinstance(value, str) and len(value) > limit:
        yield f"must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _text_of(obj: Any) -> str | None:
    """The string inside a Block Kit text object ({"type": ..., "text": ...})."""
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return cast(str, obj["text"])
    return None


# --------------------------------------------------------------------------------------
# Message metadata, time windows and cursors
# --------------------------------------------------------------------------------------


def _validate_metadata(raw: Any) -> JsonDict | None:
    """The metadata to store: None when absent, ``{}`` when sent empty (chat.update: remove).

    Slack wants a JSON object with a string ``event_type`` and an object ``event_payload``
    and answers ``invalid_metadata_format`` otherwise (form bodies carry it as JSON text;
    text that is not JSON is left as a string by ``_parse_args`` and lands here).
    """
    if raw is None or raw == "":
        return None
    if not isinstance(raw, dict):
        raise _SlackError("invalid_metadata_format")
    if not raw:
        return {}
    event_type, payload = raw.get("event_type"), raw.get("event_payload")
    if not isinstance(event_type, str) or not event_type.strip() or not isinstance(payload, dict):
        raise _SlackError("invalid_metadata_format")
    return {"event_type": event_type, "event_payload": payload}


def _truthy(value: Any) -> bool:
    """Slack's booleans: true/1 (slack_sdk sends "1"), anything else false."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true")


def _parse_ts(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(value) from None
    if not parsed.is_finite():
        raise ValueError(value)
    return parsed


def _ts_key(message: Message) -> Decimal:
    """A message's ts as a number, for ordering (strings only sort while widths agree)."""
    return Decimal(message.ts)


@dataclass(frozen=True, slots=True)
class _Window:
    """The oldest/latest/inclusive time range of a conversations.* call."""

    oldest: Decimal | None
    latest: Decimal | None
    inclusive: bool

    @classmethod
    def from_args(cls, args: JsonDict) -> _Window:
        try:
            oldest = _parse_ts(args.get("oldest"))
        except ValueError:
            raise _SlackError("invalid_ts_oldest") from None
        try:
            latest = _parse_ts(args.get("latest"))
        except ValueError:
            raise _SlackError("invalid_ts_latest") from None
        return cls(oldest, latest, _truthy(args.get("inclusive")))

    def holds(self, ts: str) -> bool:
        value = Decimal(ts)
        if self.oldest is not None and (
            value < self.oldest or (value == self.oldest and not self.inclusive)
        ):
            return False
        return self.latest is None or not (
            value > self.latest or (value == self.latest and not self.inclusive)
        )


def _limit(args: JsonDict, default: int, maximum: int) -> int:
    raw = args.get("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(str(raw).strip())
    except ValueError:
        raise _SlackError("invalid_arguments") from None
    return default if limit <= 0 else min(limit, maximum)


# Opaque to callers, like Slack's (whose history cursors are base64 "next_ts:<digits>"): the
# ts of the next message to list, and which way the listing runs.
_CURSOR_PREFIXES = {"older": "next_ts", "newer": "next_ts_fwd", "replies": "next_reply_ts"}


def _encode_cursor(direction: str, ts: str) -> str:
    return base64.b64encode(f"{_CURSOR_PREFIXES[direction]}:{ts}".encode()).decode()


def _decode_cursor(raw: Any, direction: str) -> Decimal | None:
    """The position ``raw`` (a next_cursor this fake gave out) points at; invalid_cursor
    for anything else, including a cursor from another method or direction."""
    if raw is None or raw == "":
        return None
    try:
        prefix, _, ts = base64.b64decode(str(raw), validate=True).decode().partition(":")
        position = _parse_ts(ts)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _SlackError("invalid_cursor") from None
    if prefix != _CURSOR_PREFIXES[direction] or position is None:
        raise _SlackError("invalid_cursor")
    return position


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _raise_refusal(fault: _Fault) -> None:
    if fault.status == 429:
        raise _SlackError("ratelimited", 429, retry_after=fault.retry_after)
    if fault.status >= 500:
        raise _SlackError(fault.error or _server_error_name(fault.status), fault.status)
    raise _SlackError(fault.error or "fatal_error", fault.status)


def _server_error_name(status: int) -> str:
    return {500: "internal_error", 503: "service_unavailable"}.get(status, "fatal_error")


def _bearer_token(headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


# --------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the test process alive
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; ApiCall records carry what matters

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        raw = self._read_body()
        headers = dict(self.headers.items())
        fake = self.server.fake
        if url.path.startswith("/api/"):
            args = _parse_args(url.query, raw, self.headers.get("Content-Type", ""))
            reply = fake._handle_api(url.path[len("/api/") :], headers, args)
        elif url.path.startswith("/response/") and self.command == "POST":
            key = urllib.parse.unquote(url.path[len("/response/") :])
            reply = fake._handle_response_url(key, headers, raw)
        else:
            reply = _Reply(404, b"not found", {"Content-Type": "text/plain"})
        self._send(reply)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: _Reply) -> None:
        # Hold the answer (outside the fake's lock); stop() cuts the wait short.
        if reply.hold > 0 and self.server.fake._stopping.wait(reply.hold):
            reply = _Reply(0, b"", {}, close=True)
        if reply.close:
            # Nothing at all goes back: the client sees the connection end without a response.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (its read timeout)


def _parse_args(query: str, raw: bytes, content_type: str) -> JsonDict:
    """Merge query-string and body params; JSON and form bodies both accepted."""
    args: JsonDict = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None  # answered like an empty request: the handler reports what is missing
        if isinstance(body, dict):
            args.update(body)
    elif raw:
        args.update(urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    for name in _JSON_FORM_FIELDS:
        if isinstance(args.get(name), str):
            # Malformed JSON is left as sent: _validate_blocks answers invalid_blocks_format,
            # _validate_metadata invalid_metadata_format.
            with contextlib.suppress(ValueError):
                args[name] = json.loads(args[name])
    return args


# --------------------------------------------------------------------------------------
# Talking to the bot like Slack does
# --------------------------------------------------------------------------------------


def sign(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature headers for ``body`` (timestamp defaults to now)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slash_command_body(
    text: str,
    *,
    command: str = "/keyhunt",
    user_id: str = "U0ALICE",
    channel_id: str = "C0ALERTS",
    response_url: str,
    team_id: str = "T0001",
    trigger_id: str = "123.456",
) -> bytes:
    """A slash command request body, form-encoded with the fields Slack sends."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": _TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_id.lower(),
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": _APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urllib.parse.urlencode(fields).encode()


def block_action_body(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0ALERTS",
    message_ts: str,
    message: JsonDict | None = None,
    response_url: str,
    block_id: str = "triage",
    team_id: str = "T0001",
    selected_option: JsonDict | None = None,
) -> bytes:
    """A button click as Slack posts it: form body ``payload=<block_actions JSON>``; with
    ``selected_option``, the choice of an overflow menu (``value`` is then unused).

    Pass ``message=fake.messages[channel][ts].as_dict()`` to include the real message; the
    button's text is then taken from its blocks, as Slack would echo it.
    """
    if message is None:
        message = {"type": "message", "ts": message_ts, "text": "", "bot_id": _BOT_ID}
    payload: JsonDict = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": _APP_ID,
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": "123.456",
        "team": {"id": team_id, "domain": _TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_id.lower()},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [_action(message, action_id, block_id, value, selected_option)],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def _action(
    message: JsonDict,
    action_id: str,
    block_id: str,
    value: str,
    selected_option: JsonDict | None,
) -> JsonDict:
    if selected_option is not None:
        return {
            "action_id": action_id,
            "block_id": block_id,
            "selected_option": selected_option,
            "type": "overflow",
            "action_ts": f"{time.time():.6f}",
        }
    return {
        "action_id": action_id,
        "block_id": block_id,
        "text": _button_text(message, action_id),
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }


def view_submission_body(
    view: JsonDict,
    values: Mapping[str, Mapping[str, str]],
    *,
    user_id: str = "U0ALICE",
    view_id: str = "V00000001",
    team_id: str = "T0001",
) -> bytes:
    """A modal's submission as Slack posts it: ``values`` is block_id -> action_id -> the
    text typed into that plain_text_input."""
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text} for action, text in inputs.items()
        }
        for block, inputs in values.items()
    }
    payload: JsonDict = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": _TEAM_DOMAIN},
        "user": _user(user_id, team_id),
        "api_app_id": _APP_ID,
        "token": "deprecated-verification-token",
        "trigger_id": "123.789",
        "view": {
            **view,
            "id": view_id,
            "team_id": team_id,
            "app_id": _APP_ID,
            "state": {"values": state},
        },
        "response_urls": [],
        "is_enterprise_install": False,
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def _user(user_id: str, team_id: str) -> JsonDict:
    """The `user` of an interaction payload, as Slack sends it."""
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def _button_text(message: JsonDict, action_id: str) -> JsonDict:
    for block in message.get("blocks") or []:
        candidates = [*(block.get("elements") or []), block.get("accessory")]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                text = element.get("text")
                if isinstance(text, dict):
                    return text
    return {"type": "plain_text", "text": action_id, "emoji": True}


def post_to_bot(
    url: str,
    body: bytes,
    signing_secret: str,
    *,
    timestamp: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """POST a signed body to the bot; returns (status, headers, body), even for 4xx/5xx."""
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    headers = {"Content-Type": content_type, **sign(signing_secret, body, timestamp)}
    # S310 below: the scheme is checked above, so urllib cannot be steered to file:// etc.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, dict(exc.headers.items()), exc.read()
        finally:
            exc.close()
