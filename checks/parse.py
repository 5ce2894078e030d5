"""Parse CloudTrail records into typed events. Pure: no I/O, no AWS calls.

Every value in a record can be chosen by whoever made the call, so each field is checked for
its type here, once; nothing downstream looks at the raw JSON again.

A field of the wrong type is dropped (None) and named in the event's `problems`
(`"<dotted.field>: <what was wrong>"`); the rest of the record is still used. A
CreateAccessKey record is never dropped once it is a JSON object: what it lacks (eventID,
eventTime, userIdentity) comes from the LookupEvents envelope when there is one, else is
made up deterministically and said so. Other records (key changes used as rotation
context, API calls in an investigation) still need an ID, a name and a time; without them they
are a MalformedRecord. Text that is not a JSON object at all is an UnreadableRecord.

Every string that leaves this module encodes as UTF-8: lone surrogates (which `json`
accepts and `orjson` refuses) are replaced by U+FFFD, and that too is a problem.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

import orjson

from checks.model import Actor, ApiActivity, KeyEvent
from checks.timeutil import parse_create_date, parse_event_time

_T = TypeVar("_T")
CREATE_ACCESS_KEY = "CreateAccessKey"

# The console's sign-in and console services, as userAgent or invokedBy: exactly one of these
# names (any case, optionally behind a region such as `us-east-1.console.aws.amazon.com`),
# never a longer text that merely contains one.
CONSOLE_AGENTS = frozenset(
    {
        "signin.amazonaws.com",
        "console.amazonaws.com",
        "signin.aws.amazon.com",
        "console.aws.amazon.com",
    }
)
# The console's own backend signs calls as "AWS Internal", and older records carry nothing else
# to say so. An AWS service acting for the caller names itself in invokedBy, and services
# call as AWSService: without either, "AWS Internal" from a person's principal is the console.
CONSOLE_INTERNAL_AGENT = "AWS Internal"
PERSON_TYPES = frozenset({"IAMUser", "Root", "AssumedRole", "FederatedUser", "IdentityCenterUser"})
_CONSOLE_AGENT = re.compile(
    r"(?:[a-z]{2}(?:-[a-z]+)+-\d\.)?(?:signin|console)\.(?:amazonaws\.com|aws\.amazon\.com)",
    re.ASCII,
)

# Real eventIDs are UUIDs; the bound keeps an attacker-sized ID out of keys and button values.
MAX_EVENT_ID = 128
# Problems are shown to people: a record cannot make the list, or one entry, unbounded.
MAX_PROBLEMS = 20
MAX_PROBLEM_LENGTH = 200
SYNTHETIC_ID_PREFIX = "malformed-"

_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_PROBLEM = "lone surrogate replaced by U+FFFD"


class MalformedRecord(ValueError):
    """A CloudTrail record that cannot be read as an event; the message says why."""


class UnreadableRecord(MalformedRecord):
    """Not a CloudTrail record at all: not JSON, not a JSON object, or no text."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What LookupEvents says about a record besides its `CloudTrailEvent` text."""

    event_id: str | None = None
    event_name: str | None = None
    event_time: datetime | None = None
    username: str | None = None  # "a user name or role name of the requester"
    access_key_id: str | None = None  # Resources: AWS::IAM::AccessKey
    user_name: str | None = None  # Resources: AWS::IAM::User
    problems: tuple[str, ...] = ()


NO_ENVELOPE = Envelope()


# ---------------------------------------------------------------------------- entry points


def parse_record(
    raw: str | bytes | Mapping[str, Any],
    envelope: Envelope | None = None,
    read_at: datetime | None = None,
) -> KeyEvent:
    """One CloudTrail record (the `CloudTrailEvent` JSON string, or a decoded dict).

    `envelope` is the LookupEvents entry around it (fallbacks for a CreateAccessKey record);
    `read_at` is the time shown when no event time can be found anywhere (default: now).
    """
    problems: list[str] = []
    record = _decode(raw, problems)
    return _parse_mapping(record, problems, envelope or NO_ENVELOPE, raw, read_at)


