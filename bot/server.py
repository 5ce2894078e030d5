"""The HTTP face of `keyhunt serve`: Slack at POST /slack/events, /healthz and /metrics.

A plain WSGI application served by waitress (a production WSGI server, pure Python).

Hostile requests are cheap: before Bolt sees a request, its body is capped at 1 MiB (Slack's
payloads are a few KiB; Bolt would read any size before checking the signature), its Slack
signature is checked, and a signed body that does not parse as Slack sends it gets 400, never
a 500 and a traceback. Bolt checks the signature again.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import metrics
from bot.health import Health

StartResponse = Callable[..., Any]
MAX_BODY = 1 << 20  # bytes; Slack's interaction payloads and slash commands are far smaller


def make_wsgi(
    app: App, health: Callable[[], Health], signing_secret: str | None = None
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app; `signing_secret` verifies Slack requests before Bolt reads them (without
    one, in Socket Mode, only Bolt's own checks apply)."""
    slack = SlackRequestHandler(app, path="/slack/events")
    verifier = _Verifier(signing_secret) if signing_secret else None

    def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and method == "POST":
            refusal, body = _screen(environ, verifier)
            if refusal is not None:
                return _plain(start_response, refusal)
            environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
            return slack(environ, start_response)
        if path == "/healthz" and method in ("GET", "HEAD"):
            state = health()
            body = json.dumps(
                {
                    "ok": state.ok,
                    "scheduler_alive": state.scheduler_alive,
                    "last_poll_age_seconds": state.last_poll_age_seconds,
                    "detail": state.detail,
                    "queue": None if state.queue is None else asdict(state.queue),
                }
            ).encode()
            status = "200 OK" if state.ok else "503 Service Unavailable"
            start_response(
                status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path == "/metrics" and method == "GET":
            body = metrics.exposition()
            start_response(
                "200 OK",
                [("Content-Type", "text/plain; version=0.0.4"), ("Content-Length", str(len(body)))],
            )
            return [body]
        body = b"not found\n"
        start_response(
            "404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return wsgi


class _Verifier:
    """Slack's v0 request signature over the raw bytes, with its 5-minute window.

    slack_sdk's SignatureVerifier decodes the body as UTF-8 first and raises on anything
    else: a forged non-UTF-8 body would end in a 500.
    """

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def is_valid(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        if not timestamp or not signature or not timestamp.isdigit():
            return False
        if abs(time.time() - int(timestamp)) > 300:
            return False  # a replay window of five minutes, as Slack and Bolt use
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._key, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)


def _screen(environ: dict[str, Any], verifier: _Verifier | None) -> tuple[str | None, bytes]:
    """(the refusal status, or None; the body read, at most MAX_BODY + 1 bytes)."""
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if declared and not declared.isdigit():
        return "400 Bad Request", b""
    if declared and int(declared) > MAX_BODY:
        return "413 Content Too Large", b""  # refused unread
    stream = environ.get("wsgi.input") or io.BytesIO()
    body = stream.read(int(declared)) if declared else stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return "413 Content Too Large", b""
    if verifier is not None and not verifier.is_valid(
        body,
        environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
        environ.get("HTTP_X_SLACK_SIGNATURE"),
    ):
        return "401 Unauthorized", b""
    if not _parses_like_slack(body, str(environ.get("CONTENT_TYPE") or "")):
        return "400 Bad Request", b""
    return None, body


def _parses_like_slack(body: bytes, content_type: str) -> bool:
    """A JSON object, or a form whose `payload` (when present) is a JSON object, as Bolt
    expects; anything else would end in a 500 inside Bolt."""
    try:
        text = body.decode("utf-8")
        if content_type.split(";")[0].strip().lower() == "application/json":
            return isinstance(json.loads(text), dict)
        fields = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        return "payload" not in fields or isinstance(json.loads(fields["payload"]), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def _plain(start_response: StartResponse, status: str) -> Iterable[bytes]:
    body = f"{status.split(' ', 1)[1].lower()}\n".encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class HttpServer:
    """waitress in a thread, so tests and the demo can start and stop it."""

    def __init__(self, wsgi: Any, host: str, port: int) -> None:
        from waitress.server import create_server

        self._server = create_server(
            wsgi,
            host=host,
            port=port,
            threads=8,
            ident="keyhunt",
            clear_untrusted_proxy_headers=True,
            # waitress's own caps (1 GiB of body by default): chunked bodies, which carry no
            # Content-Length for make_wsgi to refuse unread, are bounded here.
            max_request_body_size=MAX_BODY,
            max_request_header_size=64 * 1024,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down inside waitress's own loop thread (its trigger runs thunks there):
        closing its sockets from this thread races the loop's select() and the workers."""
        from waitress import wasyncore

        server: Any = self._server
        closed = threading.Event()

        def close_in_loop() -> None:
            server.task_dispatcher.shutdown()
            wasyncore.close_all(server._map)
            closed.set()

        if self._thread is None:
            close_in_loop()
            return
        try:
            server.trigger.pull_trigger(close_in_loop)
        except OSError:
            # Another wake-up ran the thunk between the trigger's append and its write and
            # closed the pipe being written to: the shutdown happened all the same.
            if not closed.wait(timeout=10):
                raise
        self._thread.join(timeout=10)
