"""Walk the whole rule set: every rule has its metadata and realistic fixtures, and each
positive fixture matches while each negative one does not (DESIGN: Panther's rule + tests)."""

from __future__ import annotations

import importlib
import ipaddress
import pkgutil
import re

import pytest

import checks.rules
from checks.model import Severity
from checks.rules import MITRE_TECHNIQUE, SUPPRESSED, Rule, all_rules, same_user
from tests.samples import (
    EXPECTED_FILE,
    FIXTURES_DIR,
    FixtureCase,
    fixture_cases,
    fixture_expectations,
    fixture_rule_ids,
)

RULES: dict[str, Rule] = {rule.id: rule for rule in all_rules()}
CASES = fixture_cases()

# CONTRACT section 3: the reason codes users and scripts rely on.
CONTRACT_REASONS = {
    "root_actor",
    "key_for_other_user",
    "self_service",
    "failed_attempt",
    "console",
    "likely_rotation",
    "malformed",
}


# ---------------------------------------------------------------------------- the rule set


def test_rule_ids_are_unique_and_cover_the_contract() -> None:
    ids = [rule.id for rule in all_rules()]
    assert len(ids) == len(set(ids))
    assert set(ids) >= CONTRACT_REASONS
    assert "suppressed" not in ids  # classify adds that reason itself


def test_every_rule_module_is_registered() -> None:
    modules = {m.name for m in pkgutil.iter_modules(checks.rules.__path__)}
    assert modules == set(RULES), "a module in checks/rules/ is missing from all_rules()"


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_rule_metadata(rule: Rule) -> None:
    # The name is the address: the id is the module, and the module exports this very rule.
    module = importlib.import_module(f"checks.rules.{rule.id}")
    assert module.RULE is rule
    assert rule.matches.__module__ == module.__name__
    assert re.fullmatch(r"[a-z][a-z_]*", rule.id)

    assert rule.title.strip()
    assert "\n" not in rule.title
    assert len(rule.description.strip()) >= 20
    assert rule.mitre == MITRE_TECHNIQUE == "T1098.001"
    assert rule.references, "every rule cites where its behaviour is documented"
    assert all(ref.startswith("https://") for ref in rule.references)
    if rule.severity is not None and rule.severity.rank >= Severity.MEDIUM.rank:
        assert rule.false_positives, "a rule that raises severity says when it is wrong"
    assert all(fp.strip() for fp in rule.false_positives)
    # A rule moves severity in at most one direction.
    moves = (rule.severity, rule.cap, rule.lowers_to, rule.at_least)
    assert sum(x is not None for x in moves) <= 1
    if rule.at_least is not None:
        assert rule.false_positives, "a rule that raises severity says when it is wrong"


def _one_line(text: object) -> bool:
    return isinstance(text, str) and bool(text.strip()) and "\n" not in text


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_rule_has_the_words_the_alert_uses(rule: Rule) -> None:
    assert _one_line(rule.words), "the reason in words, for the alert's Why line"
    assert rule.words != rule.id
    assert _one_line(rule.next_step), "what the on-call does next"
    if rule.headline is not None:
        assert isinstance(rule.headline, tuple)
        assert len(rule.headline) == 2, "(what happened, what was tried when the call failed)"
        assert all(_one_line(h) for h in rule.headline)
        assert rule.headline[0] != rule.headline[1]
    assert all(_one_line(fp) for fp in rule.false_positives)


@pytest.mark.parametrize(
    "rule", [r for r in RULES.values() if r.cap is not None], ids=lambda r: r.id
)
def test_a_capping_rule_caps_each_of_its_events(rule: Rule) -> None:
    """A cap is a function of the event, and gives a severity for every case the rule matches."""
    assert callable(rule.cap)
    matched = [c for c in CASES if rule.matches(c.event(), c.context())]
    assert matched, f"no fixture case matches {rule.id}"
    for case in matched:
        assert isinstance(rule.cap(case.event()), Severity), case.id