def parse_activity(
    raw: str | bytes | Mapping[str, Any], envelope: Envelope | None = None
) -> ApiActivity:
    """Any CloudTrail record, reduced to what a timeline of one key's use needs."""
    problems: list[str] = []
    record = _decode(raw, problems)
    env = envelope or NO_ENVELOPE
    problems.extend(env.problems)
    event_name = _required(record, "eventName", problems)
    if event_name is None:
        if env.event_name is None:
            raise MalformedRecord(problems[-1])
        event_name = env.event_name
    event_id = _event_id(record, problems, env, raw, required=True)
    event_time = _event_time(record, problems, env, None, required=True)
    return ApiActivity(
        event_id=event_id,
        event_time=event_time,
        event_source=_opt_str(record, "eventSource", problems),
        event_name=event_name,
        region=_opt_str(record, "awsRegion", problems),
        account_id=_opt_str(record, "recipientAccountId", problems),
        source_ip=_opt_str(record, "sourceIPAddress", problems),
        user_agent=_opt_str(record, "userAgent", problems),
        error_code=_opt_str(record, "errorCode", problems),
        problems=_bounded(problems),
        request=_request_parameters(record),
    )


def _request_parameters(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """What the call asked for; readers look up keys and treat every value as untrusted."""
    request = record.get("requestParameters")
    return MappingProxyType(dict(request)) if isinstance(request, dict) else None


def parse_envelope(entry: Mapping[str, Any]) -> Envelope:
    """The fields of a LookupEvents `Events` entry keyhunt can fall back on. Never raises."""
    problems: list[str] = []
    event_time = entry.get("EventTime")
    when: datetime | None = None
    if isinstance(event_time, datetime):  # botocore parses the epoch seconds into one
        when = event_time if event_time.tzinfo else event_time.replace(tzinfo=UTC)
        when = when.astimezone(UTC)
    elif isinstance(event_time, int | float) and not isinstance(event_time, bool):
        try:
            when = datetime.fromtimestamp(event_time, UTC)
        except (ValueError, OverflowError, OSError):
            problems.append("LookupEvents EventTime: out of range")
    elif isinstance(event_time, str):
        try:
            when = parse_event_time(event_time)
        except ValueError:
            problems.append("LookupEvents EventTime: unrecognised")
    access_key_id = user_name = None
    resources = entry.get("Resources")
    for item in resources if isinstance(resources, list) else ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("ResourceType")
        if kind == "AWS::IAM::AccessKey" and access_key_id is None:
            access_key_id = _envelope_str(item, "ResourceName", problems, "Resources.")
        elif kind == "AWS::IAM::User" and user_name is None:
            user_name = _envelope_str(item, "ResourceName", problems, "Resources.")
    event_id = _envelope_str(entry, "EventId", problems)
    if event_id is not None and len(event_id) > MAX_EVENT_ID:
        problems.append(f"LookupEvents EventId: longer than {MAX_EVENT_ID} characters")
        event_id = None
    return Envelope(
        event_id=event_id,
        event_name=_envelope_str(entry, "EventName", problems),
        event_time=when,
        username=_envelope_str(entry, "Username", problems),
        access_key_id=access_key_id,
        user_name=user_name,
        problems=tuple(problems),
    )


def key_event_from_envelope(
    envelope: Envelope,
    raw: object,
    problem: str,
    read_at: datetime | None = None,
) -> KeyEvent:
    """A CreateAccessKey whose record could not be read at all, from what LookupEvents says
    about it: every field it cannot tell is None, and `problem` says what went wrong."""
    problems = [f"CloudTrailEvent: {problem}", *envelope.problems]
    event_id = envelope.event_id or synthetic_event_id(raw)
    if envelope.event_id is None:
        problems.append("eventID: unknown (an ID was made from the record's text)")
    event_time = envelope.event_time
    if event_time is None:
        event_time = read_at or datetime.now(UTC)
        problems.append("eventTime: unknown (the time it was read is shown)")
    return KeyEvent.partial(
        event_id,
        event_time,
        _bounded(problems),
        event_name=envelope.event_name or CREATE_ACCESS_KEY,
        actor=Actor.unknown(envelope.username),
        request_user=envelope.user_name,
        access_key_id=envelope.access_key_id,
    )


def synthetic_event_id(raw: object) -> str:
    """A deterministic stand-in for a missing eventID, so re-reads de-duplicate."""
    if isinstance(raw, bytes):
        data = raw
    elif isinstance(raw, str):
        data = raw.encode("utf-8", "surrogatepass")
    else:  # a decoded record: the ID it would have had as the JSON text LookupEvents sends
        try:
            text = json.dumps(raw, default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(raw)
        data = text.encode("utf-8", "surrogatepass")
    return SYNTHETIC_ID_PREFIX + hashlib.sha256(data).hexdigest()[:32]


def is_console_agent(text: str | None) -> bool:
    """userAgent or invokedBy names the console's sign-in or console service, exactly."""
    if text is None or len(text) > 64 or not text.isascii():
        return False
    value = text.strip().lower()
    return value in CONSOLE_AGENTS or _CONSOLE_AGENT.fullmatch(value) is not None


# ---------------------------------------------------------------------------- decoding


def _kind_of(value: object) -> str:
    """The value's kind, as a problem line names it. A number is a "number" whatever Python
    made of it: orjson reads an integer over 64 bits as a float, the standard library as an
    int, and the same record must read the same either way."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return type(value).__name__


def _decode(raw: str | bytes | Mapping[str, Any], problems: list[str]) -> Mapping[str, Any]:
    if isinstance(raw, str | bytes):
        try:
            # orjson roughly halves the cost of a record end to end (bench/parse_classify.py)
            # and refuses lone surrogates, so what it returns needs no further check. The
            # standard library takes what orjson refuses (integers over 64 bits, surrogates).
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise UnreadableRecord(f"not JSON: {exc}") from None
            record = _without_surrogates(record, problems)
    elif isinstance(raw, Mapping):
        record = _without_surrogates(raw, problems)
    else:
        record = raw
    if not isinstance(record, Mapping):
        raise UnreadableRecord(f"expected a JSON object, got {_kind_of(record)}")
    return record


def _without_surrogates(value: Any, problems: list[str]) -> Any:
    try:
        return _scrub(value, "", problems)
    except RecursionError:
        raise UnreadableRecord("nested too deeply to check") from None


def _scrub(value: Any, path: str, problems: list[str]) -> Any:
    """`value` with every lone surrogate in every string, keys included, replaced by U+FFFD;
    the very same object when there is none (the usual case: nothing is copied)."""
    if isinstance(value, str):
        if value.isascii() or _SURROGATE.search(value) is None:
            return value
        problems.append(f"{path or 'record'}: {SURROGATE_PROBLEM}")
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        copied: dict[Any, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            name = key
            if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                name = _SURROGATE.sub("\ufffd", key)
                problems.append(f"{_join(path, name)}: {SURROGATE_PROBLEM} in the field name")
            clean = _scrub(item, _join(path, name), problems)
            if copied is None and (name is not key or clean is not item):
                copied = dict(list(value.items())[:index])
            if copied is not None:
                copied[name] = clean
        return value if copied is None else copied
    if isinstance(value, list):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            clean = _scrub(item, f"{path}[{index}]", problems)
            if items is None and clean is not item:
                items = list(value[:index])
            if items is not None:
                items.append(clean)
        return value if items is None else items
    return value


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# ---------------------------------------------------------------------------- key events


def _parse_mapping(
    record: Mapping[str, Any],
    problems: list[str],
    env: Envelope,
    raw: object,
    read_at: datetime | None,
) -> KeyEvent:
    problems.extend(env.problems)
    event_name = _required(record, "eventName", problems)
    create = event_name == CREATE_ACCESS_KEY or env.event_name == CREATE_ACCESS_KEY
    if create and event_name != CREATE_ACCESS_KEY:
        if event_name is not None:  # LookupEvents was asked for CreateAccessKey: it is one
            problems.append(f"eventName: {_shown(event_name)}, LookupEvents says CreateAccessKey")
        event_name = CREATE_ACCESS_KEY
    elif event_name is None:
        if env.event_name is None:
            raise MalformedRecord(problems[-1])
        event_name = env.event_name
    event_id = _event_id(record, problems, env, raw, required=not create)
    event_time = _event_time(record, problems, env, read_at, required=not create)

    identity = record.get("userIdentity")
    if not isinstance(identity, Mapping):
        problems.append(f"userIdentity: {_not_an_object(identity)}")
        identity = None
    user_agent = _opt_str(record, "userAgent", problems)
    # CloudTrail writes sessionCredentialFromConsole at the top level of the record.
    console_flag = _opt_flag(record, "sessionCredentialFromConsole", problems)
    if identity is None:
        actor = Actor.unknown(env.username)
    else:
        actor = _parse_actor(identity, user_agent, console_flag, problems)

    request = _opt_mapping(record, "requestParameters", problems)
    response = _opt_mapping(record, "responseElements", problems)
    access_key = _opt_mapping(response, "accessKey", problems, "responseElements.")
    request_key = _opt_str(request, "accessKeyId", problems, "requestParameters.")
    request_status = _opt_str(request, "status", problems, "requestParameters.")
    request_user = _opt_str(request, "userName", problems, "requestParameters.")
    response_user = _opt_str(access_key, "userName", problems, "responseElements.accessKey.")
    key_id = _opt_str(access_key, "accessKeyId", problems, "responseElements.accessKey.")
    create_date = _opt_str(access_key, "createDate", problems, "responseElements.accessKey.")
    key_create_date = None
    if create_date:
        key_create_date = parse_create_date(create_date)
        if key_create_date is None:
            problems.append(
                f"responseElements.accessKey.createDate: unrecognised date {_shown(create_date)}"
            )
    if create and problems and _lost(problems, ("requestParameters", "responseElements")):
        # What LookupEvents derived from the request and response, for what was dropped.
        if key_id is None and request_key is None:
            key_id = env.access_key_id
        if request_user is None and response_user is None:
            request_user = env.user_name
    return KeyEvent(
        event_id=event_id,
        event_time=event_time,
        event_name=event_name,
        account_id=_opt_str(record, "recipientAccountId", problems) or actor.account_id,
        region=_opt_str(record, "awsRegion", problems),
        actor=actor,
        request_user=request_user,
        response_user=response_user,
        access_key_id=key_id or request_key,
        key_status=_opt_str(access_key, "status", problems, "responseElements.accessKey.")
        or request_status,
        key_create_date=key_create_date,
        source_ip=_opt_str(record, "sourceIPAddress", problems),
        user_agent=user_agent,
        error_code=_opt_str(record, "errorCode", problems),
        error_message=_opt_str(record, "errorMessage", problems),
        problems=_bounded(problems) if problems else (),
    )


def _event_id(
    record: Mapping[str, Any],
    problems: list[str],
    env: Envelope,
    raw: object,
    required: bool,
) -> str:
    value = record.get("eventID")
    if value.__class__ is str and value and len(value) <= MAX_EVENT_ID:
        return value
    if value.__class__ is str and value:
        why = f"longer than {MAX_EVENT_ID} characters"
    else:
        why = _not_a_string(value)
    listed = _listed_instead("eventID", why, env.event_id, "EventId", required, problems)
    if listed is not None:
        return listed
    problems.append(f"eventID: {why} (an ID was made from the record's text)")
    return synthetic_event_id(raw)


def _event_time(
    record: Mapping[str, Any],
    problems: list[str],
    env: Envelope,
    read_at: datetime | None,
    required: bool,
) -> datetime:
    value = record.get("eventTime")
    if value.__class__ is str and value:
        try:
            return parse_event_time(value)
        except ValueError as exc:
            why = str(exc)
    else:
        why = _not_a_string(value)
    listed = _listed_instead("eventTime", why, env.event_time, "EventTime", required, problems)
    if listed is not None:
        return listed
    problems.append(f"eventTime: {why} (the time it was read is shown)")
    # Whole seconds, as CloudTrail writes times: the finding then reads back as it was stored.
    return (read_at or datetime.now(UTC)).replace(microsecond=0)


def _listed_instead(
    field: str,
    why: str,
    listed: _T | None,
    listed_as: str,
    required: bool,
    problems: list[str],
) -> _T | None:
    """What LookupEvents listed for an unreadable `field`, noted as a problem; None when it
    listed nothing and the caller may make a value up. Raises when the field is required."""
    if listed is not None:
        problems.append(f"{field}: {why} (LookupEvents' {listed_as} used)")
        return listed
    if required:
        raise MalformedRecord(f"{field}: {why}")
    return None


def _parse_actor(
    identity: Mapping[str, Any],
    user_agent: str | None,
    console_flag: bool | None,
    problems: list[str],
) -> Actor:
    where = "userIdentity."
    actor_type = _required(identity, "type", problems, where)
    arn = _opt_str(identity, "arn", problems, where)
    invoked_by = _opt_str(identity, "invokedBy", problems, where)
    session = _opt_mapping(identity, "sessionContext", problems, where)
    attributes = _opt_mapping(session, "attributes", problems, "userIdentity.sessionContext.")
    issuer = _opt_mapping(session, "sessionIssuer", problems, "userIdentity.sessionContext.")
    mfa = _opt_flag(
        attributes, "mfaAuthenticated", problems, "userIdentity.sessionContext.attributes."
    )
    if console_flag is None:
        console_flag = _opt_flag(identity, "sessionCredentialFromConsole", problems, where)
    user_name = _opt_str(identity, "userName", problems, where)
    return Actor(
        type=actor_type,
        arn=arn,
        name=actor_name(actor_type, arn, user_name, invoked_by),
        account_id=_opt_str(identity, "accountId", problems, where),
        access_key_id=_opt_str(identity, "accessKeyId", problems, where),
        invoked_by=invoked_by,
        session_issuer_arn=_opt_str(
            issuer, "arn", problems, "userIdentity.sessionContext.sessionIssuer."
        ),
        mfa_authenticated=mfa,
        console_session=(
            console_flag is True
            or is_console_agent(user_agent)
            or is_console_agent(invoked_by)
            or (
                console_flag is None  # a record that says "not from the console" is believed
                and user_agent == CONSOLE_INTERNAL_AGENT
                and invoked_by is None
                and actor_type in PERSON_TYPES
            )
        ),
    )


def actor_name(
    actor_type: str | None, arn: str | None, user_name: str | None, invoked_by: str | None
) -> str | None:
    """The name a person would use for the caller (CONTRACT section 2, `actor_name`).

    The ARN is preferred to `userName` because it is what IAM itself resolved; the last
    path element is the name, so `user/dept/bob` is `bob`, never `dept/bob`.
    """
    if actor_type == "Root":
        return "root"
    resource = arn.split(":", 5)[5] if arn and arn.count(":") >= 5 else None
    if actor_type == "IAMUser" and resource and resource.startswith("user/"):
        return resource.rsplit("/", 1)[1] or user_name
    if actor_type == "AssumedRole" and resource and resource.startswith("assumed-role/"):
        parts = resource.split("/")
        return parts[2] if len(parts) >= 3 and parts[2] else user_name
    if actor_type == "FederatedUser" and resource and resource.startswith("federated-user/"):
        return resource.split("/", 1)[1] or user_name
    if actor_type == "AWSService":
        return invoked_by or user_name
    return user_name


# ---------------------------------------------------------------------------- fields


def _required(
    record: Mapping[str, Any], key: str, problems: list[str], where: str = ""
) -> str | None:
    """A field that must be a non-empty string: its value, or None with the problem noted."""
    value = record.get(key)
    if value.__class__ is str and value:
        return value
    problems.append(f"{where}{key}: {_not_a_string(value)}")
    return None


def _opt_str(
    record: Mapping[str, Any] | None, key: str, problems: list[str], where: str = ""
) -> str | None:
    """A string field, or None when absent, null or empty; any other type is dropped and
    named in `problems`."""
    if record is None:
        return None
    value = record.get(key)
    if value.__class__ is str:  # the common case first: this runs ~20 times a record
        return value or None
    if value is None:
        return None
    problems.append(f"{where}{key}: {_kind_of(value)}, expected a string")
    return None


def _opt_flag(
    record: Mapping[str, Any] | None, key: str, problems: list[str], where: str = ""
) -> bool | None:
    """A true/false field: CloudTrail writes "true"/"false" strings, exports JSON booleans."""
    if record is None:
        return None
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    problems.append(f"{where}{key}: {_kind_of(value)}, expected true or false")
    return None


def _opt_mapping(
    record: Mapping[str, Any] | None, key: str, problems: list[str], where: str = ""
) -> Mapping[str, Any] | None:
    if record is None:
        return None
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(f"{where}{key}: {_kind_of(value)}, expected an object")
        return None
    return value


def _envelope_str(
    entry: Mapping[str, Any], key: str, problems: list[str], where: str = ""
) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"LookupEvents {where}{key}: {_kind_of(value)}, expected a string")
        return None
    if not value.isascii() and _SURROGATE.search(value):
        problems.append(f"LookupEvents {where}{key}: {SURROGATE_PROBLEM}")
        return _SURROGATE.sub("\ufffd", value)
    return value


def _lost(problems: list[str], fields: tuple[str, ...]) -> bool:
    """Whether a problem was noted in (or under) one of `fields`."""
    return any(p.startswith(fields) for p in problems)


def _not_a_string(value: object) -> str:
    if value is None:
        return "missing"
    if value == "":
        return "empty"
    return f"{_kind_of(value)}, expected a string"


def _not_an_object(value: object) -> str:
    return "missing" if value is None else f"{_kind_of(value)}, expected an object"


def _shown(text: str, limit: int = 40) -> str:
    """A bounded repr of a value for a problem line (it is shown, escaped, to people)."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _bounded(problems: list[str]) -> tuple[str, ...]:
    shown = [
        p if len(p) <= MAX_PROBLEM_LENGTH else p[: MAX_PROBLEM_LENGTH - 1] + "…"
        for p in dict.fromkeys(problems)  # one line per problem, first seen first
    ]
    if len(shown) > MAX_PROBLEMS:
        more = len(shown) - (MAX_PROBLEMS - 1)
        shown = [*shown[: MAX_PROBLEMS - 1], f"record: {more} more problems not listed"]
    return tuple(shown)
