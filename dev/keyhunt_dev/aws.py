"""A fake AWS that botocore talks to over real HTTP.

moto covers IAM, STS and Organizations but not CloudTrail ``LookupEvents``, which is the
one API keyhunt depends on most. ``FakeAWS`` runs moto in-process and puts one small
HTTP front server before it:

* ``LookupEvents`` (JSON 1.1, ``X-Amz-Target: ...CloudTrail_20131101.LookupEvents``) is
  answered by an emulator with its own per-account, per-region event store;
* STS ``AssumeRole`` for a denied role answers STS ``AccessDenied`` (403, XML);
* everything else is proxied verbatim to moto.

Because clients reach it through ``endpoint_url``, botocore's signing, retries, error
parsing and pagination all really run. Faults (throttling, latency, access denied, 503)
can be injected per account and region, and every ``LookupEvents`` call is recorded.

moto's state is process-global: two ``FakeAWS`` instances in one process share IAM/STS
data, but each has its own CloudTrail store, faults and call log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape as xml_escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

logger = logging.getLogger(__name__)

__all__ = ["FakeAWS", "LookupCall", "parse_event_time"]

HOST = "127.0.0.1"
LOOKUP_TARGET_SUFFIX = ".LookupEvents"
SQS_RECEIVE_TARGET = "AmazonSQS.ReceiveMessage"
# SQS long polling is served here by asking moto without a wait this often: moto's own wait
# is a busy loop that would hold a CPU core (and the interpreter lock) for the whole wait.
LONG_POLL_STEP = 0.01
RETENTION = timedelta(days=90)  # LookupEvents only sees the last 90 days
DEFAULT_MAX_RESULTS = 50
MAX_MAX_RESULTS = 50
LOOKUP_KEYS = frozenset(
    {
        "EventId",
        "EventName",
        "ReadOnly",
        "Username",
        "ResourceType",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
    }
)
# RFC 7230 §6.1: meaningful for one connection only, so never forwarded. Content-Length is
# recomputed because the body is re-framed (a chunked request is forwarded de-chunked).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
JSON_11 = "application/x-amz-json-1.1"
UNKNOWN = ""  # account/region of a call whose credentials could not be read

_CREDENTIAL_RE = re.compile(
    r"Credential=(?P<akid>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[^/\s,]+)/(?P<service>[^/\s,]+)/"
)
_ACCOUNT_RE = re.compile(r"<Account>(\d+)</Account>")
_ARN_RE = re.compile(r"<Arn>([^<]+)</Arn>")
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class LookupCall:
    """One ``LookupEvents`` request as the fake saw it."""

    account_id: str
    region: str
    params: dict[str, Any]
    at: float  # time.monotonic() when the request arrived (before any injected latency)
    outcome: str  # "ok" or the error code answered, e.g. "ThrottlingException"


def parse_event_time(value: str | datetime | float) -> datetime:
    """Parse a CloudTrail ``eventTime`` into an aware UTC datetime.

    Real records carry ``2026-11-29T21:47:48Z``; public samples also carry
    ``2022-09-27 17:09:18`` and ``2023-01-03 01:52:07.000000000``. Naive values are UTC.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float):
        parsed = datetime.fromtimestamp(value, UTC)
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # datetime only keeps microseconds; some exports carry nanoseconds.
        text = _FRACTION_RE.sub(r"\1", text)
        parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --------------------------------------------------------------------------- errors


