"""parse_record and parse_activity: every shape seen in the wild is read; a field of the wrong
type is dropped and named in `problems`; a record that cannot be an event at all is a
MalformedRecord that names the field; attacker-chosen text comes through untouched, except that
lone surrogates (no UTF-8 form) become U+FFFD."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.classify import classify
from checks.cloudtrail import parse_entry
from checks.model import HuntStats, KeyEvent
from checks.parse import MalformedRecord, parse_activity, parse_record
from tests.samples import (
    fixture_case,
    fixture_cases,
    fixture_record,
    require_samples,
    sample_records,
)

SSO = "key_for_other_user/positive_sso_session_for_deploy_bot"
DENIED = "failed_attempt/positive_access_denied_mallory_for_bob"
MARKUP = "failed_attempt/positive_attacker_text_validation_error"

SAMPLE_FILES = [
    "elastic-integrations__console-iamuser-alice-creates-key-for-bob.json",
    "elastic-integrations__console-iamuser-alice-deactivates-bob-key-updateaccesskey.json",
    "elastic-integrations__console-iamuser-alice-deletes-bob-key.json",
    "panther-analysis__edgecase-arn-substring-jack-creates-key-for-jackson.json",
    "panther-analysis__edgecase-arn-substring-jackson-creates-key-for-jack.json",
    "panther-analysis__failed-createaccesskey-LimitExceededException.json",
    "panther-analysis__iam-user-creates-key-for-other-user.json",
    "panther-analysis__iam-user-self-key-via-cloudformation.json",
    "panther-analysis__root-creates-key-for-iam-user.json",
    "panther-analysis__root-creates-own-access-key.json",
    "panther-analysis__scenario-root-cli-creates-key-for-new-user.json",
    "panther-analysis__scenario-root-console-creates-own-key.json",
    "stratus-red-team__iam-backdoor-user-createaccesskey-for-other-user.json",
    "stratus-red-team__iam-create-admin-user-sequence-createuser-attachpolicy-createaccesskey.json",
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


READ_AT = datetime(2026, 11, 29, 21, 50, tzinfo=UTC)  # "now", when a record has no time


DELETE = object()  # as a value for with_field/mutate: remove the field


def with_field(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `record` with the dotted `path` set to `value` (or removed: DELETE)."""
    out = copy.deepcopy(record)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return out


# ---------------------------------------------------------------------------- shared samples


@pytest.mark.parametrize("name", SAMPLE_FILES, ids=[n.removesuffix(".json") for n in SAMPLE_FILES])
def test_every_sample_record_parses(name: str) -> None:
    for record in sample_records(name):
        event = parse_record(record)
        assert event.event_id == record["eventID"]
        assert event.event_time.tzinfo is UTC
        # The same record as LookupEvents returns it (a JSON string), and as bytes.
        text = json.dumps(record)
        assert parse_record(text) == event
        assert parse_record(text.encode()) == event
        assert parse_activity(text).event_id == event.event_id


def test_sample_list_is_complete() -> None:
    """A sample added to the shared folder must be added here (and to test_classify)."""
    folder = require_samples()
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(SAMPLE_FILES)


def test_sample_quirks() -> None:
    # The ARN wins over an inconsistent userName (the sample says `user1` for user/jackson).
    jackson = parse_record(
        sample_records(
            "panther-analysis__edgecase-arn-substring-jackson-creates-key-for-jack.json"
        )[0]
    )
    assert (jackson.actor.name, jackson.target_user) == ("jackson", "jack")
    # The console calls root's own key "Root"; it is reported as `root`.
    root = parse_record(
        sample_records("panther-analysis__scenario-root-console-creates-own-key.json")[0]
    )
    assert (root.response_user, root.target_user) == ("Root", "root")
    # An unreadable createDate (hour 0 with PM) is unknown, not an error.
    own = parse_record(sample_records("panther-analysis__root-creates-own-access-key.json")[0])
    assert own.key_create_date is None
    # No requestParameters or responseElements keys at all.
    failed = parse_record(
        sample_records("panther-analysis__failed-createaccesskey-LimitExceededException.json")[0]
    )
    assert (failed.request_user, failed.response_user, failed.access_key_id) == (None, None, None)
    assert failed.target_user == "some_iam_user"


