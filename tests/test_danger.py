"""checks.danger: every table entry against its fixtures (tests/fixtures/danger/, README there),
the ranking and headline, and hostile requestParameters that must give one bounded line."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.danger import (
    DANGERS,
    HEADLINE_PREFIX,
    MAX_VALUE,
    Calls,
    Mark,
    Marked,
    danger_by_id,
    headline,
    marks_for,
    rank,
)
from checks.model import ApiActivity, Severity
from checks.parse import parse_activity

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "danger"
CREATOR_IP = "203.0.113.50"  # where the fixtures' key was created, unless a case says otherwise
ENTRY_IDS = [d.id for d in DANGERS]
# Longest words a mark can have: the longest template with three bounded values and an error.
MAX_WORDS = 300


@dataclass(frozen=True)
class Case:
    entry_id: str
    name: str
    record: dict[str, Any]
    marks: tuple[Mark, ...]
    created_from_ip: str | None
    why: str | None

    @property
    def id(self) -> str:
        return f"{self.entry_id}/{self.name}"

    @property
    def positive(self) -> bool:
        return self.name.startswith("positive_")

    def call(self) -> ApiActivity:
        return parse_activity(json.dumps(self.record))


def _expected(folder: Path) -> dict[str, Any]:
    path = folder / "expected.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    assert isinstance(data, dict), path
    return data


def load_cases() -> list[Case]:
    cases = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        expected = _expected(folder)
        for path in sorted(folder.glob("*.json")):
            if not path.name.startswith(("positive_", "negative_")):
                continue
            want = expected.get(path.stem, {})
            marks = tuple(
                Mark(m["id"], m["words"], Severity(m["severity"])) for m in want.get("marks", [])
            )
            cases.append(
                Case(
                    folder.name,
                    path.stem,
                    json.loads(path.read_text(encoding="utf-8")),
                    marks,
                    want.get("created_from_ip", CREATOR_IP),
                    want.get("why"),
                )
            )
    return cases


CASES = load_cases()


def case(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


def one_line(text: str) -> bool:
    """Non-empty, no line break and no control, format or separator character."""
    bad = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    return (
        bool(text.strip())
        and text == text.strip()
        and not any(unicodedata.category(c) in bad for c in text)
        and not any(c.isspace() and c != " " for c in text)
    )


# ---------------------------------------------------------------------------- the table


def test_entry_ids_are_unique_names() -> None:
    assert len(ENTRY_IDS) == len(set(ENTRY_IDS))
    assert all(re.fullmatch(r"[a-z][a-z_]*", i) for i in ENTRY_IDS)
    assert all(danger_by_id(d.id) is d for d in DANGERS)
    assert danger_by_id("no_such_entry") is None


@pytest.mark.parametrize("danger", DANGERS, ids=ENTRY_IDS)
def test_entry_has_its_words(danger: Any) -> None:
    assert one_line(danger.title)
    assert one_line(danger.next_step)
    assert isinstance(danger.severity, Severity)
    assert danger.severity.rank >= Severity.MEDIUM.rank, "the table lists calls of concern"


@pytest.mark.parametrize("danger", DANGERS, ids=ENTRY_IDS)
def test_named_calls_always_name_their_service(danger: Any) -> None:
    """An entry that names calls names the service too: `AttachUserPolicy` alone is no match."""
    calls: Calls = danger.calls
    if calls.names is not None or calls.except_prefixes:
        assert calls.source is not None
        assert calls.source.endswith(".amazonaws.com")


@pytest.mark.parametrize("entry_id", [d.id for d in DANGERS if d.calls.source is not None], ids=str)
@pytest.mark.parametrize("source", [None, "", "evil.amazonaws.com", "IAM.AMAZONAWS.COM"])
def test_an_event_name_alone_never_matches(entry_id: str, source: str | None) -> None:
    for positive in (c for c in CASES if c.entry_id == entry_id and c.positive):
        call = replace(positive.call(), event_source=source)
        assert entry_id not in ids(marks_for(call, created_from_ip=None)), positive.id


# ---------------------------------------------------------------------------- the fixtures


def ids(marks: tuple[Mark, ...]) -> list[str]:
    return [m.id for m in marks]


def test_every_fixture_folder_is_an_entry() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert folders <= set(ENTRY_IDS)


@pytest.mark.parametrize("entry_id", ENTRY_IDS)
def test_entry_has_positive_and_negative_fixtures(entry_id: str) -> None:
    cases = [c for c in CASES if c.entry_id == entry_id]
    assert any(c.positive for c in cases), f"no positive_* fixture in {FIXTURES / entry_id}"
    assert any(not c.positive for c in cases), f"no negative_* fixture in {FIXTURES / entry_id}"


@pytest.mark.parametrize("entry_id", ENTRY_IDS)
def test_expectations_name_exactly_the_cases(entry_id: str) -> None:
    expected = _expected(FIXTURES / entry_id)
    assert set(expected) == {c.name for c in CASES if c.entry_id == entry_id}
    for name, want in expected.items():
        assert set(want) <= {"marks", "created_from_ip", "why"}, name
        assert isinstance(want["marks"], list), name
        for mark in want["marks"]:
            assert set(mark) == {"id", "severity", "words"}, name
            assert mark["id"] in ENTRY_IDS, name
        assert "why" not in want or one_line(want["why"]), name


@pytest.mark.parametrize("fixture", CASES, ids=[c.id for c in CASES])
def test_fixture(fixture: Case) -> None:
    marks = marks_for(fixture.call(), created_from_ip=fixture.created_from_ip)
    assert marks == fixture.marks
    assert (fixture.entry_id in ids(marks)) is fixture.positive
    assert all(one_line(m.words) and len(m.words) <= MAX_WORDS for m in marks)


@pytest.mark.parametrize("fixture", CASES, ids=[c.id for c in CASES])
def test_fixture_is_realistic_and_synthetic(fixture: Case) -> None:
    record = fixture.record
    assert record["eventVersion"] in {"1.08", "1.09"}
    assert record["eventType"] == "AwsApiCall"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", record["eventID"]
    )
    assert record["recipientAccountId"] in {"111111111111", "222222222222"}
    assert record["userIdentity"]["accountId"] == record["recipientAccountId"]
    assert record["userIdentity"]["accessKeyId"] == "AKIAWNL6TGZF7K2NEWQH"
    assert record["eventSource"].endswith(".amazonaws.com")
    assert ("errorCode" in record) is ("errorMessage" in record)
    source = record["sourceIPAddress"]
    if not (source == "AWS Internal" or source.endswith(".amazonaws.com")):
        ip = ipaddress.ip_address(source)
        ip = ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
        networks = ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
        assert any(ip in ipaddress.ip_network(n) for n in networks), source
    text = json.dumps(record)
    for key_id in re.findall(r"\b(?:AKIA|ASIA)\w*", text):
        assert re.fullmatch(r"(AKIA|ASIA)[A-Z0-9]{16}", key_id), key_id
    for account in re.findall(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d+):", text):
        assert account in {"111111111111", "222222222222"}
    assert "sessionToken" not in text
    assert "secretAccessKey" not in text


def test_fixture_event_ids_are_unique() -> None:
    event_ids = [c.record["eventID"] for c in CASES]
    assert len(event_ids) == len(set(event_ids))


# ---------------------------------------------------------------------------- failed calls


def test_a_failed_call_is_marked_one_step_lower_and_says_it_was_tried() -> None:
    done = case("iam_policy_attach/positive_admin_to_bob").call()
    failed = replace(done, error_code="AccessDenied")
    (mark,) = marks_for(failed, created_from_ip=None)
    assert mark.words == "tried to attach AdministratorAccess to bob (AccessDenied)"
    assert mark.severity is Severity.MEDIUM
    tamper = case("cloudtrail_tamper/positive_delete_trail").call()
    (mark,) = marks_for(replace(tamper, error_code="TrailNotFoundException"), created_from_ip=None)
    assert mark.severity is Severity.HIGH
    assert mark.words == "tried to delete CloudTrail trail org-audit (TrailNotFoundException)"


def test_an_unreadable_error_code_still_says_it_failed() -> None:
    done = case("iam_user_create/positive_create_user").call()
    for code in ("\n\u202e", "x" * 10_000):
        (mark,) = marks_for(replace(done, error_code=code), created_from_ip=None)
        assert mark.words.startswith("tried to create user support-backup (")
        assert one_line(mark.words)
        assert len(mark.words) <= MAX_WORDS


# ---------------------------------------------------------------------------- rank, headline


def at(call: ApiActivity, minute: int, event_id: str) -> ApiActivity:
    return replace(
        call,
        event_time=datetime(2025, 6, 10, 9, 0, tzinfo=UTC) + timedelta(minutes=minute),
        event_id=event_id,
    )


def sample_activity() -> list[ApiActivity]:
    return [
        at(case("new_source_ip/negative_same_ip").call(), 0, "a-plain-first"),
        at(case("sts_session_token/positive_get_session_token_36h").call(), 1, "b-token"),
        at(case("iam_user_create/positive_create_user").call(), 2, "c-user"),
        at(case("cloudtrail_tamper/positive_stop_logging_by_arn").call(), 3, "d-stop"),
        at(case("iam_policy_attach/positive_admin_to_bob").call(), 4, "e-attach"),
        at(case("organizations_write/negative_list_accounts").call(), 5, "f-plain-last"),
    ]


def test_rank_puts_marked_calls_first_worst_then_earliest_then_the_rest_in_time() -> None:
    ranked = rank(list(reversed(sample_activity())), created_from_ip=CREATOR_IP)
    assert [r.call.event_id for r in ranked] == [
        "d-stop",  # critical
        "c-user",  # high, earlier
        "e-attach",  # high, later
        "b-token",  # medium
        "a-plain-first",
        "f-plain-last",
    ]
    assert [r.worst for r in ranked] == [
        Severity.CRITICAL,
        Severity.HIGH,
        Severity.HIGH,
        Severity.MEDIUM,
        None,
        None,
    ]
    assert all(isinstance(r, Marked) for r in ranked)


def test_rank_keeps_every_call_once_whatever_the_input_order() -> None:
    activity = sample_activity()
    once = rank(activity, created_from_ip=CREATOR_IP)
    assert sorted(r.call.event_id for r in once) == sorted(c.event_id for c in activity)
    assert rank(activity[::-1], created_from_ip=CREATOR_IP) == once
    assert rank([], created_from_ip=None) == []


def test_headline_is_the_worst_mark_and_the_earliest_of_equals() -> None:
    ranked = rank(sample_activity(), created_from_ip=CREATOR_IP)
    marks = [m for r in ranked for m in r.marks]
    assert headline(marks) == (
        "the new key has since stopped logging on CloudTrail trail management-events"
    )
    high = [m for m in marks if m.severity is Severity.HIGH]
    assert headline(high) == HEADLINE_PREFIX + "created user support-backup"
    assert headline([]) is None
    assert (
        headline(m for r in rank(sample_activity()[:1], created_from_ip=None) for m in r.marks)
        is None
    )


def test_the_brief_example_headline() -> None:
    call = case("iam_policy_attach/positive_admin_to_bob").call()
    assert headline(marks_for(call, created_from_ip=CREATOR_IP)) == (
        "the new key has since attached AdministratorAccess to bob"
    )


# ---------------------------------------------------------------------------- hostile values

HOSTILE_TEXT = [
    "x" * 1_000_000,
    "bob\n<!channel> urgent",
    "<!channel>",
    "bob\r\n\u2028\u2029\x00\x1b[31m",
    "\u202eevil\u200b\ufeff",
    "   ",
    "",
    "`code` *bold* <https://evil.example|click>",
    "\ud800",
    "a/" * 50_000,
    "arn:aws:iam::222222222222:role/" + "r" * 100_000,
]
HOSTILE_VALUES: list[Any] = [
    *HOSTILE_TEXT,
    None,
    True,
    False,
    0,
    -1,
    10**30,
    1.5e308,
    [],
    ["bob"],
    {},
    {"name": "bob"},
    [{"name": "S3_DATA_EVENTS", "status": "DISABLED"}] * 1000,
]
# Every field a reader looks at.
PARAMETERS = [
    "userName",
    "roleName",
    "groupName",
    "policyName",
    "policyArn",
    "roleArn",
    "durationSeconds",
    "name",
    "trailName",
    "detectorId",
    "enable",
    "features",
]


def table_calls() -> list[tuple[str, str]]:
    """Every (eventSource, eventName) the fixtures hold: each entry's calls, and reads."""
    return sorted({(c.record["eventSource"], c.record["eventName"]) for c in CASES})


