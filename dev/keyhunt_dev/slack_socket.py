"""Slack's Socket Mode on loopback: ``apps.connections.open`` and the WebSocket behind it.

``FakeSlack`` owns one ``SocketMode`` (``fake.socket_mode``) and answers
``apps.connections.open`` through it; the first call starts a standard-library WebSocket
server on 127.0.0.1, and every call hands out a ``ws://127.0.0.1:PORT/link/?ticket=...`` URL
that slack_sdk's built-in ``SocketModeClient`` (what Bolt's ``SocketModeHandler`` runs)
connects to unchanged: it speaks plain ``ws://`` to any port other than 443.

It speaks Slack's envelope protocol, as documented for Socket Mode and as slack_sdk and
bolt-python's own test servers exercise it:

* each connection opens with ``{"type": "hello", "num_connections": ..., "debug_info": ...,
  "connection_info": {"app_id": ...}}``;
* Slack sends envelopes ``{"envelope_id", "type", "payload", "accepts_response_payload"}``
  (``type`` is ``slash_commands``, ``interactive`` or ``events_api``; events carry
  ``retry_attempt``/``retry_reason`` too); a slash command's payload is its form fields as a
  JSON object, an interaction's the parsed ``payload`` object;
* the app acknowledges with ``{"envelope_id": ..., "payload": ...}`` (``payload`` only when
  it answers, as a slash command's ack does); acks are recorded in ``acks``;
* ``request_refresh()`` sends ``{"type": "disconnect", "reason": "refresh_requested"}``;
  no new envelope goes to that connection, and once the app has connected again the old one
  is closed, as Slack closes it after the warning;
* ``drop()`` cuts every connection abruptly (TCP reset, no close frame), as a dying proxy or
  load balancer does.

Delivery is at least once, like Slack's: an envelope sent while no connection is open waits
for the next one, and an envelope delivered on a connection that closed before its ack is
delivered again on the next (Slack retries what was not acknowledged). ``refuse_connections``
answers handshakes with 503, so a test can hold the app offline while it sends.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyhunt_dev.slack import block_action_body, slash_command_body

__all__ = [
    "APP_TOKEN",
    "Ack",
    "Envelope",
    "SocketConnection",
    "SocketMode",
    "block_action_payload",
    "slash_command_payload",
]

JsonDict = dict[str, Any]

APP_TOKEN = "xapp-1-A0KEYHUNT-1-test"  # the fake's app-level token, not a secret
_APP_ID = "A0KEYHUNT"  # the app id slack.py's bodies carry
_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY = 0x0, 0x1, 0x2
_OP_CLOSE, _OP_PING, _OP_PONG = 0x8, 0x9, 0xA
_MAX_FRAME = 1 << 22  # bytes; acks are small, and a runaway length must not exhaust memory


# --------------------------------------------------------------------------------------
# Payloads, from the same builders the HTTP tests sign
# --------------------------------------------------------------------------------------


def slash_command_payload(text: str, **fields: Any) -> JsonDict:
    """A slash command as a Socket Mode payload: the form fields of ``slash_command_body``
    (same arguments) as one JSON object, which is what Slack puts in the envelope."""
    body = slash_command_body(text, **fields)
    return dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))


def block_action_payload(action_id: str, value: str, **fields: Any) -> JsonDict:
    """A button click as a Socket Mode payload: the ``block_actions`` object that
    ``block_action_body`` (same arguments) form-encodes, parsed."""
    body = block_action_body(action_id, value, **fields)
    (encoded,) = urllib.parse.parse_qs(body.decode())["payload"]
    payload: JsonDict = json.loads(encoded)
    return payload


# --------------------------------------------------------------------------------------
# Recorded state
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Envelope:
    """One envelope the test sent. ``deliveries`` lists the connections it went out on, in
    order (more than one when a connection closed before the app acknowledged it);
    ``queued`` says it once waited for a connection."""

    envelope_id: str
    type: str
    payload: JsonDict
    accepts_response_payload: bool
    sent_at: float = field(default_factory=time.monotonic)
    deliveries: list[int] = field(default_factory=list)
    queued: bool = False

    def frame(self) -> JsonDict:
        message: JsonDict = {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.type == "events_api":  # Slack numbers its event retries; nothing else
            attempts = len(self.deliveries)  # built before this delivery is recorded
            message["retry_attempt"] = attempts
            message["retry_reason"] = "timeout" if attempts else ""
        return message


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledgement the app sent: ``payload`` is its answer (None for a bare ack)."""

    envelope_id: str
    payload: JsonDict | None
    connection: int  # SocketConnection.number it arrived on
    at: float