# ---------------------------------------------------------------------------- time formats


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-10T09:15:02Z", utc(2025, 6, 10, 9, 15, 2)),  # CloudTrail
        ("2022-09-27 17:09:18", utc(2022, 9, 27, 17, 9, 18)),  # Panther, no zone: UTC
        ("2023-01-03 01:52:07.000000000", utc(2023, 1, 3, 1, 52, 7)),  # nanoseconds
        ("2025-06-10T09:15:02.123456789Z", utc(2025, 6, 10, 9, 15, 2, 123456)),
        ("2025-06-10T09:15:02.5Z", utc(2025, 6, 10, 9, 15, 2, 500000)),
        ("2025-06-10T11:15:02+02:00", utc(2025, 6, 10, 9, 15, 2)),
        ("2025-06-10T04:15:02-0500", utc(2025, 6, 10, 9, 15, 2)),
        ("2025-06-10T00:15:02-09:00", utc(2025, 6, 10, 9, 15, 2)),
        ("2025-06-11T00:15:02+15:00", utc(2025, 6, 10, 9, 15, 2)),  # crosses midnight
        ("  2025-06-10T09:15:02Z  ", utc(2025, 6, 10, 9, 15, 2)),
    ],
)
def test_event_time_formats(text: str, expected: datetime) -> None:
    event = parse_record(with_field(fixture_record(SSO), "eventTime", text))
    assert event.event_time == expected
    assert event.event_time.utcoffset() is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jun 10, 2025 9:15:02 AM", utc(2025, 6, 10, 9, 15, 2)),  # IAM's own format
        ("Jan 8, 2020 8:43:06 PM", utc(2020, 1, 8, 20, 43, 6)),
        ("Nov 01, 2020 12:05:00 AM", utc(2020, 11, 1, 0, 5, 0)),  # 12 AM is midnight
        ("Nov 01, 2020 12:05:00 PM", utc(2020, 11, 1, 12, 5, 0)),
        ("2025-06-10T09:15:02Z", utc(2025, 6, 10, 9, 15, 2)),
        ("Jan 01, 2019 0:00:00 PM", None),  # unreadable: unknown, not an error
        ("yesterday", None),
    ],
)
def test_key_create_date_formats(text: str, expected: datetime | None) -> None:
    record = with_field(fixture_record(SSO), "responseElements.accessKey.createDate", text)
    assert parse_record(record).key_create_date == expected


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:30:00+01:00",  # before datetime.min once the offset is applied
        "9999-12-31T23:59:59-01:00",  # after datetime.max
        "2025-02-30T09:15:02Z",  # no such day
        "2025-13-01T00:00:00Z",
        "2025-06-10T24:00:00Z",
    ],
)
def test_impossible_event_time_is_malformed(text: str) -> None:
    record = with_field(fixture_record(SSO), "eventTime", text)
    # A CreateAccessKey is still an event: shown at the time it was read, and said so.
    event = parse_record(record, read_at=READ_AT)
    assert event.event_time == READ_AT
    (problem,) = event.problems
    shown = r".*\(the time it was read is shown\)"
    assert re.fullmatch(rf"eventTime: .*{re.escape(text)}{shown}", problem)
    # A key change or an API call without a time cannot be placed: it is skipped.
    with pytest.raises(MalformedRecord, match=rf"^eventTime: .*{re.escape(text)}"):
        parse_record(with_field(record, "eventName", "UpdateAccessKey"))
    with pytest.raises(MalformedRecord, match=r"^eventTime: "):
        parse_activity(record)


def test_impossible_create_date_is_unknown() -> None:
    path = "responseElements.accessKey.createDate"
    record = with_field(fixture_record(SSO), path, "9999-12-31T23:59:59-01:00")
    event = parse_record(record)
    assert event.key_create_date is None
    assert event.problems == (f"{path}: unrecognised date '9999-12-31T23:59:59-01:00'",)


# ---------------------------------------------------------------------------- fields


def test_sso_session() -> None:
    event = fixture_case(SSO).event()
    assert event.actor.type == "AssumedRole"
    assert event.actor.name == "alice@example.com"  # the session name, not the role
    assert event.actor.session_issuer_arn == (
        "arn:aws:iam::222222222222:role/aws-reserved/sso.amazonaws.com/"
        "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
    )
    assert event.actor.mfa_authenticated is False
    assert event.account_id == "222222222222"
    assert (event.request_user, event.response_user, event.target_user) == ("deploy-bot",) * 3
    assert event.key_status == "Active"
    assert event.key_create_date == utc(2025, 6, 10, 9, 15, 2)


