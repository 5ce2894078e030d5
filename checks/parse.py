"""Parse CloudTrail records into typed events. Pure: no I/O, no AWS calls.

Every value in a record can be chosen by whoever made the call, so each field is checked for
its type here, once; nothing downstream looks at the raw JSON again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from checks.model import Actor, ApiActivity, KeyEvent
from checks.timeutil import parse_create_date, parse_event_time

# Console sign-in shows up as one of these in userAgent or invokedBy.
CONSOLE_AGENTS = frozenset({"signin.amazonaws.com", "console.amazonaws.com"})


# Real eventIDs are UUIDs; the bound keeps an attacker-sized ID out of keys and button values.
MAX_EVENT_ID = 128


class MalformedRecord(ValueError):
    """A CloudTrail record that cannot be read as an event; the message says why."""


def parse_record(raw: str | bytes | Mapping[str, Any]) -> KeyEvent:
    """One CloudTrail record (the `CloudTrailEvent` JSON string, or a decoded dict)."""
    return _parse_mapping(_decode(raw))


def _decode(raw: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(raw, str | bytes):
        try:
            # orjson roughly halves the cost of a record end to end (bench/parse_classify.py);
            # the standard library takes what orjson refuses, such as integers over 64 bits.
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise MalformedRecord(f"not JSON: {exc}") from None
    else:
        record = raw
    if not isinstance(record, Mapping):
        raise MalformedRecord(f"expected a JSON object, got {type(record).__name__}")
    return record


def _parse_mapping(record: Mapping[str, Any]) -> KeyEvent:
    event_id = _required_str(record, "eventID")
    if len(event_id) > MAX_EVENT_ID:
        raise MalformedRecord(f"eventID is longer than {MAX_EVENT_ID} characters")
    event_name = _required_str(record, "eventName")
    event_time = _event_time(record)
    identity = record.get("userIdentity")
    if not isinstance(identity, Mapping):
        raise MalformedRecord("userIdentity is missing or not an object")
    user_agent = _opt_str(record, "userAgent")
    # CloudTrail writes sessionCredentialFromConsole at the top level of the record.
    from_console = _opt_flag(record, "sessionCredentialFromConsole") is True
    actor = _parse_actor(identity, user_agent, from_console)

    request = _opt_mapping(record, "requestParameters")
    response = _opt_mapping(record, "responseElements")
    access_key = _opt_mapping(response, "accessKey", "responseElements.")
    request_key = _opt_str(request, "accessKeyId", "requestParameters.")
    request_status = _opt_str(request, "status", "requestParameters.")
    create_date = _opt_str(access_key, "createDate", "responseElements.accessKey.")
    return KeyEvent(
        event_id=event_id,
        event_time=event_time,
        event_name=event_name,
        account_id=_opt_str(record, "recipientAccountId") or actor.account_id,
        region=_opt_str(record, "awsRegion"),
        actor=actor,
        request_user=_opt_str(request, "userName", "requestParameters."),
        response_user=_opt_str(access_key, "userName", "responseElements.accessKey."),
        access_key_id=_opt_str(access_key, "accessKeyId", "responseElements.accessKey.")
        or request_key,
        key_status=_opt_str(access_key, "status", "responseElements.accessKey.") or request_status,
        key_create_date=parse_create_date(create_date) if create_date else None,
        source_ip=_opt_str(record, "sourceIPAddress"),
        user_agent=user_agent,
        error_code=_opt_str(record, "errorCode"),
        error_message=_opt_str(record, "errorMessage"),
    )


def _event_time(record: Mapping[str, Any]) -> datetime:
    try:
        return parse_event_time(_required_str(record, "eventTime"))
    except ValueError as exc:
        raise MalformedRecord(f"eventTime: {exc}") from None


def _parse_actor(
    identity: Mapping[str, Any], user_agent: str | None, from_console: bool = False
) -> Actor:
    where = "userIdentity."
    actor_type = _required_str(identity, "type", where=where)
    arn = _opt_str(identity, "arn", where)
    invoked_by = _opt_str(identity, "invokedBy", where)
    session = _opt_mapping(identity, "sessionContext", where)
    attributes = _opt_mapping(session, "attributes", "userIdentity.sessionContext.")
    issuer = _opt_mapping(session, "sessionIssuer", "userIdentity.sessionContext.")
    mfa = _opt_flag(attributes, "mfaAuthenticated")
    from_console = from_console or _opt_flag(identity, "sessionCredentialFromConsole") is True
    return Actor(
        type=actor_type,
        arn=arn,
        name=actor_name(actor_type, arn, _opt_str(identity, "userName", where), invoked_by),
        account_id=_opt_str(identity, "accountId", where),
        access_key_id=_opt_str(identity, "accessKeyId", where),
        invoked_by=invoked_by,
        session_issuer_arn=_opt_str(issuer, "arn", "userIdentity.sessionContext.sessionIssuer."),
        mfa_authenticated=mfa,
        console_session=(
            from_console or user_agent in CONSOLE_AGENTS or invoked_by in CONSOLE_AGENTS
        ),
    )


def actor_name(
    actor_type: str, arn: str | None, user_name: str | None, invoked_by: str | None
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


def _required_str(record: Mapping[str, Any], key: str, where: str = "") -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        state = "missing" if value is None else f"not a non-empty string ({type(value).__name__})"
        raise MalformedRecord(f"{where}{key} is {state}")
    return value


def _opt_str(record: Mapping[str, Any] | None, key: str, where: str = "") -> str | None:
    """A string field, or None when absent, null or empty; any other type is malformed."""
    if record is None:
        return None
    value = record.get(key)
    if value.__class__ is str:  # the common case first: this runs ~20 times a record
        return value or None
    if value is None:
        return None
    raise MalformedRecord(f"{where}{key} is {type(value).__name__}, expected a string")


def _opt_flag(record: Mapping[str, Any] | None, key: str) -> bool | None:
    """A true/false field: CloudTrail writes "true"/"false" strings, exports JSON booleans."""
    if record is None:
        return None
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    raise MalformedRecord(f"{key} is {type(value).__name__}, expected true or false")


def _opt_mapping(
    record: Mapping[str, Any] | None, key: str, where: str = ""
) -> Mapping[str, Any] | None:
    if record is None:
        return None
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MalformedRecord(f"{where}{key} is {type(value).__name__}, expected an object")
    return value


def parse_activity(raw: str | bytes | Mapping[str, Any]) -> ApiActivity:
    """Any CloudTrail record, reduced to what a timeline of one key's use needs."""
    record = _decode(raw)
    event_time = _event_time(record)
    return ApiActivity(
        event_id=_required_str(record, "eventID"),
        event_time=event_time,
        event_source=_opt_str(record, "eventSource"),
        event_name=_required_str(record, "eventName"),
        region=_opt_str(record, "awsRegion"),
        account_id=_opt_str(record, "recipientAccountId"),
        source_ip=_opt_str(record, "sourceIPAddress"),
        user_agent=_opt_str(record, "userAgent"),
        error_code=_opt_str(record, "errorCode"),
    )