class _AwsError(Exception):
    """An error answered in the JSON 1.1 shape botocore parses."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json_response(payload: Mapping[str, Any]) -> _Response:
    return _Response(
        200,
        [("Content-Type", JSON_11), ("x-amzn-RequestId", str(uuid.uuid4()))],
        json.dumps(payload).encode(),
    )


def _json_error(error: _AwsError) -> _Response:
    # botocore reads the code from "__type" (and x-amzn-ErrorType); both are set, as AWS does.
    body = json.dumps({"__type": error.code, "message": error.message}).encode()
    headers = [
        ("Content-Type", JSON_11),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("x-amzn-ErrorType", f"{error.code}:"),
    ]
    return _Response(error.status, headers, body)


def _sts_access_denied(message: str) -> _Response:
    request_id = str(uuid.uuid4())
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>{xml_escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    return _Response(403, headers, body)


# --------------------------------------------------------------------------- stored events


@dataclass(frozen=True)
class _StoredEvent:
    event_id: str
    event_name: str
    event_source: str
    epoch_us: int  # integer microseconds: exact comparisons for inclusive ranges and cursors
    username: str | None
    access_key_id: str | None
    read_only: str  # "true" / "false", as LookupEvents reports it
    resources: tuple[tuple[str, str], ...]  # (ResourceType, ResourceName)
    cloudtrail_event: str

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.epoch_us, self.event_id)

    def matches(self, key: str, value: str) -> bool:
        if key == "EventId":
            return self.event_id == value
        if key == "EventName":
            return self.event_name == value
        if key == "EventSource":
            return self.event_source == value
        if key == "Username":
            return self.username == value
        if key == "AccessKeyId":
            return self.access_key_id == value
        if key == "ReadOnly":
            return self.read_only == value.lower()
        if key == "ResourceType":
            return any(rtype == value for rtype, _ in self.resources)
        if key == "ResourceName":
            return any(rname == value for _, rname in self.resources)
        return False

    def to_api(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": self.read_only,
        }
        if self.access_key_id:
            event["AccessKeyId"] = self.access_key_id
        event["EventTime"] = self.epoch_us / 1_000_000
        event["EventSource"] = self.event_source
        if self.username:
            event["Username"] = self.username
        event["Resources"] = [
            {"ResourceType": rtype, "ResourceName": rname} for rtype, rname in self.resources
        ]
        event["CloudTrailEvent"] = self.cloudtrail_event
        return event


def _epoch_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _as_dict(value: object) -> Mapping[str, Any]:
    # Public samples are not always well-formed; a non-object field counts as absent.
    return value if isinstance(value, Mapping) else {}


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _read_only(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower()
    return "false"  # absent: treat as a write, which is what keyhunt hunts


def _username(identity: Mapping[str, Any]) -> str | None:
    # LookupEvents' Username is "a user name or role name of the requester".
    issuer = _as_dict(_as_dict(identity.get("sessionContext")).get("sessionIssuer"))
    return _optional_str(identity.get("userName")) or _optional_str(issuer.get("userName"))


def _resources(record: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    raw_resources = record.get("resources")
    for item in raw_resources if isinstance(raw_resources, list) else []:
        item_map = _as_dict(item)
        rtype, rname = _optional_str(item_map.get("type")), _optional_str(item_map.get("ARN"))
        if rtype and rname:
            found.append((rtype, rname))
    if record.get("eventSource") == "iam.amazonaws.com":
        found.extend(_iam_resources(record))
    return tuple(dict.fromkeys(found))  # de-duplicate, keep order


def _iam_resources(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    # Real LookupEvents derives Resources for IAM key events from the request/response, e.g.
    # CreateAccessKey -> AWS::IAM::AccessKey <key id> and AWS::IAM::User <user name>.
    request = _as_dict(record.get("requestParameters"))
    access_key = _as_dict(_as_dict(record.get("responseElements")).get("accessKey"))
    found: list[tuple[str, str]] = []
    key_id = _optional_str(access_key.get("accessKeyId")) or _optional_str(
        request.get("accessKeyId")
    )
    if key_id:
        found.append(("AWS::IAM::AccessKey", key_id))
    user = _optional_str(request.get("userName")) or _optional_str(access_key.get("userName"))
    if user:
        found.append(("AWS::IAM::User", user))
    return found


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return parse_event_time(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _event_from_record(record: Mapping[str, Any], raw: str | None = None) -> _StoredEvent:
    if "eventTime" not in record:
        raise ValueError("a CloudTrail record needs an eventTime")
    identity = _as_dict(record.get("userIdentity"))
    return _StoredEvent(
        event_id=str(record.get("eventID") or uuid.uuid4()),
        event_name=str(record.get("eventName", "")),
        event_source=str(record.get("eventSource", "")),
        epoch_us=_epoch_us(parse_event_time(record["eventTime"])),
        username=_username(identity),
        access_key_id=_optional_str(identity.get("accessKeyId")),
        read_only=_read_only(record.get("readOnly")),
        resources=_resources(record),
        cloudtrail_event=raw if raw is not None else json.dumps(record, default=_json_default),
    )


# --------------------------------------------------------------------------- lookup query


@dataclass(frozen=True)
class _LookupQuery:
    attribute: tuple[str, str] | None
    start_us: int | None
    end_us: int | None
    max_results: int
    category: str | None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> _LookupQuery:
        # Validation order follows the API's documented errors; first failure wins.
        query = cls(
            attribute=_parse_attributes(params.get("LookupAttributes")),
            max_results=_parse_max_results(params.get("MaxResults")),
            start_us=_parse_epoch(params.get("StartTime"), "StartTime"),
            end_us=_parse_epoch(params.get("EndTime"), "EndTime"),
            category=_parse_category(params.get("EventCategory")),
        )
        start, end = query.start_us, query.end_us
        if start is not None and end is not None and start > end:
            raise _AwsError(
                "InvalidTimeRangeException",
                "Start time must be earlier than or equal to end time.",
            )
        return query

    def fingerprint(self, account_id: str, region: str) -> str:
        """What a NextToken is bound to: the same query against the same account and region."""
        material = json.dumps(
            [
                account_id,
                region,
                self.attribute,
                self.start_us,
                self.end_us,
                self.max_results,
                self.category,
            ]
        )
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def selects(self, event: _StoredEvent, oldest_us: int) -> bool:
        if event.epoch_us < oldest_us:
            return False
        if self.start_us is not None and event.epoch_us < self.start_us:
            return False
        if self.end_us is not None and event.epoch_us > self.end_us:
            return False
        return self.attribute is None or event.matches(*self.attribute)


def _parse_attributes(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _AwsError("InvalidLookupAttributesException", "LookupAttributes must be a list.")
    if len(value) > 1:
        raise _AwsError(
            "InvalidLookupAttributesException",
            "You can specify only one lookup attribute.",
        )
    if not value:
        return None
    item = _as_dict(value[0])
    key, attr_value = item.get("AttributeKey"), item.get("AttributeValue")
    if key not in LOOKUP_KEYS or not isinstance(attr_value, str) or not attr_value:
        raise _AwsError(
            "InvalidLookupAttributesException",
            f"Invalid lookup attribute: {key!r}={attr_value!r}.",
        )
    if key == "ReadOnly" and attr_value.lower() not in ("true", "false"):
        raise _AwsError("InvalidLookupAttributesException", "ReadOnly must be true or false.")
    return (str(key), attr_value)


def _parse_max_results(value: object) -> int:
    if value is None:
        return DEFAULT_MAX_RESULTS
    # bool is an int subclass; a JSON true is not a valid page size.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _AwsError("InvalidMaxResultsException", "MaxResults must be an integer.")
    if not 1 <= value <= MAX_MAX_RESULTS:
        raise _AwsError(
            "InvalidMaxResultsException",
            f"MaxResults must be between 1 and {MAX_MAX_RESULTS}.",
        )
    return value


def _parse_epoch(value: object, name: str) -> int | None:
    if value is None:
        return None
    # The JSON protocol sends timestamps as epoch seconds, possibly with a fraction.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _AwsError("SerializationException", f"{name} must be epoch seconds.")
    return round(value * 1_000_000)


def _parse_category(value: object) -> str | None:
    if value is None or value == "insight":
        return value
    raise _AwsError("InvalidEventCategoryException", "EventCategory must be insight.")


class _TokenCodec:
    """Opaque NextToken: a cursor (last event returned) plus the query it belongs to.

    A cursor rather than an offset, so events added between pages neither repeat nor
    shift the next page. Signed, so a tampered or foreign token is refused like AWS does.
    """

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def encode(self, fingerprint: str, cursor: tuple[int, str]) -> str:
        payload = json.dumps({"q": fingerprint, "t": cursor[0], "i": cursor[1]}).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(body)}"

    def decode(self, token: object, fingerprint: str) -> tuple[int, str]:
        invalid = _AwsError("InvalidNextTokenException", "Invalid NextToken.")
        if not isinstance(token, str) or token.count(".") != 1:
            raise invalid
        body, signature = token.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise invalid
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError) as exc:
            raise invalid from exc
        # Same token, different query (attributes, times, page size, account, region): refused.
        if payload.get("q") != fingerprint:
            raise invalid
        return (int(payload["t"]), str(payload["i"]))

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]


# --------------------------------------------------------------------------- CloudTrail store


class _CloudTrailStore:
    """Events per (account, region) and the LookupEvents query semantics over them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], dict[str, _StoredEvent]] = {}
        self._tokens = _TokenCodec()

    def add(self, account_id: str, region: str, event: _StoredEvent) -> None:
        with self._lock:
            # Keyed by event id: adding the same record twice is idempotent, as in CloudTrail.
            self._events.setdefault((account_id, region), {})[event.event_id] = event

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def lookup(
        self, account_id: str, region: str, params: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        query = _LookupQuery.from_params(params)
        fingerprint = query.fingerprint(account_id, region)
        cursor = None
        if "NextToken" in params:
            cursor = self._tokens.decode(params["NextToken"], fingerprint)
        if query.category == "insight":
            return {"Events": []}  # only management events are stored
        with self._lock:
            candidates = list(self._events.get((account_id, region), {}).values())
        oldest_us = _epoch_us(now - RETENTION)
        selected = [event for event in candidates if query.selects(event, oldest_us)]
        # Newest first; equal times ordered by event id so pages are deterministic.
        selected.sort(key=lambda event: event.sort_key, reverse=True)
        if cursor is not None:
            selected = [event for event in selected if event.sort_key < cursor]
        page = selected[: query.max_results]
        result: dict[str, Any] = {"Events": [event.to_api() for event in page]}
        if len(selected) > len(page):  # no NextToken key at all on the last page
            result["NextToken"] = self._tokens.encode(fingerprint, page[-1].sort_key)
        return result


# --------------------------------------------------------------------------- faults


@dataclass
class _ThrottleRule:
    account_id: str | None
    region: str | None
    remaining: int

    def applies(self, account_id: str, region: str) -> bool:
        return (self.account_id in (None, account_id)) and (self.region in (None, region))


@dataclass
class _Faults:
    throttles: list[_ThrottleRule] = field(default_factory=list)
    latency: float = 0.0
    latency_by_account: dict[str, float] = field(default_factory=dict)
    denied_lookup: set[str] = field(default_factory=set)
    denied_roles: set[str] = field(default_factory=set)
    broken: set[tuple[str, str | None]] = field(default_factory=set)

    def latency_for(self, account_id: str) -> float:
        return self.latency_by_account.get(account_id, self.latency)

    def lookup_error(self, account_id: str, region: str, caller_arn: str) -> _AwsError | None:
        """The injected error for this LookupEvents call, consuming one throttle if any.

        Order: an outage (503) before throttling before authorization, like a front door.
        """
        if (account_id, None) in self.broken or (account_id, region) in self.broken:
            return _AwsError("ServiceUnavailable", "Service Unavailable", status=503)
        for rule in self.throttles:
            if rule.remaining > 0 and rule.applies(account_id, region):
                rule.remaining -= 1
                return _AwsError("ThrottlingException", "Rate exceeded")
        if account_id in self.denied_lookup:
            return _AwsError(
                "AccessDeniedException",
                f"User: {caller_arn} is not authorized to perform: cloudtrail:LookupEvents "
                "because no identity-based policy allows the cloudtrail:LookupEvents action",
            )
        return None


# --------------------------------------------------------------------------- HTTP helpers


@dataclass(frozen=True)
class _Identity:
    account_id: str
    arn: str


def _credential_scope(authorization: str | None) -> tuple[str, str]:
    """(access key id, region) from a SigV4 Authorization header."""
    match = _CREDENTIAL_RE.search(authorization or "")
    if match is None:
        raise _AwsError(
            "MissingAuthenticationTokenException",
            "Request is missing Authentication Token",
            status=403,
        )
    return match.group("akid"), match.group("region")


def _read_chunked(rfile: BufferedIOBase) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int(rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers: nothing downstream needs them
            return b"".join(chunks)
        chunks.append(rfile.read(size))
        rfile.readline()  # CRLF after each chunk


def _form_params(path: str, content_type: str, body: bytes) -> dict[str, list[str]]:
    params = parse_qs(urlsplit(path).query)
    if body and "x-www-form-urlencoded" in content_type:
        params.update(parse_qs(body.decode("utf-8", "replace")))
    return params


def _assume_role_arn(path: str, content_type: str, body: bytes) -> str | None:
    params = _form_params(path, content_type, body)
    if params.get("Action", [""])[0] != "AssumeRole":
        return None
    return params.get("RoleArn", [""])[0] or None


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck keep-alive client must not block stop()

    def __init__(self, fake: FakeAWS) -> None:
        super().__init__((HOST, 0), _FrontHandler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Mostly a client that hung up mid-answer (e.g. a read timeout during injected
        # latency): not worth socketserver's traceback on stderr.
        logger.debug("front connection from %s failed", client_address, exc_info=True)


class _FrontHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 so botocore's keep-alive pool works; every response sets Content-Length.
    protocol_version = "HTTP/1.1"
    server: _FrontServer

    def _handle(self) -> None:
        try:
            body = self._read_body()
            response = self.server.fake._route(self.command, self.path, self.headers, body)
        except Exception:
            logger.exception("fake AWS front server failed on %s %s", self.command, self.path)
            response = _json_error(_AwsError("InternalFailure", "fake AWS failed", status=500))
        self._send(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("front %s - " + format, self.address_string(), *args)


# --------------------------------------------------------------------------- IAM in step


def _keep_iam_in_step(account_id: str, record: Mapping[str, Any]) -> None:
    """One world: what a seeded CloudTrail record says about a key that exists in moto's IAM
    becomes what IAM says too. A successful CreateAccessKey sets the key's creation date; any
    call made with a key moves its last use (service and region) forward, as AWS records it."""
    try:
        when = parse_event_time(record["eventTime"])
    except (KeyError, TypeError, ValueError):
        return
    identity = _as_dict(record.get("userIdentity"))
    caller_account = _optional_str(identity.get("accountId")) or account_id
    used = _moto_access_key(caller_account, _optional_str(identity.get("accessKeyId")))
    if used is not None:
        from moto.iam.models import AccessKeyLastUsed

        stamp = _moto_time(when)
        if used.last_used is None or used.last_used.timestamp < stamp:
            service = str(record.get("eventSource") or "").removesuffix(".amazonaws.com")
            used.last_used = AccessKeyLastUsed(
                timestamp=stamp, service=service, region=str(record.get("awsRegion") or "N/A")
            )
    if record.get("eventName") == "CreateAccessKey" and not record.get("errorCode"):
        made = _as_dict(_as_dict(record.get("responseElements")).get("accessKey"))
        key = _moto_access_key(account_id, _optional_str(made.get("accessKeyId")))
        if key is not None:
            key.create_date = _moto_time(when)


def _moto_access_key(account_id: str, access_key_id: str | None) -> Any:
    """moto's own object for the key (moto server runs in this process), or None."""
    if not access_key_id:
        return None
    from moto.iam.models import iam_backends

    if account_id not in iam_backends:
        return None
    return iam_backends[account_id]["aws"].access_keys.get(access_key_id)


def _moto_time(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC


# --------------------------------------------------------------------------- FakeAWS


class FakeAWS:
    """moto plus a CloudTrail LookupEvents emulator behind one local HTTP endpoint."""

    def __init__(self) -> None:
        self._store = _CloudTrailStore()
        self._faults = _Faults()
        self._faults_lock = threading.Lock()
        self._identities: dict[str, _Identity] = {}
        self._identities_lock = threading.Lock()
        self._calls_lock = threading.Lock()
        self.calls: list[LookupCall] = []
        self.assumed_roles: list[str] = []  # every sts:AssumeRole's RoleArn, as it arrived
        self._moto: ThreadedMotoServer | None = None
        self._moto_address: tuple[str, int] | None = None
        self._front: _FrontServer | None = None
        self._front_thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> FakeAWS:
        if self._front is not None:
            raise RuntimeError("FakeAWS already started")
        from moto.server import ThreadedMotoServer  # heavy import; only when really used

        # werkzeug (moto's server) prints every request to stderr unless told otherwise;
        # quieten it only if nobody configured that logger.
        werkzeug_logger = logging.getLogger("werkzeug")
        if werkzeug_logger.level == logging.NOTSET:
            werkzeug_logger.setLevel(logging.WARNING)
        moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        moto.start()
        self._moto = moto
        self._moto_address = moto.get_host_and_port()
        try:
            self._front = _FrontServer(self)
        except OSError:
            self.stop()
            raise
        self._front_thread = threading.Thread(
            target=self._front.serve_forever, name="fake-aws-front", daemon=True
        )
        self._front_thread.start()
        logger.info("fake AWS on %s (moto on %s)", self.endpoint_url, self.moto_url)
        return self

    def stop(self) -> None:
        if self._front is not None:
            self._front.shutdown()
            self._front.server_close()
            self._front = None
        if self._front_thread is not None:
            self._front_thread.join(timeout=5)
            self._front_thread = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
            self._moto_address = None

    def __enter__(self) -> FakeAWS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._front is None:
            raise RuntimeError("FakeAWS not started")
        host, port = self._front.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def moto_url(self) -> str:
        host, port = self._moto_hostport()
        return f"http://{host}:{port}"

    def _moto_hostport(self) -> tuple[str, int]:
        if self._moto_address is None:
            raise RuntimeError("FakeAWS not started")
        return self._moto_address

    # ---- CloudTrail store

    def add_events(
        self, account_id: str, region: str, records: Iterable[dict[str, Any] | str]
    ) -> None:
        """Store full CloudTrail records. A string is parsed and kept verbatim as
        CloudTrailEvent; a string that is not a JSON object needs ``add_raw_event``."""
        for record in records:
            if isinstance(record, str):
                try:
                    parsed = json.loads(record)
                except ValueError as exc:
                    raise ValueError("malformed record: use add_raw_event for it") from exc
                if not isinstance(parsed, dict):
                    raise ValueError("record is not a JSON object: use add_raw_event for it")
                event = _event_from_record(parsed, raw=record)
            else:
                parsed = record
                event = _event_from_record(record)
            self._store.add(account_id, region, event)
            _keep_iam_in_step(account_id, parsed)

    def backdate_key(self, account_id: str, access_key_id: str, created: datetime) -> None:
        """Set when IAM says a key was made: for a key older than the CloudTrail records
        seeded (a record would do it, see add_events, but none is older than 90 days)."""
        key = _moto_access_key(account_id, access_key_id)
        if key is None:
            raise KeyError(f"no IAM access key {access_key_id} in {account_id}")
        key.create_date = _moto_time(created)

    def add_raw_event(
        self,
        account_id: str,
        region: str,
        *,
        event_id: str,
        event_name: str,
        event_time: datetime,
        cloudtrail_event: str,
        username: str | None = None,
        access_key_id: str | None = None,
        event_source: str = "iam.amazonaws.com",
        resources: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Store an event whose CloudTrailEvent string is served verbatim, even if malformed.

        `resources` are the entry's (ResourceType, ResourceName) pairs, e.g.
        ("AWS::IAM::AccessKey", key_id), ("AWS::IAM::User", user_name)."""
        event = _StoredEvent(
            event_id=event_id,
            event_name=event_name,
            event_source=event_source,
            epoch_us=_epoch_us(parse_event_time(event_time)),
            username=username,
            access_key_id=access_key_id,
            read_only="false",
            resources=tuple(resources),
            cloudtrail_event=cloudtrail_event,
        )
        self._store.add(account_id, region, event)

    def clear_events(self) -> None:
        self._store.clear()

    # ---- fault injection

    def throttle(self, account_id: str | None, region: str | None, calls: int) -> None:
        """The next ``calls`` LookupEvents for that target (None = any) are throttled."""
        with self._faults_lock:
            self._faults.throttles.append(_ThrottleRule(account_id, region, calls))

    def set_latency(self, seconds: float, account_id: str | None = None) -> None:
        """Sleep before answering LookupEvents; per account overrides the default."""
        with self._faults_lock:
            if account_id is None:
                self._faults.latency = seconds
            else:
                self._faults.latency_by_account[account_id] = seconds

    def deny_lookup(self, account_id: str) -> None:
        with self._faults_lock:
            self._faults.denied_lookup.add(account_id)

    def deny_assume_role(self, role_arn: str) -> None:
        with self._faults_lock:
            self._faults.denied_roles.add(role_arn)

    def break_lookup(self, account_id: str, region: str | None = None) -> None:
        """LookupEvents answers 503 for that account (in every region when region is None)."""
        with self._faults_lock:
            self._faults.broken.add((account_id, region))

    def reset_faults(self) -> None:
        with self._faults_lock:
            self._faults = _Faults()

    # ---- observation

    def lookup_calls(
        self,
        account_id: str | None = None,
        region: str | None = None,
        event_name: str | None = None,
    ) -> list[LookupCall]:
        """Recorded LookupEvents calls, optionally only those for an account, region, or
        an ``EventName`` lookup attribute."""
        with self._calls_lock:
            snapshot = list(self.calls)
        return [
            call
            for call in snapshot
            if account_id in (None, call.account_id)
            and region in (None, call.region)
            and (event_name is None or _looked_up_event_name(call.params) == event_name)
        ]

    def clear_calls(self) -> None:
        with self._calls_lock:
            self.calls.clear()
            self.assumed_roles.clear()

    def reset(self) -> None:
        """Events, faults and recorded calls back to empty (moto state is untouched)."""
        self.clear_events()
        self.reset_faults()
        self.clear_calls()

    # ---- request routing (front server threads)

    def _route(self, method: str, path: str, headers: Message, body: bytes) -> _Response:
        if headers.get("X-Amz-Target", "").endswith(LOOKUP_TARGET_SUFFIX):
            return self._lookup_events(headers, body)
        if headers.get("X-Amz-Target", "") == SQS_RECEIVE_TARGET:
            return self._receive_message(method, path, headers, body)
        role_arn = _assume_role_arn(path, headers.get("Content-Type", ""), body)
        if role_arn is not None:
            with self._calls_lock:
                self.assumed_roles.append(role_arn)
            if self._role_denied(role_arn):
                return self._deny_assume_role(headers, role_arn)
        return self._proxy(method, path, headers, body)

    def _lookup_events(self, headers: Message, body: bytes) -> _Response:
        arrived = time.monotonic()
        account_id, region = UNKNOWN, UNKNOWN
        params: dict[str, Any] = {}
        try:
            access_key_id, region = _credential_scope(headers.get("Authorization"))
            identity = self._identity(access_key_id, region)
            account_id = identity.account_id
            params = _parse_json_object(body)
            self._apply_latency(account_id)
            with self._faults_lock:
                injected = self._faults.lookup_error(account_id, region, identity.arn)
            if injected is not None:
                raise injected
            result = self._store.lookup(account_id, region, params, datetime.now(UTC))
        except _AwsError as error:
            self._record(LookupCall(account_id, region, params, arrived, error.code))
            logger.debug("LookupEvents %s/%s -> %s", account_id, region, error.code)
            return _json_error(error)
        self._record(LookupCall(account_id, region, params, arrived, "ok"))
        return _json_response(result)

    def _receive_message(self, method: str, path: str, headers: Message, body: bytes) -> _Response:
        """ReceiveMessage with WaitTimeSeconds: moto is asked without a wait every
        LONG_POLL_STEP until it has messages or the wait is over, as SQS answers a long poll
        (at once when messages arrive, empty at the end of the wait)."""
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return self._proxy(method, path, headers, body)
        wait = params.get("WaitTimeSeconds") if isinstance(params, dict) else None
        if not isinstance(wait, int) or isinstance(wait, bool) or wait <= 0:
            return self._proxy(method, path, headers, body)
        deadline = time.monotonic() + min(wait, 20)
        at_once = json.dumps({**params, "WaitTimeSeconds": 0}).encode()
        while True:
            response = self._proxy(method, path, headers, at_once)
            if response.status != 200 or time.monotonic() >= deadline:
                return response
            try:
                if json.loads(response.body or b"{}").get("Messages"):
                    return response
            except (ValueError, AttributeError):
                return response
            time.sleep(LONG_POLL_STEP)

    def _apply_latency(self, account_id: str) -> None:
        with self._faults_lock:
            delay = self._faults.latency_for(account_id)
        if delay > 0:
            time.sleep(delay)

    def _record(self, call: LookupCall) -> None:
        with self._calls_lock:
            self.calls.append(call)

    def _role_denied(self, role_arn: str) -> bool:
        with self._faults_lock:
            return role_arn in self._faults.denied_roles

    def _deny_assume_role(self, headers: Message, role_arn: str) -> _Response:
        caller = "arn:aws:iam::123456789012:user/unknown"
        try:
            access_key_id, region = _credential_scope(headers.get("Authorization"))
            caller = self._identity(access_key_id, region).arn
        except _AwsError:
            pass  # the message is cosmetic; deny regardless
        logger.debug("AssumeRole %s denied for %s", role_arn, caller)
        return _sts_access_denied(
            f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        )

    def _identity(self, access_key_id: str, region: str) -> _Identity:
        """Who an access key belongs to, as moto's STS GetCallerIdentity says (cached).

        moto ignores signatures, so signing with the key id and any secret is enough; an
        AssumeRole'd ASIA key resolves to the assumed role's account.
        """
        with self._identities_lock:
            cached = self._identities.get(access_key_id)
        if cached is not None:
            return cached
        form = b"Action=GetCallerIdentity&Version=2011-06-15"
        request = AWSRequest(
            method="POST",
            url=self.moto_url + "/",
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(Credentials(access_key_id, "fake-secret"), "sts", region).add_auth(request)
        prepared = request.prepare()
        status, _, payload = self._send_to_moto("POST", "/", list(prepared.headers.items()), form)
        text = payload.decode("utf-8", "replace")
        account, arn = _ACCOUNT_RE.search(text), _ARN_RE.search(text)
        if status != 200 or account is None or arn is None:
            raise _AwsError("InternalFailure", "could not resolve the caller", status=500)
        identity = _Identity(account.group(1), arn.group(1))
        with self._identities_lock:
            self._identities[access_key_id] = identity
        return identity

    def _proxy(self, method: str, path: str, headers: Message, body: bytes) -> _Response:
        # The original Host is kept: moto builds some URLs (queue URLs, ...) from it, and
        # they should point back at the front server.
        forwarded = [(k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP]
        try:
            status, response_headers, payload = self._send_to_moto(method, path, forwarded, body)
        except OSError as exc:
            logger.warning("moto unreachable: %s", exc)
            return _Response(502, [("Content-Type", "text/plain")], b"moto unreachable")
        kept = [(k, v) for k, v in response_headers if k.lower() not in HOP_BY_HOP]
        return _Response(status, kept, payload)

    def _send_to_moto(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self._moto_hostport()
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            has_host = any(name.lower() == "host" for name, _ in headers)
            connection.putrequest(method, path, skip_host=has_host, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() != "content-length":
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError as exc:
        raise _AwsError("SerializationException", "Request body is not valid JSON.") from exc
    if not isinstance(parsed, dict):
        raise _AwsError("SerializationException", "Request body must be a JSON object.")
    return parsed


def _looked_up_event_name(params: Mapping[str, Any]) -> str | None:
    attributes = params.get("LookupAttributes")
    if not isinstance(attributes, list):
        return None
    for item in attributes:
        item_map = _as_dict(item)
        if item_map.get("AttributeKey") == "EventName":
            value = item_map.get("AttributeValue")
            return value if isinstance(value, str) else None
    return None