@pytest.mark.parametrize(
    ("case_id", "actor_type", "actor_name", "target_user"),
    [
        ("self_service/positive_path_user_self", "IAMUser", "bob", "bob"),  # not `dept/bob`
        ("key_for_other_user/positive_federated_user_for_bob", "FederatedUser", "carol", "bob"),
        ("key_for_other_user/positive_terraform_role_for_service_user", "AssumedRole",
         "terraform-run-4821", "ci-artifacts"),
        ("root_actor/positive_root_console_own_key", "Root", "root", "root"),
        ("root_actor/positive_root_cli_key_for_deploy_bot", "Root", "root", "deploy-bot"),
        ("root_actor/negative_iam_user_named_root", "IAMUser", "root", "root"),
        ("key_for_other_user/negative_case_insensitive_self", "IAMUser", "Dana", "dana"),
    ],
)  # fmt: skip
def test_actor_and_target(case_id: str, actor_type: str, actor_name: str, target_user: str) -> None:
    event = fixture_case(case_id).event()
    assert (event.actor.type, event.actor.name, event.target_user) == (
        actor_type,
        actor_name,
        target_user,
    )


def test_access_denied_attempt() -> None:
    event = fixture_case(DENIED).event()
    assert event.failed
    assert event.error_code == "AccessDenied"
    assert event.error_message is not None
    assert event.error_message.startswith(
        "User: arn:aws:iam::111111111111:user/mallory is not authorized to perform: "
        "iam:CreateAccessKey on resource: user bob"
    )
    assert (event.request_user, event.target_user) == ("bob", "bob")
    assert (event.access_key_id, event.key_status, event.key_create_date) == (None, None, None)


def test_key_change_records() -> None:
    """UpdateAccessKey/DeleteAccessKey carry the key and status in requestParameters."""
    (update,) = fixture_case("likely_rotation/negative_other_user_bobby").changes[1:]
    event = parse_record(update)
    assert event.event_name == "UpdateAccessKey"
    assert (event.request_user, event.key_status) == ("bobby", "Inactive")
    assert event.access_key_id == update["requestParameters"]["accessKeyId"]
    deletion = parse_record(
        fixture_case("likely_rotation/positive_admin_deletes_old_key_2h_before").changes[0]
    )
    assert (deletion.event_name, deletion.request_user, deletion.key_status) == (
        "DeleteAccessKey",
        "bob",
        None,
    )


def test_string_flags_also_accept_json_booleans() -> None:
    record = with_field(
        fixture_record(SSO), "userIdentity.sessionContext.attributes.mfaAuthenticated", True
    )
    assert parse_record(record).actor.mfa_authenticated is True


def test_console_flags() -> None:
    assert fixture_case("console/positive_signin_user_agent").event().actor.console_session
    assert fixture_case("console/positive_console_user_agent").event().actor.console_session
    # Modern console records say "AWS Internal" and set the top-level sessionCredentialFromConsole.
    flagged = fixture_case("console/positive_session_credential_from_console").record
    assert flagged["userAgent"] == "AWS Internal"
    assert parse_record(flagged).actor.console_session
    # Without the flag, "AWS Internal" from a person's principal is still the console ...
    unflagged = with_field(flagged, "sessionCredentialFromConsole", DELETE)
    assert parse_record(unflagged).actor.console_session
    # ... but not when a service acted for them, nor with the flag gone and another agent.
    by_service = with_field(unflagged, "userIdentity.invokedBy", "cloudformation.amazonaws.com")
    assert not parse_record(by_service).actor.console_session
    cli = with_field(unflagged, "userAgent", "aws-cli/2.17.41 md/command#iam.create-access-key")
    assert not parse_record(cli).actor.console_session
    # "AWS Internal" names no console service: as invokedBy it says nothing.
    internal = with_field(cli, "userIdentity.invokedBy", "AWS Internal")
    assert not parse_record(internal).actor.console_session
    assert not fixture_case("console/negative_cli_user_agent").event().actor.console_session
    assert not fixture_case("console/negative_spoofed_console_text").event().actor.console_session


def test_console_sample_without_the_session_flag() -> None:
    """Alice makes Bob's key through signin.amazonaws.com; the record (eventVersion 1.05) has
    no sessionCredentialFromConsole: userAgent and invokedBy are each enough."""
    name = "elastic-integrations__console-iamuser-alice-creates-key-for-bob.json"
    (record,) = sample_records(name)
    assert "sessionCredentialFromConsole" not in json.dumps(record)
    assert parse_record(record).actor.console_session
    cli = "aws-cli/2.17.41 md/command#iam.create-access-key"
    assert parse_record(with_field(record, "userAgent", cli)).actor.console_session
    assert parse_record(with_field(record, "userIdentity.invokedBy", DELETE)).actor.console_session
    neither = with_field(with_field(record, "userAgent", cli), "userIdentity.invokedBy", DELETE)
    assert not parse_record(neither).actor.console_session


