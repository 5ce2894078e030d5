"""CONTRACT section 3 end to end: CloudTrail record -> parse_record -> classify -> finding.

Expectations are written out per sample (here) and per fixture (in each fixture folder's
expected.json), from the CONTRACT's table, so a change in any rule shows up here as the exact
records whose classification moved.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from checks.classify import classify
from checks.model import Finding, Severity, Target
from checks.parse import parse_record
from checks.record import FINDING_FIELDS
from checks.rules import RuleContext
from checks.suppress import Suppression, parse_suppression
from tests.samples import (
    EXPECTED_FILE,
    FixtureCase,
    fixture_case,
    fixture_cases,
    fixture_expectations,
    fixture_record,
    fixture_rule_ids,
    sample_event,
    sample_record,
)
from tests.scenario import FINDING_KEYS

CRITICAL, HIGH, MEDIUM, LOW = "critical", "high", "medium", "low"
ROOT, OTHER, SELF = "root_actor", "key_for_other_user", "self_service"
FAILED, CONSOLE, ROTATION = "failed_attempt", "console", "likely_rotation"
MALFORMED = "malformed"

CONTRACT_FIELDS = FINDING_KEYS  # CONTRACT section 2, written out once in tests/scenario.py
ISO_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def assert_finding(finding: Finding, severity: str, reasons: set[str]) -> None:
    assert (finding.severity.value, set(finding.reasons)) == (severity, reasons)
    assert len(finding.reasons) == len(set(finding.reasons)), "a reason appears twice"


# ---------------------------------------------------------------------------- public samples

# (sample file, severity, reasons, target_user)
SAMPLES = [
    ("panther-analysis__iam-user-creates-key-for-other-user.json", HIGH, {OTHER}, "user2"),
    ("panther-analysis__iam-user-self-key-via-cloudformation.json", MEDIUM, {SELF}, "user1"),
    # `jack` is not `jackson`, either way round: names are compared exactly.
    ("panther-analysis__edgecase-arn-substring-jack-creates-key-for-jackson.json", HIGH, {OTHER},
     "jackson"),
    ("panther-analysis__edgecase-arn-substring-jackson-creates-key-for-jack.json", HIGH, {OTHER},
     "jack"),
    # No requestParameters or responseElements at all: the key was for the caller itself.
    ("panther-analysis__failed-createaccesskey-LimitExceededException.json", LOW,
     {SELF, FAILED}, "some_iam_user"),
    # Its createDate (`Jan 01, 2019 0:00:00 PM`, hour 0 with PM) cannot be read: malformed,
    # and root stays critical.
    ("panther-analysis__root-creates-own-access-key.json", CRITICAL, {ROOT, CONSOLE, MALFORMED},
     "root"),
    # Root creating a key for someone else is root_actor only: root_actor covers every key.
    ("panther-analysis__root-creates-key-for-iam-user.json", CRITICAL,
     {ROOT, CONSOLE, MALFORMED}, "example-user"),
    # The console names root's own key "Root"; the finding says `root`.
    ("panther-analysis__scenario-root-console-creates-own-key.json", CRITICAL, {ROOT, CONSOLE},
     "root"),
    ("panther-analysis__scenario-root-cli-creates-key-for-new-user.json", CRITICAL, {ROOT},
     "tracy_stone"),
    ("elastic-integrations__console-iamuser-alice-creates-key-for-bob.json", HIGH,
     {OTHER, CONSOLE}, "Bob"),
    ("stratus-red-team__iam-backdoor-user-createaccesskey-for-other-user.json", HIGH, {OTHER},
     "stratus-red-team-backdoor-u-user"),
    ("stratus-red-team__iam-create-admin-user-sequence-createuser-attachpolicy-createaccesskey"
     ".json", HIGH, {OTHER}, "malicious-iam-user"),
]  # fmt: skip


def _sample_id(name: str) -> str:
    return name.split("__", 1)[1].removesuffix(".json")


@pytest.mark.parametrize(
    ("name", "severity", "reasons", "target_user"),
    SAMPLES,
    ids=[_sample_id(s[0]) for s in SAMPLES],
)
def test_sample(name: str, severity: str, reasons: set[str], target_user: str) -> None:
    finding = classify(sample_event(name))
    assert_finding(finding, severity, reasons)
    assert finding.to_record()["target_user"] == target_user


ELASTIC_CREATE = "elastic-integrations__console-iamuser-alice-creates-key-for-bob.json"
ELASTIC_DELETE = "elastic-integrations__console-iamuser-alice-deletes-bob-key.json"
ELASTIC_UPDATE = (
    "elastic-integrations__console-iamuser-alice-deactivates-bob-key-updateaccesskey.json"
)


def test_sample_rotation_admin_deleted_old_key_before() -> None:
    """Alice deleted Bob's key 94 minutes before creating him a new one: a rotation."""
    ctx = RuleContext(key_changes=[sample_event(ELASTIC_DELETE, "DeleteAccessKey")])
    assert_finding(classify(sample_event(ELASTIC_CREATE), ctx), LOW, {OTHER, CONSOLE, ROTATION})


