"""Hostile requests are cheap: bodies are capped before anything is read, unsigned garbage gets
401, signed garbage 400, never a 500 and never a traceback in the log.

Before this, an unsigned 200 MB POST took the process from 82 MB to ~700 MB before its 401
(Bolt reads the whole body before checking the signature; waitress allowed 1 GiB), and
`{bad` or `payload=%7Bx` got HTTP 500 with a traceback.
"""

from __future__ import annotations

import http.client
import io
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.server import MAX_BODY, Health, make_wsgi
from keyhunt_dev.slack import post_to_bot, sign
from tests.slackbot import SIGNING_SECRET, BotFactory

GARBAGE = [
    ("application/json", b"{bad"),
    ("application/json", b"[1, 2]"),
    ("application/x-www-form-urlencoded", b"payload=%7Bx"),
    ("application/x-www-form-urlencoded", b"payload=%5B1%5D"),
    ("application/x-www-form-urlencoded", b"\xff\xfe not utf-8"),
    ("text/plain", b"payload="),
]


class SpyStream(io.BytesIO):
    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.read_sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.read_sizes.append(size)
        return super().read(size)


def call_wsgi(environ: dict[str, Any]) -> str:
    class NoBolt:  # make_wsgi must refuse before Bolt is involved at all
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"Bolt was reached ({name})")

    wsgi = make_wsgi(NoBolt(), lambda: Health(True, True, 0, "ok"), SIGNING_SECRET)  # type: ignore[arg-type]
    seen: list[str] = []
    b"".join(wsgi(environ, lambda status, headers: seen.append(status)))
    return seen[0]


def test_a_body_declared_over_the_cap_is_refused_unread() -> None:
    stream = SpyStream()
    status = call_wsgi(
        {
            "PATH_INFO": "/slack/events",
            "REQUEST_METHOD": "POST",
            "CONTENT_LENGTH": str(5 * 1024 * 1024),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "wsgi.input": stream,
        }
    )
    assert status.startswith("413")
    assert stream.read_sizes == []


def test_a_body_without_a_length_is_read_only_up_to_the_cap() -> None:
    stream = SpyStream(b"x" * (MAX_BODY + 10))
    status = call_wsgi(
        {
            "PATH_INFO": "/slack/events",
            "REQUEST_METHOD": "POST",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "wsgi.input": stream,
        }
    )
    assert status.startswith("413")
    assert stream.read_sizes == [MAX_BODY + 1]


@pytest.mark.parametrize(("content_type", "body"), GARBAGE)
def test_garbage_never_reaches_bolt_signed_or_not(content_type: str, body: bytes) -> None:
    def environ(headers: dict[str, str]) -> dict[str, Any]:
        return {
            "PATH_INFO": "/slack/events",
            "REQUEST_METHOD": "POST",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": content_type,
            "wsgi.input": io.BytesIO(body),
            **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
        }

    assert call_wsgi(environ({})).startswith("401")
    assert call_wsgi(environ(sign("not-the-secret", body))).startswith("401")
    assert call_wsgi(environ(sign(SIGNING_SECRET, body))).startswith("400")


@pytest.mark.parametrize(("content_type", "body"), GARBAGE)
def test_garbage_over_http_gets_401_or_400_and_no_traceback(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture, content_type: str, body: bytes
) -> None:
    bot = make_bot()
    caplog.set_level(logging.DEBUG)

    unsigned = raw_post(bot.events_url, body, {"Content-Type": content_type})
    signed, _, _ = post_to_bot(bot.events_url, body, SIGNING_SECRET, content_type=content_type)

    assert unsigned == 401
    assert signed == 400
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bot.slack.calls == []


def test_a_large_body_over_http_is_refused_before_it_is_sent(make_bot: BotFactory) -> None:
    """The headers alone earn the 413: not one byte of the 200 MB is waited for or read."""
    bot = make_bot()
    url = urlsplit(bot.events_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
        )
        reply = conn.recv(200)
    assert reply.startswith(b"HTTP/1.1 413"), reply


def test_a_large_chunked_body_is_cut_off_by_the_server(make_bot: BotFactory) -> None:
    """No Content-Length to refuse up front: waitress stops reading at the cap."""
    bot = make_bot()
    url = urlsplit(bot.events_url)
    chunk = b"x" * 65536
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n".encode()
        )
        try:
            for _ in range(MAX_BODY // len(chunk) + 8):  # past the cap
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may close on us once the cap is passed
        reply = conn.recv(200)
    assert reply.startswith(b"HTTP/1.1 413"), reply


def test_a_real_slash_command_still_works_after_the_checks(make_bot: BotFactory) -> None:
    bot = make_bot()
    reply = bot.slash("help")
    assert reply.status == 200
    assert reply.is_usage


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("POST", parts.path, body=body, headers=headers)
        return conn.getresponse().status
    except (ConnectionResetError, BrokenPipeError):
        return -1
    finally:
        conn.close()
