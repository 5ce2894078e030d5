"""The HTTP face of `keyhunt serve`: Slack at POST /slack/events, /healthz and /metrics.

A plain WSGI application served by waitress (a production WSGI server, pure Python).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import metrics

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Health:
    ok: bool
    scheduler_alive: bool
    last_poll_age_seconds: float | None
    detail: str


def make_wsgi(
    app: App, health: Callable[[], Health]
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    slack = SlackRequestHandler(app, path="/slack/events")

    def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and method == "POST":
            return slack(environ, start_response)
        if path == "/healthz" and method in ("GET", "HEAD"):
            state = health()
            body = json.dumps(
                {
                    "ok": state.ok,
                    "scheduler_alive": state.scheduler_alive,
                    "last_poll_age_seconds": state.last_poll_age_seconds,
                    "detail": state.detail,
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
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.run()

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


def poll_age(last_success: datetime | None, now: datetime | None = None) -> float | None:
    if last_success is None:
        return None
    return ((now or datetime.now(UTC)) - last_success).total_seconds()