@pytest.mark.parametrize("rule_id", RULES)
def test_rule_has_positive_and_negative_fixtures(rule_id: str) -> None:
    cases = fixture_cases(rule_id)
    assert any(c.positive for c in cases), f"no positive_* fixture in {FIXTURES_DIR / rule_id}"
    assert any(not c.positive for c in cases), f"no negative_* fixture in {FIXTURES_DIR / rule_id}"


def test_every_fixture_folder_belongs_to_a_rule() -> None:
    assert set(fixture_rule_ids()) <= set(RULES)


@pytest.mark.parametrize("rule_id", RULES)
def test_rule_expectations_cover_its_fixtures(rule_id: str) -> None:
    """The folder's expected.json names exactly its cases, each with a well-formed finding."""
    assert (FIXTURES_DIR / rule_id / EXPECTED_FILE).is_file(), f"no {EXPECTED_FILE} for {rule_id}"
    expected = fixture_expectations(rule_id)
    assert set(expected) == {c.name for c in fixture_cases(rule_id)}
    known = {*RULES, SUPPRESSED}
    for name, finding in expected.items():
        assert set(finding) <= {"severity", "reasons", "why"}, name
        assert finding["severity"] in {s.value for s in Severity}, name
        assert isinstance(finding["reasons"], list), name
        assert finding["reasons"], f"{name}: every finding has a reason"
        assert set(finding["reasons"]) <= known, f"{name}: unknown reason"
        assert len(finding["reasons"]) == len(set(finding["reasons"])), name
        # Written in the order classify() gives them: all_rules() order, suppressed last.
        order = [*RULES, SUPPRESSED]
        assert finding["reasons"] == sorted(finding["reasons"], key=order.index), name
        assert "why" not in finding or _one_line(finding["why"]), name


# ---------------------------------------------------------------------------- the fixtures


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fixture(case: FixtureCase) -> None:
    rule = RULES[case.rule_id]
    event = case.event()
    assert event.event_name == "CreateAccessKey"
    assert rule.matches(event, case.context()) is case.positive


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fixture_is_realistic_and_synthetic(case: FixtureCase) -> None:
    """Full CloudTrail records, with only documentation accounts, networks and fake keys."""
    for record in [case.record, *case.changes]:
        assert record["eventVersion"] in {"1.08", "1.09"}
        assert record["eventSource"] == "iam.amazonaws.com"
        assert record["eventType"] == "AwsApiCall"
        assert record["awsRegion"] == "us-east-1"
        assert re.fullmatch(r"[0-9a-f-]{36}", record["eventID"])
        assert record["recipientAccountId"] in {"111111111111", "222222222222"}
        assert record["userIdentity"]["accountId"] == record["recipientAccountId"]
        ip = ipaddress.ip_address(record["sourceIPAddress"])
        assert any(ip in ipaddress.ip_network(n) for n in ("198.51.100.0/24", "203.0.113.0/24"))
        text = str(record)
        for key_id in re.findall(r"\b(?:AKIA|ASIA)\w*", text):
            assert re.fullmatch(r"(AKIA|ASIA)[A-Z0-9]{16}", key_id), key_id
        for account in re.findall(r"arn:aws:(?:iam|sts)::(\d+):", text):
            assert account in {"111111111111", "222222222222"}


def test_fixture_event_ids_are_unique() -> None:
    ids = [r["eventID"] for c in CASES for r in [c.record, *c.changes]]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("bob", "bob", True),
        ("Bob", "bob", True),  # IAM user names are unique ignoring case
        ("jack", "jackson", False),
        ("jackson", "jack", False),
        ("bob", "dept/bob", False),  # paths are stripped by the parser, never compared
        ("bob", None, False),
        (None, None, False),
    ],
)
def test_same_user_compares_exact_names(a: str | None, b: str | None, same: bool) -> None:
    assert same_user(a, b) is same