@pytest.mark.parametrize(
    ("agent", "console"),
    [
        ("signin.amazonaws.com", True),
        ("SIGNIN.AMAZONAWS.COM", True),
        (" console.amazonaws.com ", True),
        ("console.aws.amazon.com", True),
        ("signin.aws.amazon.com", True),
        ("eu-west-1.console.aws.amazon.com", True),
        ("us-gov-west-1.signin.aws.amazon.com", True),
        ("console.aws.amazon.com.evil.example", False),
        ("evil.example/console.aws.amazon.com", False),
        ("\u017fignin.amazonaws.com", False),  # folds to `signin` under casefold(): not ASCII
        ("aws-cli/2 signin.amazonaws.com", False),
        ("", False),
    ],
)
def test_console_user_agents(agent: str, console: bool) -> None:
    record = with_field(fixture_record("console/negative_cli_user_agent"), "userAgent", agent)
    assert parse_record(record).actor.console_session is console
    invoked = with_field(
        fixture_record("console/negative_cli_user_agent"), "userIdentity.invokedBy", agent
    )
    assert parse_record(invoked).actor.console_session is console


# ---------------------------------------------------------------------------- attacker text

ATTACKER_UA = (
    "<!channel> <https://evil.example|click> *bold* _it_ ~strike~ `tick` &lt;b&gt; "
    "python-requests/2.32.3"
)


def test_attacker_text_is_kept_verbatim() -> None:
    event = fixture_case(MARKUP).event()
    assert event.user_agent == ATTACKER_UA
    assert event.request_user == "*bold*"
    assert event.target_user == "*bold*"
    assert event.error_message == (
        "1 validation error detected: Value '*bold*' at 'userName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
    )
    record = classify(event).to_record()
    assert (record["user_agent"], record["target_user"]) == (ATTACKER_UA, "*bold*")


@pytest.mark.parametrize(
    "text",
    [
        "<@U012AB3CD> <#C012AB3CD> <!here> <!subteam^S012AB3CD>",
        "line one\nline two\r\n\ttabbed",
        "\u202eevil\u202c zero\u200bwidth",
        "```code block``` > quote",
        "&amp; &lt; &gt;",
        "x" * 4000,
    ],
    ids=["mentions", "newlines", "bidi", "markdown", "entities", "long"],
)
def test_any_user_agent_survives_parsing(text: str) -> None:
    raw = json.dumps(with_field(fixture_record(MARKUP), "userAgent", text))
    assert parse_record(raw).user_agent == text


# ---------------------------------------------------------------------------- malformed

MALFORMED_TEXT = [
    ('{"eventID": ', "not JSON"),
    (b"\xff\xfe{}", "not JSON"),  # not UTF-8
    ("[" * 100_000, "not JSON"),  # nesting deeper than the decoder allows
    ('[{"eventID": "x"}]', "expected a JSON object, got list"),  # e.g. a sample-file array
    ('"CreateAccessKey"', "expected a JSON object, got str"),
    ("null", "expected a JSON object, got NoneType"),
    ("", "not JSON"),
]


@pytest.mark.parametrize(
    ("raw", "message"),
    MALFORMED_TEXT,
    ids=["truncated", "not-utf8", "too-deep", "list", "string", "null", "empty"],
)
def test_unreadable_text_is_malformed(raw: str | bytes, message: str) -> None:
    with pytest.raises(MalformedRecord, match=re.escape(message)):
        parse_record(raw)
    with pytest.raises(MalformedRecord, match=re.escape(message)):
        parse_activity(raw)


# Fields that are dropped one by one: the record is still an event, the field is None (or
# its default) and named in `problems` as "<dotted.field>: <what was wrong>".
DROPPED_FIELDS = [
    ("userIdentity.arn", 123, "userIdentity.arn: number, expected a string"),
    ("userIdentity.sessionContext", "assumed",
     "userIdentity.sessionContext: str, expected an object"),
    ("userIdentity.sessionContext.attributes.mfaAuthenticated", 1,
     "userIdentity.sessionContext.attributes.mfaAuthenticated: number, expected true or false"),
    ("requestParameters", "userName=bob", "requestParameters: str, expected an object"),
    ("requestParameters", ["bob"], "requestParameters: list, expected an object"),
    ("requestParameters.userName", 42, "requestParameters.userName: number, expected a string"),
    ("responseElements", ["accessKey"], "responseElements: list, expected an object"),
    ("responseElements.accessKey", "AKIA", "responseElements.accessKey: str, expected an object"),
    ("responseElements.accessKey.accessKeyId", 1.5,
     "responseElements.accessKey.accessKeyId: number, expected a string"),
    ("responseElements.accessKey.createDate", "yesterday",
     "responseElements.accessKey.createDate: unrecognised date 'yesterday'"),
    ("responseElements.accessKey.createDate", 1749546902,
     "responseElements.accessKey.createDate: number, expected a string"),
    ("sourceIPAddress", 3405803786, "sourceIPAddress: number, expected a string"),
    ("recipientAccountId", 222222222222, "recipientAccountId: number, expected a string"),
    ("errorCode", 403, "errorCode: number, expected a string"),
    ("userAgent", 7, "userAgent: number, expected a string"),
    ("userAgent", {"name": "aws-cli"}, "userAgent: dict, expected a string"),
    ("sessionCredentialFromConsole", 1,
     "sessionCredentialFromConsole: number, expected true or false"),
    ("userIdentity", DELETE, "userIdentity: missing"),
    ("userIdentity", "arn:aws:iam::111111111111:user/bob", "userIdentity: str, expected an object"),
    ("userIdentity", [], "userIdentity: list, expected an object"),
    ("userIdentity.type", DELETE, "userIdentity.type: missing"),
    ("userIdentity.type", 1, "userIdentity.type: number, expected a string"),
    ("userIdentity.type", "", "userIdentity.type: empty"),
]  # fmt: skip