@dataclass(slots=True)
class SocketConnection:
    """One WebSocket session as the fake saw it."""

    number: int  # 1, 2, ... in the order the handshakes completed
    ticket: str
    opened_at: float
    closed_at: float | None = None
    # Who ended it: "client" (the app closed it), "dropped" (drop()), "refreshed" (closed
    # after the app reconnected following a disconnect message), "stopped" (the fake stopped).
    closed_by: str | None = None
    disconnect_reason: str | None = None  # the disconnect message sent on it, if any
    pings: int = 0  # pings the app sent (each answered with a pong)

    @property
    def open(self) -> bool:
        return self.closed_at is None


# --------------------------------------------------------------------------------------
# The Socket Mode side of the fake
# --------------------------------------------------------------------------------------


class SocketMode:
    """Socket Mode for one app. Built by FakeSlack (no I/O); the WebSocket server starts on
    the first ``apps.connections.open`` and stops with the fake."""

    def __init__(
        self, app_token: str = APP_TOKEN, *, app_id: str = _APP_ID, ping_seconds: float = 0.2
    ) -> None:
        """``ping_seconds``: how often the fake pings each connection, as Slack's servers
        ping their clients. It also bounds how long slack_sdk's built-in client takes to
        close: its close() waits for the reader's next frame (up to 3 s on a quiet line)."""
        self.app_token = app_token
        self.app_id = app_id
        self.ping_seconds = ping_seconds
        self.connections: list[SocketConnection] = []
        self.envelopes: dict[str, Envelope] = {}
        self.acks: list[Ack] = []
        self.refuse_connections = False  # answer handshakes with 503 (Slack unreachable)

        # One condition for all state: peer threads mutate, the test thread waits on it.
        self._changed = threading.Condition(threading.RLock())
        self._tickets: set[str] = set()
        self._peers: dict[int, _Peer] = {}  # open connections, by number
        self._queue: deque[str] = deque()  # envelope ids waiting for a connection
        self._unacked: dict[str, int] = {}  # envelope id -> connection it was delivered on
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    # ---- the Web API side (called by FakeSlack with its lock held) --------------------

    def token_error(self, token: str) -> str | None:
        """Slack's answer to ``token`` on apps.connections.open, None when it is this app's:
        a bot or user token is ``not_allowed_token_type``, another app token ``invalid_auth``."""
        if not token.startswith("xapp-"):
            return "not_allowed_token_type"
        if not hmac.compare_digest(token, self.app_token):
            return "invalid_auth"
        return None

    def open_connection(self, args: JsonDict) -> JsonDict:
        """apps.connections.open: a WebSocket URL with a fresh ticket."""
        host, port = self._listen()
        ticket = secrets.token_hex(16)
        with self._changed:
            self._tickets.add(ticket)
        query = urllib.parse.urlencode({"ticket": ticket, "app_id": self.app_id})
        return {"ok": True, "url": f"ws://{host}:{port}/link/?{query}"}

    # ---- what tests do ---------------------------------------------------------------

    def send(
        self,
        type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool | None = None,
    ) -> str:
        """Send an envelope (or queue it until a connection opens); returns its envelope_id.
        ``accepts_response_payload`` defaults to Slack's: true for slash commands only."""
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands"
        envelope = Envelope(str(uuid.uuid4()), type, payload, accepts_response_payload)
        with self._changed:
            self.envelopes[envelope.envelope_id] = envelope
            self._queue.append(envelope.envelope_id)
            self._deliver_queued()
            envelope.queued = envelope.envelope_id in self._queue
        return envelope.envelope_id

    def slash_command(self, text: str, **fields: Any) -> str:
        """Send ``/keyhunt text`` (fields as for ``slash_command_body``); the envelope_id."""
        return self.send("slash_commands", slash_command_payload(text, **fields))

    def block_action(self, action_id: str, value: str, **fields: Any) -> str:
        """Send a button click (fields as for ``block_action_body``); the envelope_id."""
        return self.send("interactive", block_action_payload(action_id, value, **fields))

    def request_refresh(self, reason: str = "refresh_requested") -> int:
        """Tell every open connection to reconnect (``{"type": "disconnect"}``); how many.
        Each is closed once the app has opened a new connection."""
        with self._changed:
            peers = [p for p in self._peers.values() if p.record.disconnect_reason is None]
            for peer in peers:
                peer.record.disconnect_reason = reason
                message = {
                    "type": "disconnect",
                    "reason": reason,
                    "debug_info": {"host": "applink-fake"},
                }
                try:
                    peer.send_text(json.dumps(message))
                except OSError:
                    self._close(peer, "dropped", reset=True)
            self._changed.notify_all()
        return len(peers)

    def drop(self) -> int:
        """Cut every open connection abruptly (TCP reset, no close frame); how many."""
        with self._changed:
            peers = list(self._peers.values())
            for peer in peers:
                self._close(peer, "dropped", reset=True)
        return len(peers)

    @property
    def open_connections(self) -> list[SocketConnection]:
        with self._changed:
            return [c for c in self.connections if c.open]

    def ack_for(self, envelope_id: str) -> Ack | None:
        with self._changed:
            return next((a for a in self.acks if a.envelope_id == envelope_id), None)

    def acks_for(self, envelope_id: str) -> list[Ack]:
        with self._changed:
            return [a for a in self.acks if a.envelope_id == envelope_id]

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack | None:
        """The app's ack of ``envelope_id``, waiting up to ``timeout`` s; None if none came."""
        ack: Ack | None = self.wait_until(lambda: self.ack_for(envelope_id), timeout)
        return ack

    def wait_until(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``condition()`` (read under the fake's lock) is truthy; returns it, or
        the last falsy value when ``timeout`` s pass first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = condition()
                remaining = deadline - time.monotonic()
                if value or remaining <= 0:
                    return value
                self._changed.wait(remaining)

    def stop(self) -> None:
        """Close every connection and the listener (FakeSlack.stop calls this)."""
        self._stopped.set()
        with self._changed:
            listener, self._listener = self._listener, None
            for peer in list(self._peers.values()):
                self._close(peer, "stopped", reset=False)
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._changed:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)

    # ---- the WebSocket server --------------------------------------------------------

    def _listen(self) -> tuple[str, int]:
        with self._changed:
            if self._listener is None:
                self._stopped.clear()
                listener = socket.create_server(("127.0.0.1", 0))
                self._listener = listener
                for thread in (
                    threading.Thread(
                        target=self._accept, args=(listener,), name="fake-slack-ws", daemon=True
                    ),
                    threading.Thread(target=self._ping, name="fake-slack-ws-ping", daemon=True),
                ):
                    self._threads.append(thread)
                    thread.start()
            host, port = self._listener.getsockname()[:2]
            return str(host), int(port)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # the listener was closed: stop()
            thread = threading.Thread(
                target=self._serve, args=(sock,), name="fake-slack-ws-peer", daemon=True
            )
            with self._changed:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _ping(self) -> None:
        while not self._stopped.wait(self.ping_seconds):
            with self._changed:
                peers = list(self._peers.values())
            for peer in peers:
                with contextlib.suppress(OSError):  # closing: its reader says so
                    peer.send_frame(_OP_PING, b"keyhunt-fake")

    def _serve(self, sock: socket.socket) -> None:
        try:
            peer = self._handshake(sock)
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                sock.close()
            return
        if peer is None:
            return
        # A reset or a frame it cannot read: the connection is over either way.
        with contextlib.suppress(OSError, ValueError):
            self._read_frames(peer)
        with self._changed:
            self._close(peer, "client", reset=False)

    def _handshake(self, sock: socket.socket) -> _Peer | None:
        sock.settimeout(5)  # a client that never finishes its request must not hold a thread
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk or len(request) > 65536:
                raise ValueError("incomplete handshake")
            request += chunk
        raw_head, _, rest = request.partition(b"\r\n\r\n")
        head = raw_head.decode("latin-1").split("\r\n")
        method, target, _ = [*head[0].split(" "), "", ""][:3]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:])
        }
        url = urllib.parse.urlsplit(target)
        ticket = (urllib.parse.parse_qs(url.query).get("ticket") or [""])[0]
        key = headers.get("sec-websocket-key", "")
        with self._changed:
            known = ticket in self._tickets
            refusing = self.refuse_connections
        if refusing:
            _refuse(sock, "503 Service Unavailable")
            return None
        if method != "GET" or url.path != "/link/" or not key or not known:
            _refuse(sock, "401 Unauthorized" if not known else "400 Bad Request")
            return None
        # RFC 6455 mandates SHA-1 here; it proves the server read the key, nothing more.
        digest = hashlib.sha1(key.encode() + _WEBSOCKET_GUID, usedforsecurity=False).digest()
        accept = base64.b64encode(digest)
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        sock.settimeout(None)  # from here, stop()/drop() end the reads by shutting down
        with self._changed:
            number = len(self.connections) + 1
            record = SocketConnection(number, ticket, time.monotonic())
            peer = _Peer(sock, record)
            peer.buffer = rest  # a ping sent straight after the request, say
            self.connections.append(record)
            self._peers[number] = peer
            hello = {
                "type": "hello",
                "num_connections": len(self._peers),
                "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
            peer.send_text(json.dumps(hello))
            # The app is back: what waited is delivered, and the connections it was told to
            # leave are closed (Slack closes them after its warning).
            self._deliver_queued()
            for old in list(self._peers.values()):
                if old is not peer and old.record.disconnect_reason is not None:
                    self._close(old, "refreshed", reset=False)
            self._changed.notify_all()
        return peer

    def _read_frames(self, peer: _Peer) -> None:
        message = b""
        while True:
            fin, opcode, data = peer.read_frame()
            if opcode == _OP_PING:
                with self._changed:
                    peer.record.pings += 1
                peer.send_frame(_OP_PONG, data)
            elif opcode == _OP_CLOSE:
                with contextlib.suppress(OSError):
                    peer.send_frame(_OP_CLOSE, data[:2])
                return
            elif opcode in (_OP_TEXT, _OP_CONTINUATION, _OP_BINARY):
                message += data
                if fin:
                    self._on_text(peer, message)
                    message = b""
            # pongs (and reserved opcodes) need no answer

    def _on_text(self, peer: _Peer, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("envelope_id"), str):
            return
        payload = message.get("payload")
        ack = Ack(
            message["envelope_id"],
            payload if isinstance(payload, dict) else None,
            peer.record.number,
            time.monotonic(),
        )
        with self._changed:
            self.acks.append(ack)
            self._unacked.pop(ack.envelope_id, None)
            with contextlib.suppress(ValueError):
                self._queue.remove(ack.envelope_id)  # acked late: no need to send it again
            self._changed.notify_all()

    # ---- delivery (called with the lock held) ----------------------------------------

    def _deliver_queued(self) -> None:
        while self._queue:
            peer = self._receiving_peer()
            if peer is None:
                return
            envelope = self.envelopes[self._queue[0]]
            try:
                peer.send_text(json.dumps(envelope.frame()))
            except OSError:
                self._close(peer, "dropped", reset=True)
                continue
            self._queue.popleft()
            envelope.deliveries.append(peer.record.number)
            self._unacked[envelope.envelope_id] = peer.record.number
        self._changed.notify_all()

    def _receiving_peer(self) -> _Peer | None:
        """The newest open connection not told to leave (Slack spreads envelopes over an
        app's connections; one is enough here, and the newest is the one that stays)."""
        live = [p for p in self._peers.values() if p.record.disconnect_reason is None]
        return live[-1] if live else None

    def _close(self, peer: _Peer, by: str, *, reset: bool) -> None:
        if self._peers.pop(peer.record.number, None) is None:
            return
        peer.record.closed_at = time.monotonic()
        peer.record.closed_by = by
        peer.close(reset=reset)
        # What was delivered here and never acknowledged goes out again on the next one.
        lost = [e for e, n in self._unacked.items() if n == peer.record.number]
        for envelope_id in reversed(lost):
            del self._unacked[envelope_id]
            self._queue.appendleft(envelope_id)
        self._deliver_queued()


class _Peer:
    """One open WebSocket: the socket, and the lock that keeps frames whole."""

    def __init__(self, sock: socket.socket, record: SocketConnection) -> None:
        self.sock = sock
        self.record = record
        self.buffer = b""  # bytes read past the handshake or the last frame
        self._send_lock = threading.Lock()

    def read_frame(self) -> tuple[bool, int, bytes]:
        """One frame from the app: (FIN, opcode, unmasked payload); raises on EOF."""
        first, second = self._read_exact(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        if length > _MAX_FRAME:
            raise ValueError(f"frame of {length} bytes")
        mask = self._read_exact(4) if second & 0x80 else b""  # client frames are masked
        data = self._read_exact(length)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return bool(first & 0x80), first & 0x0F, data

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(max(4096, size - len(self.buffer)))
            if not chunk:
                raise ConnectionResetError("the app closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send_text(self, text: str) -> None:
        self.send_frame(_OP_TEXT, text.encode())

    def send_frame(self, opcode: int, data: bytes) -> None:
        # Server frames are never masked (RFC 6455, section 5.1).
        length = len(data)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self._send_lock:
            self.sock.sendall(header + data)

    def close(self, *, reset: bool) -> None:
        with contextlib.suppress(OSError):
            if reset:
                # Linger 0: close() sends RST instead of FIN, as a connection cut mid-way.
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # SHUT_RD wakes this peer's reader without sending anything to the app.
                self.sock.shutdown(socket.SHUT_RD)
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


def _refuse(sock: socket.socket, status: str) -> None:
    answer = f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with contextlib.suppress(OSError):
        sock.sendall(answer.encode())
    with contextlib.suppress(OSError):
        sock.close()