def base_record(source: str, name: str) -> dict[str, Any]:
    record = copy.deepcopy(case("iam_policy_attach/positive_admin_to_bob").record)
    record.update(eventSource=source, eventName=name, sourceIPAddress="198.51.100.9")
    return record


def assert_bounded(marks: tuple[Mark, ...]) -> None:
    for mark in marks:
        assert mark.id in ENTRY_IDS
        assert isinstance(mark.severity, Severity)
        assert one_line(mark.words), repr(mark.words)
        assert len(mark.words) <= MAX_WORDS, len(mark.words)


@pytest.mark.parametrize(("source", "name"), table_calls())
def test_hostile_parameters_give_bounded_lines(source: str, name: str) -> None:
    for value in HOSTILE_VALUES:
        record = base_record(source, name)
        record["requestParameters"] = dict.fromkeys(PARAMETERS, value)
        call = parse_activity(record)
        assert_bounded(marks_for(call, created_from_ip=CREATOR_IP))
        failed = replace(call, error_code=value if isinstance(value, str) else "AccessDenied")
        assert_bounded(marks_for(failed, created_from_ip=CREATOR_IP))


@pytest.mark.parametrize("text", HOSTILE_TEXT[:5], ids=range(5))
def test_hostile_names_are_shown_cut_and_on_one_line(text: str) -> None:
    record = copy.deepcopy(case("iam_user_create/positive_create_user").record)
    record["requestParameters"] = {"userName": text}
    (mark,) = marks_for(parse_activity(record), created_from_ip=None)
    shown = mark.words.removeprefix("created user ")
    assert len(shown) <= MAX_VALUE
    assert one_line(shown)
    if len(text) > MAX_VALUE:
        assert shown.endswith("…")
    if "<!channel>" in text:
        assert "<!channel>" in shown, "kept as text: escaping is the renderer's"