# Fields a key change or an API call cannot do without; a CreateAccessKey can (see below).
REQUIRED_FIELDS = [
    ("eventID", DELETE, "eventID: missing"),
    ("eventID", "", "eventID: empty"),
    ("eventID", 12345, "eventID: number, expected a string"),
    ("eventID", "e" * 129, "eventID: longer than 128 characters"),
    ("eventTime", DELETE, "eventTime: missing"),
    ("eventTime", "yesterday", "eventTime: unrecognised event time 'yesterday'"),
    ("eventTime", "10/06/2025 09:15", "eventTime: unrecognised event time '10/06/2025 09:15'"),
    ("eventTime", 1749546902, "eventTime: number, expected a string"),
]  # fmt: skip


def _field_params(fields: list[tuple[str, Any, str]]) -> list[Any]:
    return [
        pytest.param(
            path, value, message, id=f"{path}={'absent' if value is DELETE else repr(value)[:30]}"
        )
        for path, value, message in fields
    ]


@pytest.mark.parametrize(("path", "value", "message"), _field_params(DROPPED_FIELDS))
def test_a_field_of_the_wrong_type_is_dropped_and_named(
    path: str, value: Any, message: str
) -> None:
    record = with_field(fixture_record(SSO), path, value)
    for raw in (record, json.dumps(record)):
        event = parse_record(raw)
        assert event.problems == (message,)
        assert event.event_id == record["eventID"]  # everything else is still read
        assert event.event_time == utc(2025, 6, 10, 9, 15, 2)
        assert event.region == "us-east-1"
    # The same field in a key change is dropped the same way; the change is still used.
    change = parse_record(with_field(record, "eventName", "UpdateAccessKey"))
    assert change.problems == (message,)


@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        ("userAgent", 7, "user_agent", None),
        ("requestParameters", ["bob"], "request_user", None),
        ("responseElements.accessKey", "AKIA", "access_key_id", None),
        ("responseElements.accessKey.createDate", "soon", "key_create_date", None),
        ("sourceIPAddress", 3405803786, "source_ip", None),
        ("errorCode", 403, "error_code", None),
        ("recipientAccountId", 222222222222, "account_id", "222222222222"),  # the actor's
    ],
)
def test_only_the_wrong_field_is_lost(path: str, value: Any, attribute: str, expected: Any) -> None:
    whole = fixture_case(SSO).event()
    event = parse_record(with_field(fixture_record(SSO), path, value))
    assert getattr(event, attribute) == expected
    same = {"problems", attribute}
    if attribute in ("request_user", "access_key_id"):
        same |= {"response_user", "key_status", "key_create_date"}  # their siblings go too
    for name in ("event_id", "event_time", "actor", "request_user", "response_user",
                 "access_key_id", "source_ip", "user_agent", "error_code"):  # fmt: skip
        if name not in same:
            assert getattr(event, name) == getattr(whole, name), name


def test_an_unreadable_identity_is_an_unknown_actor() -> None:
    event = parse_record(with_field(fixture_record(SSO), "userIdentity.type", DELETE))
    assert event.actor.type is None
    assert event.actor.arn is not None  # what could be read still is
    assert classify(event).to_record()["actor_type"] is None
    event = parse_record(with_field(fixture_record(SSO), "userIdentity", "nope"))
    assert (event.actor.type, event.actor.arn, event.actor.name) == (None, None, None)
    assert event.account_id == "222222222222"  # recipientAccountId