def test_sample_deactivating_the_new_key_two_days_later_is_no_rotation() -> None:
    """The UpdateAccessKey sample deactivates the new key itself, 42 hours later."""
    ctx = RuleContext(key_changes=[sample_event(ELASTIC_UPDATE, "UpdateAccessKey")])
    assert_finding(classify(sample_event(ELASTIC_CREATE), ctx), HIGH, {OTHER, CONSOLE})


# ---------------------------------------------------------------------------- our fixtures

# Each case's expected severity and reasons live beside it, in its folder's expected.json
# (tests/samples.py loads them into FixtureCase.severity / .reasons / .why).
CASES = fixture_cases()


def _params(cases: list[FixtureCase]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def test_every_fixture_has_an_expectation() -> None:
    missing = [c.id for c in CASES if c.severity is None or c.reasons is None]
    assert not missing, f"no entry in its folder's {EXPECTED_FILE}: {missing}"


def test_every_expectation_names_a_case() -> None:
    cases = {c.id for c in CASES}
    named = {f"{rid}/{name}" for rid in fixture_rule_ids() for name in fixture_expectations(rid)}
    assert named - cases == set(), f"{EXPECTED_FILE} entries without a fixture case"
    assert cases <= named


@pytest.mark.parametrize("case", _params(CASES))
def test_fixture(case: FixtureCase) -> None:
    assert case.severity is not None, f"{case.id}: no expectation"
    assert case.reasons is not None, f"{case.id}: no expectation"
    finding = classify(case.event(), case.context())
    assert_finding(finding, case.severity, set(case.reasons))
    assert finding.reasons == case.reasons, "expected.json lists reasons in classify() order"


def _classify_case(case_id: str, ctx: RuleContext | None = None) -> Finding:
    case = fixture_case(case_id)
    return classify(case.event(), ctx if ctx is not None else case.context())


# ---------------------------------------------------------------------------- CONTRACT rows


def test_root_failed_attempt_is_capped_but_keeps_root_actor() -> None:
    """An SCP can deny root in a member account: the failure caps, root_actor still shows."""
    record = fixture_record("root_actor/positive_root_cli_key_for_deploy_bot")
    record["errorCode"] = "AccessDenied"
    record["errorMessage"] = "User: arn:aws:iam::111111111111:root is not authorized"
    record["responseElements"] = None
    assert_finding(classify(parse_record(record)), MEDIUM, {ROOT, FAILED})


def test_failed_calls_are_never_above_medium_and_have_no_key() -> None:
    findings = [classify(c.event(), c.context()) for c in CASES]
    failed = [f for f in findings if f.event.failed]
    assert failed, "the fixtures hold failed calls"
    for finding in failed:
        assert finding.severity.rank <= Severity.MEDIUM.rank
        assert FAILED in finding.reasons
        assert finding.to_record()["access_key_id"] is None
    assert all(FAILED not in f.reasons for f in findings if not f.event.failed)


@pytest.mark.parametrize(
    ("error_code", "severity"),
    [
        ("AccessDenied", MEDIUM),  # probing is worth a look
        ("AccessDeniedException", MEDIUM),
        ("LimitExceededException", LOW),  # the two-key quota: an honest mistake
        ("NoSuchEntityException", LOW),
        ("ValidationException", LOW),
    ],
)
def test_failed_attempt_severity_by_error(error_code: str, severity: str) -> None:
    record = fixture_record("failed_attempt/positive_access_denied_mallory_for_bob")
    record["errorCode"] = error_code
    assert_finding(classify(parse_record(record)), severity, {OTHER, FAILED})


def _without_console(record: dict[str, Any]) -> dict[str, Any]:
    record = json.loads(json.dumps(record))
    record["userAgent"] = "aws-cli/2.17.41 md/command#iam.create-access-key"
    record.pop("sessionCredentialFromConsole", None)
    record["userIdentity"].pop("sessionCredentialFromConsole", None)
    record["userIdentity"].pop("invokedBy", None)
    return record


CONSOLE_CASES = [c for c in CASES if CONSOLE in (c.reasons or ())]


@pytest.mark.parametrize("case", _params(CONSOLE_CASES))
def test_console_adds_a_reason_and_leaves_severity_unchanged(case: FixtureCase) -> None:
    with_console = classify(case.event(), case.context())
    without = classify(parse_record(_without_console(case.record)), case.context())
    assert CONSOLE in with_console.reasons
    assert CONSOLE not in without.reasons
    assert with_console.severity == without.severity
    assert set(with_console.reasons) - {CONSOLE} == set(without.reasons)


ROTATION_A = "likely_rotation/positive_self_deactivates_old_key_10m_after"


@pytest.mark.parametrize(
    ("offset", "rotation"),
    [
        (timedelta(hours=24), True),  # the window is inclusive
        (timedelta(hours=24, seconds=1), False),
        (-timedelta(hours=24), True),  # either side of the creation
        (-timedelta(hours=24, seconds=1), False),
    ],
    ids=["+24h", "+24h1s", "-24h", "-24h1s"],
)
def test_rotation_window_edges(offset: timedelta, rotation: bool) -> None:
    case = fixture_case(ROTATION_A)
    created = case.event().event_time
    change = dict(case.changes[-1], eventTime=(created + offset).strftime("%Y-%m-%dT%H:%M:%SZ"))
    finding = classify(case.event(), RuleContext(key_changes=[parse_record(change)]))
    assert (ROTATION in finding.reasons) is rotation
    assert finding.severity.value == (LOW if rotation else MEDIUM)


def test_a_rotation_carries_which_key_was_retired_and_when() -> None:
    case = fixture_case(ROTATION_A)  # the old key is deactivated 10 minutes later
    finding = classify(case.event(), case.context())
    (retired,) = finding.retired
    assert retired.action == "deactivated"
    assert retired.at - finding.event.event_time == timedelta(minutes=10)
    assert retired.access_key_id == case.changes[-1]["requestParameters"]["accessKeyId"]
    assert classify(case.event()).retired == ()  # no context, no rotation, nothing carried


def test_rotation_window_is_configurable() -> None:
    case = fixture_case(ROTATION_A)  # the old key is deactivated 10 minutes later
    narrow = RuleContext(
        key_changes=case.context().key_changes, rotation_window=timedelta(minutes=5)
    )
    assert_finding(classify(case.event(), narrow), MEDIUM, {SELF})


def test_rotation_never_lowers_root() -> None:
    """Root rotating its own key is still critical, whatever the context says."""
    finding = _classify_case("likely_rotation/negative_root_deletes_old_root_key")
    assert_finding(finding, CRITICAL, {ROOT})
    # Even with the strongest possible evidence: every key change of the window.
    everything = [parse_record(r) for c in CASES for r in c.changes]
    root_case = fixture_case("root_actor/positive_root_console_own_key")
    finding = classify(root_case.event(), RuleContext(key_changes=everything))
    assert finding.severity is Severity.CRITICAL
    assert ROTATION not in finding.reasons


def test_rotation_context_never_raises_severity() -> None:
    everything = RuleContext(key_changes=[parse_record(r) for c in CASES for r in c.changes])
    for case in CASES:
        bare = classify(case.event())
        with_context = classify(case.event(), everything)
        assert with_context.severity.rank <= bare.severity.rank, case.id


# ---------------------------------------------------------------------------- suppressions

SSO = "key_for_other_user/positive_sso_session_for_deploy_bot"  # 222222222222, 203.0.113.10


def _suppression(**conditions: str) -> Suppression:
    return parse_suppression({"comment": "known-good", **conditions}, "suppressions[0]")


@pytest.mark.parametrize(
    ("conditions", "suppressed"),
    [
        ({"actor_arn": "arn:aws:sts::*:assumed-role/AWSReservedSSO_AdministratorAccess_*/*"}, True),
        ({"actor_arn": "arn:aws:sts::*:assumed-role/Deployer/*"}, False),
        ({"target_user": "deploy-bot"}, True),
        ({"target_user": "Deploy-Bot"}, True),  # IAM names ignore case
        ({"target_user": "deploy"}, False),  # never a substring
        ({"account": "222222222222"}, True),
        ({"account": "111111111111"}, False),
        ({"user_agent": "aws-cli/2.*", "account": "222222222222"}, True),
        ({"user_agent": "Boto3/*", "account": "222222222222"}, False),
        ({"source_network": "203.0.113.0/24"}, True),
        ({"source_network": "203.0.113.10"}, True),  # a single address is a /32
        ({"source_network": "198.51.100.0/24"}, False),
        ({"source_network": "2001:db8::/32"}, False),
        # Every condition of one suppression must hold.
        ({"account": "222222222222", "target_user": "deploy-bot"}, True),
        ({"account": "222222222222", "target_user": "someone-else"}, False),
    ],
    ids=lambda v: "&".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else str(v),
)
def test_suppression_keeps_severity_and_adds_reason(
    conditions: dict[str, str], suppressed: bool
) -> None:
    event = fixture_case(SSO).event()
    plain = classify(event)
    finding = classify(event, suppressions=[_suppression(**conditions)])
    assert finding.severity == plain.severity == Severity.HIGH
    assert finding.suppressed is suppressed
    expected = (*plain.reasons, "suppressed") if suppressed else plain.reasons
    assert finding.reasons == expected
    assert finding.to_record()["reasons"] == list(expected)


def test_user_agent_alone_cannot_suppress() -> None:
    """The caller writes its own user agent; alone it would let an attacker hide a key."""
    with pytest.raises(ValueError, match="user_agent"):
        _suppression(user_agent="Terraform/*")


def test_suppressed_root_key_stays_critical() -> None:
    event = fixture_case("root_actor/positive_root_console_own_key").event()
    finding = classify(event, suppressions=[_suppression(account="111111111111")])
    assert_finding(finding, CRITICAL, {ROOT, CONSOLE, "suppressed"})


def test_two_matching_suppressions_add_the_reason_once() -> None:
    event = fixture_case(SSO).event()
    rules = [_suppression(account="222222222222"), _suppression(target_user="deploy-bot")]
    assert classify(event, suppressions=rules).reasons.count("suppressed") == 1


def test_source_network_ignores_service_names() -> None:
    """A service-made call has a host name, not an IP, in sourceIPAddress."""
    record = fixture_record(SSO)
    record["sourceIPAddress"] = "cloudformation.amazonaws.com"
    finding = classify(
        parse_record(record), suppressions=[_suppression(source_network="0.0.0.0/0")]
    )
    assert not finding.suppressed


def test_suppression_account_falls_back_to_the_target() -> None:
    record = fixture_record(SSO)
    del record["recipientAccountId"]
    del record["userIdentity"]["accountId"]
    target = Target("222222222222", "us-east-1")
    finding = classify(
        parse_record(record), suppressions=[_suppression(account="222222222222")], target=target
    )
    assert finding.suppressed
    assert finding.to_record()["account_id"] == "222222222222"


# ---------------------------------------------------------------------------- to_record()


def _all_findings() -> list[tuple[str, Finding]]:
    return [(c.id, classify(c.event(), c.context())) for c in CASES]


def test_finding_fields_are_the_contract() -> None:
    assert FINDING_FIELDS == CONTRACT_FIELDS


@pytest.mark.parametrize(("case_id", "finding"), _all_findings(), ids=[c.id for c in CASES])
def test_to_record_shape(case_id: str, finding: Finding) -> None:
    record = finding.to_record()
    assert tuple(record) == CONTRACT_FIELDS
    assert json.loads(json.dumps(record)) == record  # plain JSON values only
    assert ISO_Z.fullmatch(record["event_time"])
    assert record["key_create_date"] is None or ISO_Z.fullmatch(record["key_create_date"])
    assert record["event_name"] == "CreateAccessKey"
    assert record["severity"] in {s.value for s in Severity}
    assert record["reasons"]
    assert all(isinstance(r, str) for r in record["reasons"])
    assert record["status"] == "open"
    assert re.fullmatch(r"\d{12}", record["account_id"])
    assert (record["access_key_id"] is None) == (record["error_code"] is not None)
    assert all(isinstance(p, str) and p for p in record["malformed_fields"])
    assert bool(record["malformed_fields"]) == (MALFORMED in record["reasons"])
    json.dumps(record, ensure_ascii=False).encode("utf-8")  # storable: no lone surrogate


def test_to_record_of_an_sso_session() -> None:
    assert classify(fixture_case(SSO).event()).to_record() == {
        "event_id": "76d1c66d-61e4-4b4a-8f4a-44f696fef0b7",
        "event_time": "2025-06-10T09:15:02Z",
        "account_id": "222222222222",
        "region": "us-east-1",
        "event_name": "CreateAccessKey",
        "actor_type": "AssumedRole",
        "actor_arn": (
            "arn:aws:sts::222222222222:assumed-role/"
            "AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com"
        ),
        "actor_name": "alice@example.com",
        "target_user": "deploy-bot",
        "access_key_id": "AKIAETQ6BWL7OAL4WFO2",
        "key_status": "Active",
        "key_create_date": "2025-06-10T09:15:02Z",
        "source_ip": "203.0.113.10",
        "user_agent": (
            "aws-cli/2.17.41 md/awscrt#0.21.2 ua/2.0 os/linux#6.8.0-45-generic md/arch#x86_64 "
            "lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
            "md/distrib#ubuntu.24 md/prompt#off md/command#iam.create-access-key"
        ),
        "error_code": None,
        "severity": "high",
        "reasons": ["key_for_other_user"],
        "status": "open",
        "malformed_fields": [],
        "account_name": None,  # classify knows no names; the hunt adds them
    }


def test_to_record_normalises_odd_sample_times() -> None:
    other = classify(sample_event("panther-analysis__iam-user-creates-key-for-other-user.json"))
    assert other.to_record()["event_time"] == "2022-09-27T17:09:18Z"  # was `2022-09-27 17:09:18`
    assert other.to_record()["key_create_date"] == "2022-09-27T17:09:18Z"  # `Sep 27, 2022 5:...`

    failed = classify(
        sample_event("panther-analysis__failed-createaccesskey-LimitExceededException.json")
    )
    record = failed.to_record()
    assert record["event_time"] == "2023-01-03T01:52:07Z"  # had nanoseconds
    assert record["error_code"] == "LimitExceededException"
    assert (record["access_key_id"], record["key_status"], record["key_create_date"]) == (None,) * 3


def test_to_record_of_the_json_array_sample() -> None:
    record = sample_record(
        "stratus-red-team__iam-create-admin-user-sequence-createuser-attachpolicy-createaccesskey.json"
    )
    finding = classify(parse_record(json.dumps(record)))
    assert finding.to_record()["source_ip"] == "075.050.255.67"  # kept as written
    assert finding.to_record()["region"] == "ap-isob-central-3r"