@pytest.mark.parametrize("value", [None, 7, ["bob"], {"u": "bob"}, "", "\n\t"])
def test_an_unreadable_user_is_said_so(value: Any) -> None:
    call = case("iam_policy_attach/positive_admin_to_bob").call()
    request = {"userName": value, "policyArn": value}
    (mark,) = marks_for(replace(call, request=request), created_from_ip=None)
    assert mark.words == "attached an unknown policy to an unknown user"


def test_only_a_json_false_turns_guardduty_off() -> None:
    call = case("guardduty_tamper/negative_update_detector_enable").call()
    not_false: tuple[Any, ...] = (True, None, 0, "false", "FALSE", [], {})
    for enable in not_false:
        request = {"detectorId": "d", "enable": enable}
        assert marks_for(replace(call, request=request), created_from_ip=None) == ()
    (mark,) = marks_for(replace(call, request={"enable": False}), created_from_ip=None)
    assert mark.words == "turned off GuardDuty detector an unknown detector"


@pytest.mark.parametrize(
    ("source_ip", "creator", "marked"),
    [
        ("198.51.100.9", "203.0.113.50", True),
        ("203.0.113.50", "203.0.113.50", False),
        ("2001:db8::1", "2001:0db8:0000::0001", False),  # one address, two spellings
        ("fe80::1%\n<!channel>", "203.0.113.50", False),  # a scope ID is free text
        ("203.0.113.50", "AWS Internal", False),
        ("iam.amazonaws.com", "203.0.113.50", False),
        ("AWS Internal", "203.0.113.50", False),
        (None, "203.0.113.50", False),
        ("198.51.100.9", None, False),
        ("198.51.100.9 ", "203.0.113.50", False),  # not an address as written
    ],
)
def test_source_address(source_ip: str | None, creator: str | None, marked: bool) -> None:
    call = replace(case("new_source_ip/negative_same_ip").call(), source_ip=source_ip)
    assert ("new_source_ip" in ids(marks_for(call, created_from_ip=creator))) is marked