@pytest.mark.parametrize(("path", "value", "message"), _field_params(REQUIRED_FIELDS))
def test_a_create_access_key_without_id_or_time_is_still_an_event(
    path: str, value: Any, message: str
) -> None:
    record = with_field(fixture_record(SSO), path, value)
    event = parse_record(json.dumps(record), read_at=READ_AT)
    (problem,) = event.problems
    assert problem.startswith(message)
    if path == "eventID":
        assert problem == f"{message} (an ID was made from the record's text)"
        assert re.fullmatch(r"malformed-[0-9a-f]{32}", event.event_id)
        assert parse_record(json.dumps(record), read_at=READ_AT).event_id == event.event_id
    else:
        assert problem == f"{message} (the time it was read is shown)"
        assert event.event_time == READ_AT
    assert event.target_user == "deploy-bot"


@pytest.mark.parametrize(("path", "value", "message"), _field_params(REQUIRED_FIELDS))
def test_a_key_change_without_id_or_time_is_malformed(path: str, value: Any, message: str) -> None:
    change = with_field(fixture_record(SSO), "eventName", "UpdateAccessKey")
    record = with_field(change, path, value)
    with pytest.raises(MalformedRecord, match=f"^{re.escape(message)}$"):
        parse_record(record)
    with pytest.raises(MalformedRecord, match=f"^{re.escape(message)}$"):
        parse_record(json.dumps(record))


@pytest.mark.parametrize("value", [DELETE, ["CreateAccessKey"], ""])
def test_without_an_event_name_a_record_is_malformed(value: Any) -> None:
    record = with_field(fixture_record(SSO), "eventName", value)
    with pytest.raises(MalformedRecord, match=r"^eventName: "):
        parse_record(record)
    with pytest.raises(MalformedRecord, match=r"^eventName: "):
        parse_activity(record)


def test_malformed_record_is_a_value_error() -> None:
    """Callers that only know ValueError still catch it."""
    assert issubclass(MalformedRecord, ValueError)


def test_parse_activity_reads_any_event() -> None:
    attach = next(
        r
        for r in sample_records(
            "stratus-red-team__iam-create-admin-user-sequence-createuser-attachpolicy-createaccesskey.json"
        )
        if r["eventName"] == "AttachUserPolicy"
    )
    activity = parse_activity(attach)
    assert (activity.event_name, activity.event_source) == ("AttachUserPolicy", "iam.amazonaws.com")
    assert activity.event_time == utc(2024, 8, 1, 13, 33, 28)
    assert activity.source_ip == "075.050.255.67"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("eventID", DELETE, "eventID: missing"),
        ("eventName", 7, "eventName: number, expected a string"),
        ("eventTime", "soon", "eventTime: unrecognised event time 'soon'"),
    ],
)
def test_parse_activity_malformed(path: str, value: Any, message: str) -> None:
    with pytest.raises(MalformedRecord, match=re.escape(message)):
        parse_activity(with_field(fixture_record(SSO), path, value))


def test_parse_activity_drops_fields_one_by_one() -> None:
    activity = parse_activity(with_field(fixture_record(SSO), "userAgent", 7))
    assert activity.user_agent is None
    assert activity.problems == ("userAgent: number, expected a string",)
    assert activity.source_ip == "203.0.113.10"


def test_parse_activity_needs_no_identity() -> None:
    activity = parse_activity(with_field(fixture_record(SSO), "userIdentity", DELETE))
    assert activity.event_name == "CreateAccessKey"


# ---------------------------------------------------------------------------- properties

# Anything json.loads can return.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
# Values that get further into the parser than random text does.
TIME_LIKE = st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?",
    fullmatch=True,
)
CREATE_DATE_LIKE = st.from_regex(
    r"[A-Z][a-z]{2} [0-9]{1,2}, [0-9]{4} [0-9]{1,2}:[0-9]{2}:[0-9]{2} (AM|PM)",
    fullmatch=True,
)
ARN_LIKE = st.from_regex(
    r"arn:aws:(iam|sts)::[0-9]{12}:(root|user|assumed-role|federated-user)(/[\w@.*<>|!-]{0,8}){0,3}",
    fullmatch=True,
)
IDENTITY_TYPES = st.sampled_from(
    ["IAMUser", "AssumedRole", "Root", "FederatedUser", "AWSService", "AWSAccount", "Unknown", ""]
)
REPLACEMENT = JSON | TIME_LIKE | CREATE_DATE_LIKE | ARN_LIKE | IDENTITY_TYPES | st.just(DELETE)
FIELDS = [
    "eventVersion", "userIdentity", "eventTime", "eventName", "eventID", "awsRegion",
    "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
    "responseElements", "recipientAccountId", "sessionCredentialFromConsole",
    "userIdentity.type", "userIdentity.arn", "userIdentity.userName", "userIdentity.accountId",
    "userIdentity.invokedBy", "userIdentity.accessKeyId", "userIdentity.sessionContext",
    "userIdentity.sessionContext.attributes",
    "userIdentity.sessionContext.attributes.mfaAuthenticated",
    "userIdentity.sessionContext.sessionIssuer", "userIdentity.sessionContext.sessionIssuer.arn",
    "requestParameters.userName", "requestParameters.accessKeyId", "requestParameters.status",
    "responseElements.accessKey", "responseElements.accessKey.userName",
    "responseElements.accessKey.accessKeyId", "responseElements.accessKey.status",
    "responseElements.accessKey.createDate",
]  # fmt: skip
BASES = [c.record for c in fixture_cases()]
PROPERTY = settings(max_examples=200, deadline=None)


