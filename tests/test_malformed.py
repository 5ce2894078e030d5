"""Every key, once, ever: a CreateAccessKey event we could not fully read is still a finding.

parse_entry reads one LookupEvents `Events` entry (EventId, EventName, EventTime, Username,
Resources, CloudTrailEvent): what the record itself lacks comes from that envelope, what
nothing says is null (an ID is made from the record's text, the time is when it was read), and
the finding says so with reason `malformed` and its `malformed_fields`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from checks.classify import classify
from checks.cloudtrail import parse_entry
from checks.hunt import _merge, _TargetOutcome
from checks.model import HUNT_STAT_FIELDS, HuntStats, KeyEvent, Severity, Target
from checks.rules import RuleContext
from tests.samples import fixture_case, fixture_record

SSO = "key_for_other_user/positive_sso_session_for_deploy_bot"
TARGET = Target("222222222222", "us-east-1")
READ_AT = datetime(2026, 11, 29, 21, 50, tzinfo=UTC)
LOOKED_UP_AT = datetime(2026, 11, 29, 21, 47, 48, tzinfo=UTC)  # botocore parses EventTime
KEY = "AKIAETQ6BWL7OAL4WFO2"


def entry(
    raw: object,
    *,
    name: str | None = "CreateAccessKey",
    event_id: str | None = "9f1b7c2e-5d4a-4e8b-b6a1-2c3d4e5f6a7b",
    at: object = LOOKED_UP_AT,
    username: str | None = "alice",
    key: str | None = KEY,
    user: str | None = "deploy-bot",
) -> dict[str, Any]:
    """A LookupEvents entry as botocore returns it (see dev/keyhunt_dev/aws.py `to_api`)."""
    out: dict[str, Any] = {"ReadOnly": "false", "EventSource": "iam.amazonaws.com"}
    if event_id is not None:
        out["EventId"] = event_id
    if name is not None:
        out["EventName"] = name
    if at is not None:
        out["EventTime"] = at
    if username is not None:
        out["Username"] = username
    resources = []
    if key is not None:
        resources.append({"ResourceType": "AWS::IAM::AccessKey", "ResourceName": key})
    if user is not None:
        resources.append({"ResourceType": "AWS::IAM::User", "ResourceName": user})
    out["Resources"] = resources
    if raw is not None:
        out["CloudTrailEvent"] = raw
    return out


def read(raw: object, **envelope: Any) -> tuple[KeyEvent | None, HuntStats]:
    stats = HuntStats()
    return parse_entry(entry(raw, **envelope), stats, read_at=READ_AT), stats


# ---------------------------------------------------------------------------- unreadable text

NOT_A_RECORD = [
    ('{"eventVersion": "1.09", "eventName": "CreateAc', "CloudTrailEvent: not JSON: "),
    ("", "CloudTrailEvent: not JSON: "),
    (b"\xff\xfe\x00", "CloudTrailEvent: not JSON: "),
    ('["CreateAccessKey"]', "CloudTrailEvent: expected a JSON object, got list"),
    ("null", "CloudTrailEvent: expected a JSON object, got NoneType"),
    (None, "CloudTrailEvent: missing"),
    (12, "CloudTrailEvent: int, expected a string"),
]


@pytest.mark.parametrize(
    ("raw", "problem"), NOT_A_RECORD, ids=[repr(r)[:20] for r, _ in NOT_A_RECORD]
)
def test_an_unreadable_create_access_key_is_built_from_the_envelope(
    raw: object, problem: str
) -> None:
    event, stats = read(raw)

    assert event is not None
    assert (stats.unreadable, stats.malformed) == (1, 0)
    assert event.problems[0].startswith(problem)
    assert event.event_id == "9f1b7c2e-5d4a-4e8b-b6a1-2c3d4e5f6a7b"
    assert event.event_time == LOOKED_UP_AT
    assert event.event_name == "CreateAccessKey"
    assert (event.actor.type, event.actor.arn, event.actor.name) == (None, None, "alice")
    assert (event.access_key_id, event.target_user) == (KEY, "deploy-bot")

    finding = classify(event, target=TARGET)
    assert (finding.severity, finding.reasons) == (Severity.MEDIUM, ("malformed",))
    record = finding.to_record()
    assert record["malformed_fields"] == list(event.problems)
    assert (record["account_id"], record["region"]) == ("222222222222", "us-east-1")
    assert (record["actor_type"], record["actor_arn"], record["user_agent"]) == (None, None, None)
    assert record["access_key_id"] == KEY


@pytest.mark.parametrize("name", ["UpdateAccessKey", "DeleteAccessKey", None])
def test_other_unreadable_records_are_counted_and_skipped(name: str | None) -> None:
    event, stats = read("{not json", name=name)
    assert event is None
    assert (stats.unreadable, stats.malformed) == (1, 0)


def test_nothing_in_the_envelope_either() -> None:
    """No EventId, no EventTime, no Resources: an ID made from the text, the time it was
    read, and both said; the same text always gets the same ID, so re-reads de-duplicate."""
    raw = '{"eventName": "CreateAccessKey", "userAgent": '
    event, _ = read(raw, event_id=None, at=None, username=None, key=None, user=None)
    again, _ = read(raw, event_id=None, at=None, username=None, key=None, user=None)

    assert event is not None
    assert again is not None
    digest = hashlib.sha256(raw.encode()).hexdigest()[:32]
    assert event.event_id == again.event_id == f"malformed-{digest}"
    assert event.event_time == READ_AT
    assert "eventID: unknown (an ID was made from the record's text)" in event.problems
    assert "eventTime: unknown (the time it was read is shown)" in event.problems
    other, _ = read(raw + " ", event_id=None, at=None)
    assert other is not None
    assert other.event_id != event.event_id


# ---------------------------------------------------------------------------- read in part


def test_a_record_without_id_time_or_identity_falls_back_to_the_envelope() -> None:
    record = fixture_record(SSO)
    for name in ("eventID", "eventTime", "userIdentity"):
        del record[name]
    event, stats = read(json.dumps(record))

    assert event is not None
    assert (stats.malformed, stats.unreadable) == (1, 0)
    assert event.event_id == "9f1b7c2e-5d4a-4e8b-b6a1-2c3d4e5f6a7b"
    assert event.event_time == LOOKED_UP_AT
    assert event.problems == (
        "eventID: missing (LookupEvents' EventId used)",
        "eventTime: missing (LookupEvents' EventTime used)",
        "userIdentity: missing",
    )
    assert (event.actor.type, event.actor.name) == (None, "alice")
    # What the record still says is used as usual.
    assert (event.account_id, event.target_user, event.access_key_id) == (
        "222222222222",
        "deploy-bot",
        KEY,
    )
    finding = classify(event)
    assert (finding.severity, finding.reasons) == (Severity.MEDIUM, ("malformed",))


def test_a_record_without_id_or_time_and_no_envelope_values() -> None:
    record = fixture_record(SSO)
    record["eventID"] = 12345
    record["eventTime"] = "yesterday"
    event, _ = read(json.dumps(record), event_id=None, at=None)

    assert event is not None
    assert re.fullmatch(r"malformed-[0-9a-f]{32}", event.event_id)
    assert event.event_time == READ_AT
    assert event.problems == (
        "eventID: number, expected a string (an ID was made from the record's text)",
        "eventTime: unrecognised event time 'yesterday' (the time it was read is shown)",
    )
    assert classify(event).reasons == ("key_for_other_user", "malformed")


def test_dropped_response_falls_back_to_the_envelope_resources() -> None:
    record = fixture_record(SSO)
    record["responseElements"] = "AKIA..."
    record["requestParameters"] = ["deploy-bot"]
    event, _ = read(json.dumps(record), key=KEY, user="deploy-bot")
    assert event is not None
    assert (event.access_key_id, event.target_user) == (KEY, "deploy-bot")


def test_a_readable_record_ignores_the_envelope_resources() -> None:
    """Nothing was dropped: the record's own fields are the truth."""
    event, stats = read(json.dumps(fixture_record(SSO)), key="AKIAXXXXXXXXXXXXXXXX", user="eve")
    assert event == fixture_case(SSO).event()
    assert (stats.malformed, stats.unreadable) == (0, 0)