def test_a_role_arn_without_a_readable_account_is_not_marked() -> None:
    call = case("sts_cross_account_role/positive_role_in_other_account").call()
    for arn in (
        "arn:aws:iam::2222:role/x",
        "not an arn",
        222222222222,
        None,
        "arn:aws:iam::２２２２２２２２２２２２:role/x",
    ):  # full-width digits
        assert marks_for(replace(call, request={"roleArn": arn}), created_from_ip=None) == ()
    (mark,) = marks_for(
        replace(call, request={"roleArn": "arn:aws-us-gov:iam::222222222222:role/a/b/deep"}),
        created_from_ip=None,
    )
    assert mark.words == "assumed role deep in 222222222222"


def test_a_call_without_request_parameters_reads_as_unknown() -> None:
    call = case("iam_inline_policy/positive_inline_on_bob").call()
    (mark,) = marks_for(replace(call, request=None), created_from_ip=None)
    assert mark.words == "put inline policy an unnamed policy on an unknown user"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats() | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(table_calls()),
    st.dictionaries(st.sampled_from(PARAMETERS) | st.text(max_size=8), JSON, max_size=6),
    st.none() | st.text(max_size=80),
    st.none() | st.text(max_size=40) | st.sampled_from(["198.51.100.9", "2001:db8::9"]),
)
def test_any_request_gives_bounded_lines_and_never_raises(
    call: tuple[str, str], request: dict[str, Any], error: str | None, source_ip: str | None
) -> None:
    record = base_record(*call)
    record["requestParameters"] = request
    if error is not None:
        record["errorCode"] = error
    if source_ip is not None:
        record["sourceIPAddress"] = source_ip
    activity = parse_activity(record)
    marks = marks_for(activity, created_from_ip=CREATOR_IP)
    assert_bounded(marks)
    ranked = rank([activity], created_from_ip=CREATOR_IP)
    assert ranked == [Marked(activity, marks)]
    line = headline(marks)
    assert line is None or (one_line(line) and len(line) <= MAX_WORDS + len(HEADLINE_PREFIX))