def assert_encodable(value: object) -> None:
    """Every string in a parsed event (or anything it holds) encodes as UTF-8."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, tuple | list):
        for item in value:
            assert_encodable(item)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            assert_encodable(getattr(value, f.name))


def parses_or_is_malformed(raw: Any) -> KeyEvent | None:
    """The property: a KeyEvent, or MalformedRecord; any other exception fails the test."""
    try:
        event = parse_record(raw, read_at=READ_AT)
    except MalformedRecord:
        return None
    assert isinstance(event, KeyEvent)
    assert_encodable(event)
    # Whatever parses must also classify and serialise.
    record = classify(event).to_record()
    json.dumps(record)
    return event


def mutate(record: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(record)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue  # an earlier change replaced a parent with a non-object
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return out


@PROPERTY
@given(JSON)
def test_any_json_value_parses_or_is_malformed(value: Any) -> None:
    parses_or_is_malformed(value)
    parses_or_is_malformed(json.dumps(value))


@PROPERTY
@given(st.text() | st.binary())
def test_any_text_parses_or_is_malformed(raw: str | bytes) -> None:
    parses_or_is_malformed(raw)


@PROPERTY
@given(
    st.sampled_from(BASES),
    st.lists(st.tuples(st.sampled_from(FIELDS), REPLACEMENT), min_size=1, max_size=4),
)
def test_damaged_records_parse_or_are_malformed(
    base: dict[str, Any], changes: list[tuple[str, Any]]
) -> None:
    record = mutate(base, changes)
    event = parses_or_is_malformed(record)
    assert parses_or_is_malformed(json.dumps(record)) == event


# ---------------------------------------------------------------------------- lone surrogates

LONE = "\ud800"  # valid in JSON as an escape; no UTF-8 encoding exists for it


def _escaped(record: dict[str, Any]) -> str:
    """The record as CloudTrail would send it: ASCII JSON, the surrogate as `\\ud800`."""
    return json.dumps(record)


def test_a_lone_surrogate_is_replaced_and_named() -> None:
    record = with_field(fixture_record(SSO), "userAgent", f"aws-cli/2 {LONE}")
    raw = _escaped(record)
    assert "\\ud800" in raw
    for text in (raw, raw.encode()):
        event = parse_record(text)
        assert event.user_agent == "aws-cli/2 \ufffd"
        assert event.problems == ("userAgent: lone surrogate replaced by U+FFFD",)
        assert event.event_id == record["eventID"]  # the rest is read as usual
        finding = classify(event)
        assert "malformed" in finding.reasons
        json.dumps(finding.to_record(), ensure_ascii=False).encode("utf-8")


def test_lone_surrogates_anywhere_are_replaced_keys_and_values() -> None:
    record = fixture_record(SSO)
    record["requestParameters"]["userName"] = f"deploy-bot{LONE}"
    record["responseElements"]["accessKey"]["userName"] = f"deploy-bot{LONE}"
    record["errorMessage"] = f"\udfff{LONE}"
    record["resources"] = [{"ARN": f"arn{LONE}", f"type{LONE}": "x"}]
    record["extra\udc80"] = {"deep": [[LONE]]}
    event = parse_record(_escaped(record))
    assert event.target_user == "deploy-bot\ufffd"
    assert event.error_message == "\ufffd\ufffd"
    assert set(event.problems) == {
        "requestParameters.userName: lone surrogate replaced by U+FFFD",
        "responseElements.accessKey.userName: lone surrogate replaced by U+FFFD",
        "errorMessage: lone surrogate replaced by U+FFFD",
        "resources[0].ARN: lone surrogate replaced by U+FFFD",
        "resources[0].type\ufffd: lone surrogate replaced by U+FFFD in the field name",
        "extra\ufffd: lone surrogate replaced by U+FFFD in the field name",
        "extra\ufffd.deep[0][0]: lone surrogate replaced by U+FFFD",
    }
    assert_encodable(event)


def test_raw_surrogates_in_text_and_in_decoded_records() -> None:
    """Not only `\\ud800` escapes: undecodable bytes read with surrogateescape leave raw
    surrogate characters in a str, and a decoded dict can hold them too."""
    record = with_field(fixture_record(SSO), "userAgent", "curl/8 \udcff")
    text = json.dumps(record, ensure_ascii=False)
    assert "\udcff" in text
    assert parse_record(text).user_agent == "curl/8 \ufffd"
    event = parse_record(record)
    assert event.user_agent == "curl/8 \ufffd"
    assert record["userAgent"] == "curl/8 \udcff"  # the caller's dict is left as it was


def test_surrogates_in_key_changes_and_api_calls_are_replaced_too() -> None:
    change = with_field(fixture_record(SSO), "eventName", "UpdateAccessKey")
    change = with_field(change, "requestParameters.userName", f"bob{LONE}")
    event = parse_record(_escaped(change))
    assert event.request_user == "bob\ufffd"
    assert event.problems == ("requestParameters.userName: lone surrogate replaced by U+FFFD",)
    call = parse_activity(_escaped(with_field(fixture_record(SSO), "sourceIPAddress", LONE)))
    assert call.source_ip == "\ufffd"
    assert call.problems == ("sourceIPAddress: lone surrogate replaced by U+FFFD",)


def test_a_surrogate_id_or_name_is_replaced_not_fatal() -> None:
    record = with_field(fixture_record(SSO), "eventID", f"76d1c66d{LONE}")
    event = parse_record(_escaped(record))
    assert event.event_id == "76d1c66d\ufffd"
    assert event.problems == ("eventID: lone surrogate replaced by U+FFFD",)


def test_the_common_case_never_walks_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson refuses lone surrogates, so what it decodes needs no walk: only the json
    fallback (and decoded dicts) pay for it."""
    import checks.parse

    def walked(*_: object) -> None:
        raise AssertionError("the record was walked")

    monkeypatch.setattr(checks.parse, "_scrub", walked)
    for case in fixture_cases():
        text = json.dumps(case.record)
        if "\\ud" in text:
            continue  # the malformed/ fixture that holds one
        assert parse_record(text).event_id == case.record["eventID"]