def test_the_envelope_name_makes_it_a_create_access_key() -> None:
    record = fixture_record(SSO)
    del record["eventName"]
    event, _ = read(json.dumps(record))
    assert event is not None
    assert event.event_name == "CreateAccessKey"
    assert event.problems == ("eventName: missing",)
    record["eventName"] = "UpdateAccessKey"  # LookupEvents was asked for CreateAccessKey
    event, _ = read(json.dumps(record))
    assert event is not None
    assert event.event_name == "CreateAccessKey"
    assert event.problems == ("eventName: 'UpdateAccessKey', LookupEvents says CreateAccessKey",)


def test_key_changes_fall_back_to_the_envelope_but_need_a_time() -> None:
    change = fixture_case("likely_rotation/positive_self_deactivates_old_key_10m_after").changes[0]
    change = dict(change)
    del change["eventID"]
    event, stats = read(json.dumps(change), name=change["eventName"])
    assert event is not None
    assert event.event_id == "9f1b7c2e-5d4a-4e8b-b6a1-2c3d4e5f6a7b"
    assert stats.malformed == 1
    del change["eventTime"]
    event, stats = read(json.dumps(change), name=change["eventName"], at=None)
    assert event is None
    assert (stats.malformed, stats.unreadable) == (1, 0)


@pytest.mark.parametrize(
    "at",
    [
        LOOKED_UP_AT,
        LOOKED_UP_AT.replace(tzinfo=None),  # naive: UTC
        LOOKED_UP_AT.astimezone(timezone(timedelta(hours=2))),
        LOOKED_UP_AT.timestamp(),
        "2026-11-29T21:47:48Z",
    ],
    ids=["aware", "naive", "offset", "epoch", "text"],
)
def test_envelope_event_time_shapes(at: object) -> None:
    event, _ = read("not json", at=at)
    assert event is not None
    assert event.event_time == LOOKED_UP_AT
    assert event.event_time.utcoffset() == timedelta(0)


