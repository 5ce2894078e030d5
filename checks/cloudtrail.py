"""Read CloudTrail's LookupEvents: one attribute, explicit window, 50 a page, every page.

Pages stream out as they arrive; each `CloudTrailEvent` is parsed once, here. A record read
only in part is counted (`malformed`) and used; a record that is not JSON at all is counted
(`unreadable`) and logged, and still becomes a CreateAccessKey event from the LookupEvents
envelope when the envelope says it is one. Nothing loses the rest of its page.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from checks.awserror import AwsReadFailed, error_of, retries_of
from checks.model import HuntStats, KeyEvent, Window
from checks.parse import (
    CREATE_ACCESS_KEY,
    MalformedRecord,
    UnreadableRecord,
    key_event_from_envelope,
    parse_envelope,
    parse_record,
)
from checks.ratelimit import RateLimiter
from checks.sessions import calling_for

log = logging.getLogger(__name__)

# The limiters of each botocore client, by operation (each hooked once), then by the account
# it calls for: clients are cached and shared between hunts, and a role account's are shared
# with every other role account (checks.sessions), so the hooks pick the calling account's.
_Limiters = dict[str | None, RateLimiter]
_gates: weakref.WeakKeyDictionary[Any, dict[str, _Limiters]] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()

PAGE_SIZE = 50  # LookupEvents' maximum
# How long after the answer of the call `rate` calls back the next may go (RateLimiter's
# window): no more than `rate` calls ever arrive within one second, whatever the delays.
LOOKUP_WINDOW = 1.0
THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


@dataclass(frozen=True, slots=True)
class Throttling:
    """How long to keep retrying a throttled target before calling it unreadable."""

    deadline_seconds: float = 120.0
    first_backoff: float = 0.5
    max_backoff: float = 8.0


def gate_client(
    client: Any,
    rate_per_second: float,
    operation: str = "cloudtrail.LookupEvents",
    window_seconds: float | None = LOOKUP_WINDOW,
) -> RateLimiter:
    """Route every `operation` HTTP attempt of this client's account, retries included,
    through one limiter, however many hunts use the client at once (one limiter per account
    and operation: a CloudTrail client's LookupEvents, an IAM client's calls, never both on
    one gate).

    `before-send` fires once per attempt, so botocore's own retries are held to the rate
    too, and `response-received` once per attempt on the same thread, failed or not: it
    stamps the answer the limiter's window counts from. The hooks are registered once per
    botocore client and operation, and find the limiter of the account the calling thread
    calls for (`calling_for`; None for the caller's own clients, which are not shared).
    """
    shared = getattr(client, "shared", client)  # an AccountClient's botocore client
    account: str | None = getattr(client, "account_id", None)
    with _gates_lock:
        operations = _gates.setdefault(shared, {})
        limiters = operations.get(operation)
        if limiters is None:
            limiters = operations[operation] = {}
            _hook(shared, operation, limiters)
        limiter = limiters.get(account)
        if limiter is None:
            limiter = limiters[account] = RateLimiter(
                rate_per_second, window_seconds=window_seconds
            )
        return limiter


def _hook(shared: Any, operation: str, limiters: _Limiters) -> None:
    in_flight = threading.local()

    def before_send(**_: Any) -> None:
        gate = limiters.get(calling_for())
        in_flight.held = None if gate is None else (gate, gate.acquire())

    def response_received(**_: Any) -> None:
        held = getattr(in_flight, "held", None)
        if held is not None:
            in_flight.held = None
            gate, slot = held
            gate.answered(slot)

    shared.meta.events.register(f"before-send.{operation}", before_send)
    shared.meta.events.register(f"response-received.{operation}", response_received)


def fetch_pages(
    client: Any,
    attribute: tuple[str, str],
    window: Window,
    stats: HuntStats,
    throttling: Throttling = Throttling(),
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[dict[str, Any]]]:
    """Yield LookupEvents pages (lists of `Events` entries), newest first, following NextToken."""
    params: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": attribute[0], "AttributeValue": attribute[1]}],
        "StartTime": window.start,
        "EndTime": window.end,
        "MaxResults": PAGE_SIZE,
    }
    while True:
        page = _call_with_backoff(client, params, stats, throttling, sleep)
        yield list(page.get("Events", []))
        token = page.get("NextToken")
        if not token:
            return
        params["NextToken"] = token


def fetch_events(
    client: Any,
    attribute: tuple[str, str],
    window: Window,
    stats: HuntStats,
    throttling: Throttling = Throttling(),
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[KeyEvent]:
    """Parsed events, newest first; see parse_entry for what is counted and skipped."""
    for page in fetch_pages(client, attribute, window, stats, throttling, sleep):
        for entry in page:
            stats.events_read += 1
            event = parse_entry(entry, stats)
            if event is not None:
                yield event


def parse_entry(
    entry: Mapping[str, Any],
    stats: HuntStats | None = None,
    read_at: datetime | None = None,
) -> KeyEvent | None:
    """One LookupEvents `Events` entry as a KeyEvent. Never raises.

    A CreateAccessKey (by the record's eventName or the envelope's EventName) is always an
    event, whatever its CloudTrailEvent holds; what could not be read is in its `problems`.
    Any other record is None when it cannot be used (not JSON, or no ID, name or time).
    `stats.unreadable` counts text that is not a JSON object, `stats.malformed` the rest that
    was read only in part.
    """
    envelope = parse_envelope(entry)
    raw = entry.get("CloudTrailEvent")
    try:
        if not isinstance(raw, str | bytes):
            kind = "missing" if raw is None else f"{type(raw).__name__}, expected a string"
            raise UnreadableRecord(kind)
        event = parse_record(raw, envelope, read_at)
    except UnreadableRecord as exc:
        if stats is not None:
            stats.unreadable += 1
        # %r keeps attacker-chosen text on one line in the log.
        log.warning("unreadable CloudTrail record %r: %s", envelope.event_id, exc)
        if envelope.event_name != CREATE_ACCESS_KEY:
            return None
        return key_event_from_envelope(envelope, raw, str(exc), read_at)
    except MalformedRecord as exc:
        if stats is not None:
            stats.malformed += 1
        log.warning("skipped malformed CloudTrail record %r: %s", envelope.event_id, exc)
        return None
    if event.problems:
        if stats is not None:
            stats.malformed += 1
        listed = envelope.event_id
        if listed is None or listed == event.event_id:
            log.warning("CloudTrail record %r read in part: %r", event.event_id, event.problems)
        else:
            log.warning(
                "CloudTrail record %r (LookupEvents EventId %r) read in part: %r",
                event.event_id,
                listed,
                event.problems,
            )
    return event


def _call_with_backoff(
    client: Any,
    params: dict[str, Any],
    stats: HuntStats,
    throttling: Throttling,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    started = time.monotonic()
    backoff = throttling.first_backoff
    while True:
        try:
            page: dict[str, Any] = client.lookup_events(**params)
            retries = retries_of(page)
            stats.lookup_calls += 1 + retries  # HTTP attempts, botocore's retries included
            stats.throttled += retries
            return page
        except ClientError as exc:
            code, message = error_of(exc)
            retries = retries_of(exc.response)
            stats.lookup_calls += 1 + retries
            if code not in THROTTLE_CODES:
                raise AwsReadFailed(code, message) from None
            stats.throttled += 1 + retries
            waited = time.monotonic() - started
            if waited + backoff > throttling.deadline_seconds:
                raise AwsReadFailed(
                    "Throttled",
                    f"still throttled after {waited:.0f}s (deadline "
                    f"{throttling.deadline_seconds:.0f}s)",
                ) from None
            log.info("LookupEvents throttled; retrying in %.1fs", backoff)
            sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
            backoff = min(backoff * 2, throttling.max_backoff)
        except BotoCoreError as exc:
            raise AwsReadFailed("EndpointError", str(exc)) from None