# Text that gets into the JSON fallback: surrogates, raw or escaped, and big integers.
SURROGATE_TEXT = st.text(
    alphabet=st.characters(codec=None, min_codepoint=0xD7F0, max_codepoint=0xE010)
    | st.characters(codec="utf-8"),
    max_size=12,
)
HOSTILE_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | SURROGATE_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(SURROGATE_TEXT, children, max_size=3)
    ),
    max_leaves=10,
)
ENTRY_NAMES = st.sampled_from(["CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey", None, 7])


def _hostile_text(base: dict[str, Any], changes: list[tuple[str, Any]], ascii_only: bool) -> str:
    return json.dumps(mutate(base, changes), ensure_ascii=ascii_only)


HOSTILE_RECORD_TEXT = st.builds(
    _hostile_text,
    st.sampled_from(BASES),
    st.lists(st.tuples(st.sampled_from(FIELDS), HOSTILE_VALUE), min_size=1, max_size=4),
    st.booleans(),
)


@PROPERTY
@given(
    st.text() | st.binary() | HOSTILE_RECORD_TEXT | SURROGATE_TEXT,
    ENTRY_NAMES,
    st.one_of(st.none(), SURROGATE_TEXT, st.integers()),
    st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)), st.floats(), SURROGATE_TEXT),
)
def test_parse_entry_never_raises_and_everything_it_returns_encodes(
    raw: str | bytes, name: Any, event_id: Any, event_time: Any
) -> None:
    """For any CloudTrailEvent text or bytes, and any envelope, parse_entry returns an event
    (always, for a CreateAccessKey) or None, and every string in it encodes as UTF-8."""
    entry = {
        "EventId": event_id,
        "EventName": name,
        "EventTime": event_time,
        "Username": event_id,
        "CloudTrailEvent": raw,
        "Resources": [{"ResourceType": "AWS::IAM::User", "ResourceName": event_id}],
    }
    stats = HuntStats()
    event = parse_entry(entry, stats, read_at=READ_AT)
    if name == "CreateAccessKey":
        assert event is not None
    if event is not None:
        assert_encodable(event)
        record = classify(event).to_record()
        json.dumps(record, ensure_ascii=False).encode("utf-8")
        assert (stats.malformed + stats.unreadable > 0) == bool(event.problems)
    assert stats.malformed + stats.unreadable <= 1