def test_envelope_text_is_made_storable_too() -> None:
    event, _ = read("not json", event_id="evt\ud800", username="al\udcffice", user="bo\ud800b")
    assert event is not None
    assert (event.event_id, event.actor.name, event.target_user) == (
        "evt\ufffd",
        "al\ufffdice",
        "bo\ufffdb",
    )
    assert "LookupEvents EventId: lone surrogate replaced by U+FFFD" in event.problems
    json.dumps(classify(event).to_record(), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------- severity


def test_a_malformed_failed_attempt_is_still_medium() -> None:
    """The quota error caps a failed call at low; a record we could not read is worth a look
    (CONTRACT: failed attempts are never above medium, and this one is not)."""
    record = fixture_record("failed_attempt/positive_limit_exceeded_self")
    assert classify(
        fixture_case("failed_attempt/positive_limit_exceeded_self").event()
    ).severity is (Severity.LOW)
    record["userAgent"] = 42
    event, _ = read(json.dumps(record))
    assert event is not None
    finding = classify(event)
    assert finding.severity is Severity.MEDIUM
    assert finding.reasons == ("self_service", "failed_attempt", "malformed")


def test_rotation_never_lowers_a_malformed_finding_below_medium() -> None:
    case = fixture_case("malformed/positive_rotation_keeps_medium")
    assert classify(case.event(), case.context()).severity is Severity.MEDIUM
    assert classify(case.event(), RuleContext()).severity is Severity.MEDIUM


def test_a_malformed_root_key_stays_critical() -> None:
    assert classify(fixture_case("malformed/positive_root_user_agent_list").event()).severity is (
        Severity.CRITICAL
    )


# ---------------------------------------------------------------------------- counting


def test_unreadable_is_summed_across_targets_and_kept_apart_from_malformed() -> None:
    assert "unreadable" in HUNT_STAT_FIELDS
    outcomes = [
        _TargetOutcome(stats=HuntStats(events_read=5, malformed=1, unreadable=2)),
        _TargetOutcome(stats=HuntStats(events_read=3, malformed=0, unreadable=1)),
    ]
    _, _, stats = _merge(outcomes)
    assert (stats.events_read, stats.malformed, stats.unreadable) == (8, 1, 3)
