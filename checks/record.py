"""A finding as JSON and back: the one place the finding's fields are listed.

`to_record` is CONTRACT section 2, what `keyhunt hunt --format jsonl` prints and what users'
scripts read. `to_stored` adds what keyhunt needs to show the finding again later (the
target user's keys as IAM listed them, the searched target, the event's detail the contract
leaves out); the store keeps that. `from_stored` reads either back into a `Finding`, including
records stored by keyhunt versions that kept the contract fields only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from checks.model import Actor, Finding, KeyEvent, KeyInfo, KeyRetirement, Severity, Target
from checks.timeutil import isoformat_z

# CONTRACT section 2, in its order: every key present, null when unknown.
FINDING_FIELDS: tuple[str, ...] = (
    "event_id",
    "event_time",
    "account_id",
    "region",
    "event_name",
    "actor_type",
    "actor_arn",
    "actor_name",
    "target_user",
    "access_key_id",
    "key_status",
    "key_create_date",
    "source_ip",
    "user_agent",
    "error_code",
    "severity",
    "reasons",
    "status",
    "malformed_fields",
    "account_name",
)
# Beyond the contract, kept by the store under "detail": the parsed event's other fields.
_EVENT_DETAIL = ("request_user", "response_user", "error_message")
_ACTOR_DETAIL = ("account_id", "access_key_id", "invoked_by", "session_issuer_arn")
_ACTOR_FLAGS = ("mfa_authenticated", "console_session")


def to_record(finding: Finding) -> dict[str, Any]:
    """CONTRACT section 2."""
    e = finding.event
    values: dict[str, Any] = {
        "event_id": e.event_id,
        "event_time": isoformat_z(e.event_time),
        "account_id": finding.account_id,
        "region": finding.region,
        "event_name": e.event_name,
        "actor_type": e.actor.type,
        "actor_arn": e.actor.arn,
        "actor_name": e.actor.name,
        "target_user": e.target_user,
        "access_key_id": e.access_key_id,
        "key_status": e.key_status,
        "key_create_date": _time(e.key_create_date),
        "source_ip": e.source_ip,
        "user_agent": e.user_agent,
        "error_code": e.error_code,
        "severity": finding.severity.value,
        "reasons": list(finding.reasons),
        "status": finding.status,
        "malformed_fields": list(e.problems),
        "account_name": finding.account_name,
    }
    return {name: values[name] for name in FINDING_FIELDS}


def to_stored(finding: Finding) -> dict[str, Any]:
    """The contract record plus what the store keeps to show the finding again."""
    e, actor = finding.event, finding.event.actor
    record = to_record(finding)
    if finding.user_keys is not None:
        record["user_keys"] = [_key(k) for k in finding.user_keys]
    if finding.retired:
        record["retired_keys"] = [
            {"access_key_id": r.access_key_id, "action": r.action, "at": isoformat_z(r.at)}
            for r in finding.retired
        ]
    if finding.followups:
        record["followups"] = list(finding.followups)
    if finding.target is not None:
        record["target"] = {
            "account_id": finding.target.account_id,
            "region": finding.target.region,
        }
    record["detail"] = {
        "event": {name: getattr(e, name) for name in _EVENT_DETAIL},
        "actor": {name: getattr(actor, name) for name in _ACTOR_DETAIL + _ACTOR_FLAGS},
    }
    return record


def from_stored(record: Mapping[str, Any]) -> Finding:
    """A `Finding` from `to_stored`'s output, or from a contract record alone.

    A contract record has no detail: the target user then stands for both the request's and
    the response's user name (so `target_user` reads back the same), and what is unknown is
    None. Raises ValueError (KeyError, TypeError) when a required field is missing or wrong.
    """
    detail: Mapping[str, Any] = record.get("detail") or {}
    about: Mapping[str, Any] = detail.get("event") or {}
    who: Mapping[str, Any] = detail.get("actor") or {}
    if "detail" not in record:
        target_user = _opt(record.get("target_user"))
        about = {"request_user": target_user, "response_user": target_user}
    actor = Actor(
        type=_opt(record.get("actor_type")),
        arn=_opt(record.get("actor_arn")),
        name=_opt(record.get("actor_name")),
        **{name: _opt(who.get(name)) for name in _ACTOR_DETAIL},
        mfa_authenticated=_opt_bool(who.get("mfa_authenticated")),
        console_session=who.get("console_session") is True,
    )
    event = KeyEvent(
        event_id=str(record["event_id"]),
        event_time=_parse_time(str(record["event_time"])),
        event_name=str(record.get("event_name") or "CreateAccessKey"),
        account_id=_opt(record.get("account_id")),
        region=_opt(record.get("region")),
        actor=actor,
        request_user=_opt(about.get("request_user")),
        response_user=_opt(about.get("response_user")),
        access_key_id=_opt(record.get("access_key_id")),
        key_status=_opt(record.get("key_status")),
        key_create_date=_opt_time(record.get("key_create_date")),
        source_ip=_opt(record.get("source_ip")),
        user_agent=_opt(record.get("user_agent")),
        error_code=_opt(record.get("error_code")),
        error_message=_opt(about.get("error_message")),
        problems=tuple(str(p) for p in _list(record.get("malformed_fields"))),
    )
    target = record.get("target")
    keys = record.get("user_keys")
    return Finding(
        event=event,
        severity=Severity.parse(str(record["severity"])),
        reasons=tuple(str(r) for r in _list(record.get("reasons"))),
        status=str(record.get("status") or "open"),
        target=Target(str(target["account_id"]), str(target["region"]))
        if isinstance(target, Mapping)
        else None,
        user_keys=tuple(_key_info(k) for k in _list(keys) if isinstance(k, Mapping))
        if keys is not None
        else None,
        account_name=_opt(record.get("account_name")),
        followups=tuple(str(f) for f in _list(record.get("followups"))),
        retired=tuple(
            KeyRetirement(_opt(r.get("access_key_id")), str(r["action"]), _parse_time(str(r["at"])))
            for r in _list(record.get("retired_keys"))
            if isinstance(r, Mapping)
        ),
    )


def _key(key: KeyInfo) -> dict[str, Any]:
    return {
        "access_key_id": key.access_key_id,
        "status": key.status,
        "create_date": _time(key.create_date),
    }


def _key_info(item: Mapping[str, Any]) -> KeyInfo:
    return KeyInfo(
        access_key_id=str(item.get("access_key_id") or ""),
        status=str(item.get("status") or ""),
        create_date=_opt_time(item.get("create_date")),
    )


def _time(value: datetime | None) -> str | None:
    return isoformat_z(value) if value is not None else None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _opt_time(value: object) -> datetime | None:
    return _parse_time(str(value)) if value else None


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()
