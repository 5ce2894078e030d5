"""`keyhunt hunt` and `keyhunt key` end to end: the real CLI process against the AWS fake.

Each test seeds CloudTrail records (tests/scenario.py) into the fake, runs `python -m bot` in a
subprocess whose only AWS endpoint is the fake, and checks what a user or a script sees:
stdout, stderr and the exit code, plus the LookupEvents calls the fake recorded.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyhunt_dev.aws import FakeAWS, LookupCall
from tests.conftest import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY, keyhunt_env, run_keyhunt
from tests.scenario import (
    CALLER,
    DENIED,
    EMPTY,
    FINDING_KEYS,
    PEER,
    REGION,
    DenyMode,
    Expected,
    Scenario,
    api_call,
    assumed_role,
    bulk_creations,
    create_access_key,
    hunt_scenario,
    iam_user,
    role_arn,
    root,
)

PAGE = 50  # LookupEvents' largest page
OTHER_REGION = "us-west-2"
# Control sequences a malicious caller can put in any string CloudTrail records: set the
# terminal title, clear the screen, colour the text.
TERMINAL_ATTACK = "\x1b]0;pwned\x07\x1b[2J\x1b[31mEVIL\x1b[0m"


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def records(self) -> list[dict[str, Any]]:
        """stdout as JSON lines."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def failures(self) -> dict[str, tuple[str, str]]:
        """What stderr names as unread: `account/region` -> (stage, error code)."""
        found = re.findall(
            r"^keyhunt: (\d{12}/[a-z0-9-]+): (\w+) failed: (\w+)", self.stderr, re.MULTILINE
        )
        return {target: (stage, code) for target, stage, code in found}


Keyhunt = Callable[..., Run]


@pytest.fixture
def fake(clean_fake_aws: FakeAWS) -> FakeAWS:
    return clean_fake_aws


@pytest.fixture
def keyhunt(fake: FakeAWS, tmp_path: Path) -> Keyhunt:
    """`keyhunt(*args, **env)` runs the CLI against the fake; env values override (None unsets)."""

    def run(*args: str, **env: str | None) -> Run:
        settings: dict[str, str | None] = {
            # A short deadline, so a regression cannot hang the suite on throttling.
            "KEYHUNT_THROTTLE_DEADLINE": "20",
            # IAM enrichment (on by default) is proven by the scenario test and in
            # test_hunt_engine.py; elsewhere it would only cost time.
            "KEYHUNT_ENRICH": "false",
            **env,
        }
        done = run_keyhunt(args, keyhunt_env(fake, tmp_path, **settings), cwd=tmp_path)
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def hunt_jsonl(keyhunt: Keyhunt, *extra: str, **env: str | None) -> Run:
    return keyhunt("hunt", "--last", "24h", "--format", "jsonl", *extra, **env)


def assert_findings(records: Sequence[dict[str, Any]], expected: Sequence[Expected]) -> None:
    """Exactly the expected findings, each with every CONTRACT key, newest first."""
    for record in records:
        assert set(record) == set(FINDING_KEYS), record
    times = [record["event_time"] for record in records]
    assert times == sorted(times, reverse=True), "findings must be newest first"
    got = [(r["event_id"], r["severity"], tuple(r["reasons"])) for r in records]
    assert len(got) == len(set(got)), "a finding was printed twice"
    assert set(got) == {e.triple for e in expected}
    by_id = {record["event_id"]: record for record in records}
    for e in expected:
        record = by_id[e.event_id]
        assert {key: record[key] for key in e.fields()} == e.fields()


def assert_lookup_shape(call: LookupCall) -> None:
    """One attribute, an explicit window, full pages: what the issue asks of every call."""
    params = call.params
    assert set(params) <= {"LookupAttributes", "StartTime", "EndTime", "MaxResults", "NextToken"}
    assert len(params["LookupAttributes"]) == 1
    assert params["LookupAttributes"][0]["AttributeKey"] == "EventName"
    assert params["MaxResults"] == PAGE
    assert params["StartTime"] < params["EndTime"]


# --------------------------------------------------------------------------- the scenario


def test_scenario_prints_exactly_its_findings(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    scenario = hunt_scenario(throttle=3)
    scenario.seed(fake)

    # Exactly the command, with the product's defaults (IAM enrichment on).
    run = hunt_jsonl(keyhunt, KEYHUNT_ACCOUNTS=scenario.accounts_setting, KEYHUNT_ENRICH=None)

    assert run.code == 1, run.stderr  # one account could not be read
    assert_findings(run.records, scenario.expected)
    assert {f.severity for f in scenario.expected} == {"critical", "high", "medium", "low"}
    assert run.failures == {f"{DENIED}/{REGION}": ("lookup", "AccessDeniedException")}
    # Broken CreateAccessKey records are still findings (reason `malformed`, in the expected
    # list above), counted and each one logged; the rest of the page is used.
    assert scenario.malformed_count == scenario.unreadable_count == 1
    assert (
        f"keyhunt: {scenario.malformed_count} CloudTrail record(s) could be read only in part"
    ) in run.stderr
    assert (
        f"keyhunt: {scenario.unreadable_count} CloudTrail record(s) could not be read"
    ) in run.stderr
    for raw in scenario.raw:
        assert raw.event_id in run.stderr
    malformed = [r for r in run.records if "malformed" in r["reasons"]]
    assert len(malformed) == 2
    assert all(r["malformed_fields"] for r in malformed)
    assert all(r["malformed_fields"] == [] for r in run.records if r not in malformed)

    for call in fake.calls:
        assert_lookup_shape(call)
    # 222222222222: three throttled attempts, then every page of 261 events, following NextToken.
    creates = fake.lookup_calls(PEER, REGION, "CreateAccessKey")
    pages = math.ceil(sum(f.account_id == PEER for f in scenario.findings) / PAGE)
    assert [c.outcome for c in creates] == ["ThrottlingException"] * 3 + ["ok"] * pages
    served = [c for c in creates if c.outcome == "ok"]
    assert ["NextToken" in c.params for c in served] == [False] + [True] * (pages - 1)
    window = served[0].params["EndTime"] - served[0].params["StartTime"]
    assert window == pytest.approx(24 * 3600, abs=1)
    # An empty account costs exactly one call; nothing to explain, so no rotation context.
    assert len(fake.lookup_calls(EMPTY)) == 1
    assert [c.outcome for c in fake.lookup_calls(DENIED)] == ["AccessDeniedException"]
    for account in (CALLER, PEER):
        for name in ("UpdateAccessKey", "DeleteAccessKey"):
            (context,) = fake.lookup_calls(account, REGION, name)
            assert context.params["StartTime"] == pytest.approx(
                served[0].params["StartTime"] - 24 * 3600, abs=1
            )


# Partial either way: the scenario holds a record that is not JSON (CONTRACT exit 1; the
# clean exit 0 is test_account_filter_searches_only_that_account's).
@pytest.mark.parametrize(("deny", "exit_code"), [(None, 1), ("assume_role", 1)])
def test_every_readable_account_is_searched_in_us_east_1_only(
    keyhunt: Keyhunt, fake: FakeAWS, deny: DenyMode | None, exit_code: int
) -> None:
    """With a second region configured, CreateAccessKey is still looked up in us-east-1
    alone: IAM's events are recorded only there (this test used to expect a call in
    us-west-2 too, a call that can only ever answer nothing)."""
    scenario = hunt_scenario(bulk=3, deny=deny)
    scenario.seed(fake)

    run = hunt_jsonl(
        keyhunt,
        KEYHUNT_ACCOUNTS=scenario.accounts_setting,
        KEYHUNT_REGIONS=f"{REGION},{OTHER_REGION}",
    )

    assert run.code == exit_code, run.stderr
    assert scenario.unreadable_count == 1
    assert "keyhunt: 1 CloudTrail record(s) could not be read" in run.stderr
    assert_findings(run.records, scenario.expected)
    readable = [a for a in scenario.accounts if a not in scenario.unreadable]
    assert {(c.account_id, c.region) for c in fake.calls} == {
        (account, REGION) for account in readable
    }
    assert fake.lookup_calls(region=OTHER_REGION) == []
    if deny is None:
        assert run.failures == {}
    else:
        assert run.failures == {f"{DENIED}/{REGION}": ("assume_role", "AccessDenied")}


def test_us_east_1_is_hunted_when_the_regions_leave_it_out(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    """KEYHUNT_REGIONS=us-west-2 alone would otherwise find nothing, silently: the hunt
    reads us-east-1 anyway, and never asks us-west-2 for CreateAccessKey."""
    now = datetime.now(UTC)
    made = create_access_key(iam_user(CALLER, "alice"), now - timedelta(hours=1))
    fake.add_events(CALLER, REGION, [made])

    run = hunt_jsonl(keyhunt, KEYHUNT_ACCOUNTS=CALLER, KEYHUNT_REGIONS=OTHER_REGION)

    assert run.code == 0, run.stderr
    assert [r["event_id"] for r in run.records] == [made["eventID"]]
    assert {c.region for c in fake.calls} == {REGION}


# --------------------------------------------------------------------------- fail closed


def test_unreadable_targets_are_named_and_the_rest_still_printed(
    keyhunt: Keyhunt, fake: FakeAWS
) -> None:
    now = datetime.now(UTC)
    scenario = Scenario(now=now, accounts=[CALLER, PEER, DENIED, EMPTY])
    for account in scenario.accounts:
        principal = root(account)
        scenario.expect(
            create_access_key(principal, now - timedelta(minutes=5)),
            "critical",
            ["root_actor"],
            principal=principal,
            target_user="root",
        )
    scenario.seed(fake)
    fake.throttle(CALLER, REGION, 10_000)  # throttled past the deadline
    fake.break_lookup(PEER)  # endpoint answers 503
    fake.deny_lookup(DENIED)  # access denied

    run = hunt_jsonl(
        keyhunt, KEYHUNT_ACCOUNTS=scenario.accounts_setting, KEYHUNT_THROTTLE_DEADLINE="2"
    )

    assert run.code == 1
    assert run.failures == {
        f"{CALLER}/{REGION}": ("lookup", "Throttled"),
        f"{PEER}/{REGION}": ("lookup", "ServiceUnavailable"),
        f"{DENIED}/{REGION}": ("lookup", "AccessDeniedException"),
    }
    assert_findings(run.records, [f for f in scenario.findings if f.account_id == EMPTY])


def test_unreachable_endpoint_names_every_target(keyhunt: Keyhunt) -> None:
    run = hunt_jsonl(
        keyhunt,
        KEYHUNT_ACCOUNTS=f"{CALLER},{PEER}",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens there
    )

    assert run.code == 1
    assert set(run.failures) == {f"{CALLER}/{REGION}", f"{PEER}/{REGION}"}
    assert run.stdout == ""


def test_table_summary_does_not_call_an_unread_hunt_clean(keyhunt: Keyhunt) -> None:
    run = keyhunt("hunt", "--format", "table", AWS_ENDPOINT_URL="http://127.0.0.1:9")

    assert run.code == 1
    summary = run.stdout.splitlines()[0]
    assert re.search(r"could not|unread|not (be )?(read|searched)|failed|partial", summary, re.I)


# --------------------------------------------------------------------------- output formats


def test_csv_has_contract_columns_and_defuses_formulas(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    now = datetime.now(UTC)
    mallory = iam_user(CALLER, "mallory")
    formula = "=cmd|' /C calc'!A0"
    made = create_access_key(
        root(CALLER), now - timedelta(minutes=5), user="admin", user_agent=formula
    )
    denied = create_access_key(
        mallory,
        now - timedelta(minutes=6),
        user="ops",
        user_agent="@SUM(1+1)*cmd|' /C calc'!A0",
        error_code="AccessDenied",
    )
    fake.add_events(CALLER, REGION, [made, denied])

    run = keyhunt("hunt", "--format", "csv")

    assert run.code == 0, run.stderr
    assert run.stdout.splitlines()[0] == ",".join(FINDING_KEYS)
    rows = {row["event_id"]: row for row in csv.DictReader(io.StringIO(run.stdout))}
    assert rows[made["eventID"]]["user_agent"] == "'" + formula
    assert rows[denied["eventID"]]["user_agent"].startswith("'@")
    assert rows[denied["eventID"]]["reasons"] == "key_for_other_user;failed_attempt"
    assert rows[denied["eventID"]]["access_key_id"] == ""  # null: the call failed
    for row in rows.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), row


def test_table_has_a_summary_and_no_terminal_escapes(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    now = datetime.now(UTC)
    alice = iam_user(CALLER, "alice")
    fake.add_events(
        CALLER,
        REGION,
        [
            create_access_key(
                alice,
                now - timedelta(minutes=5),
                user="bob",
                user_agent=TERMINAL_ATTACK,
                error_code="AccessDenied",
            ),
            create_access_key(  # request parameters are whatever the caller sent
                alice,
                now - timedelta(minutes=6),
                user="bob" + TERMINAL_ATTACK,
                user_agent="aws-cli/2.15.30 " + TERMINAL_ATTACK,
                error_code="ValidationError",
            ),
        ],
    )

    run = keyhunt("hunt", "--format", "table")

    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Hunted 1 account × 1 region")
    assert "2 findings" in lines[0]
    assert sum("alice" in line and "bob" in line for line in lines[1:]) == 2
    assert "\x1b" not in run.stdout
    assert "\x07" not in run.stdout


# --------------------------------------------------------------------------- records we cannot read


def test_an_unreadable_record_is_a_partial_hunt_that_still_shows_the_key(
    keyhunt: Keyhunt, fake: FakeAWS
) -> None:
    """A CloudTrailEvent that is not JSON: its CreateAccessKey is still printed (from the
    LookupEvents envelope, reason `malformed`), named on stderr, and the exit is partial."""
    now = datetime.now(UTC)
    good = create_access_key(iam_user(CALLER, "dave"), now - timedelta(minutes=5))
    fake.add_events(CALLER, REGION, [good])
    key = "AKIA" + "B" * 16
    fake.add_raw_event(
        CALLER,
        REGION,
        event_id="0b6c3c4e-1f2a-4d5b-9c8d-7e6f5a4b3c2d",
        event_name="CreateAccessKey",
        event_time=now - timedelta(minutes=4),
        cloudtrail_event='{"eventVersion": "1.09", "eventName": "CreateAcc',
        username="mallory",
        resources=[("AWS::IAM::AccessKey", key), ("AWS::IAM::User", "bob")],
    )
    fake.add_raw_event(  # rotation context that cannot be read: counted, not a finding
        CALLER,
        REGION,
        event_id="1c7d4d5f-2a3b-4e6c-8d9e-8f7a6b5c4d3e",
        event_name="UpdateAccessKey",
        event_time=now - timedelta(minutes=3),
        cloudtrail_event="<html>502 Bad Gateway</html>",
    )

    run = hunt_jsonl(keyhunt)

    assert run.code == 1, run.stderr
    assert "keyhunt: 2 CloudTrail record(s) could not be read" in run.stderr
    by_id = {r["event_id"]: r for r in run.records}
    assert set(by_id) == {good["eventID"], "0b6c3c4e-1f2a-4d5b-9c8d-7e6f5a4b3c2d"}
    broken = by_id["0b6c3c4e-1f2a-4d5b-9c8d-7e6f5a4b3c2d"]
    assert (broken["severity"], broken["reasons"]) == ("medium", ["malformed"])
    assert (broken["access_key_id"], broken["target_user"], broken["actor_name"]) == (
        key,
        "bob",
        "mallory",
    )
    assert (broken["account_id"], broken["region"], broken["actor_type"]) == (CALLER, REGION, None)
    assert broken["malformed_fields"][0].startswith("CloudTrailEvent: not JSON")
    assert by_id[good["eventID"]]["malformed_fields"] == []


@pytest.mark.parametrize("fmt", ["jsonl", "table", "csv"])
def test_a_lone_surrogate_never_breaks_the_output(
    keyhunt: Keyhunt, fake: FakeAWS, fmt: str
) -> None:
    """`"userAgent": "aws-cli/2 \\ud800"` is valid JSON with no UTF-8 form: it is printed as
    U+FFFD, the finding says what was replaced, and the hunt is complete (exit 0)."""
    now = datetime.now(UTC)
    record = create_access_key(
        iam_user(CALLER, "carol"), now - timedelta(minutes=5), user_agent="aws-cli/2 \ud800"
    )
    text = json.dumps(record)
    assert "\\ud800" in text
    fake.add_events(CALLER, REGION, [text])

    run = keyhunt("hunt", "--format", fmt)

    assert run.code == 0, run.stderr
    assert "could be read only in part" in run.stderr
    if fmt == "jsonl":
        (found,) = run.records
        assert found["user_agent"] == "aws-cli/2 \ufffd"
        assert found["reasons"] == ["self_service", "malformed"]
        assert found["malformed_fields"] == ["userAgent: lone surrogate replaced by U+FFFD"]
    elif fmt == "csv":
        (row,) = csv.DictReader(io.StringIO(run.stdout))
        assert row["malformed_fields"] == "userAgent: lone surrogate replaced by U+FFFD"
        assert row["user_agent"] == "aws-cli/2 \ufffd"
    else:
        assert "self_service,malformed" in run.stdout


def test_the_table_shows_whole_key_ids(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    now = datetime.now(UTC)
    key = "AKIA" + "C" * 14 + "XY"
    fake.add_events(CALLER, REGION, [create_access_key(iam_user(CALLER, "dave"), now, key_id=key)])

    run = keyhunt("hunt", "--format", "table")

    assert run.code == 0, run.stderr
    (row,) = [line for line in run.stdout.splitlines() if "dave" in line]
    assert key in row.split()
    assert "…" not in row


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["hunt", "--last", "91d"], {}, "--last"),
        (["hunt", "--last", "abc"], {}, "--last"),
        (["hunt", "--account", "123"], {}, "--account"),
        (["hunt", "--min-severity", "severe"], {}, "--min-severity"),
        (["hunt", "--format", "xml"], {}, "--format"),
        (["hunt", "--until", "2026-01-01"], {}, "--until"),
        (["hunt"], {"KEYHUNT_REGIONS": "us-east-1,mars-north-1"}, "KEYHUNT_REGIONS"),
        (["hunt"], {"KEYHUNT_ACCOUNTS": "12345"}, "KEYHUNT_ACCOUNTS"),
        (["hunt"], {"KEYHUNT_THROTTLE_DEADLINE": "soon"}, "KEYHUNT_THROTTLE_DEADLINE"),
        (["key", "not-a-key"], {}, "ACCESS_KEY_ID"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_usage_errors_exit_2_and_name_the_option(
    keyhunt: Keyhunt, fake: FakeAWS, args: list[str], env: dict[str, str], named: str
) -> None:
    run = keyhunt(*args, **env)

    assert run.code == 2, run.stderr
    assert named in run.stderr
    assert fake.calls == []  # nothing was hunted


def test_unknown_config_key_exits_2_and_names_it(
    keyhunt: Keyhunt, fake: FakeAWS, tmp_path: Path
) -> None:
    config = tmp_path / "keyhunt.yaml"
    config.write_text("regions: [us-east-1]\nacounts: ['222222222222']\n", encoding="utf-8")

    run = keyhunt("--config", str(config), "hunt")

    assert run.code == 2
    assert "'acounts'" in run.stderr
    assert "accounts" in run.stderr.replace("'acounts'", "")  # and says what is allowed
    assert fake.calls == []


# --------------------------------------------------------------------------- filters


FILTERS: dict[str, tuple[list[str], Callable[[Expected], bool]]] = {
    "user": (["--user", "jack"], lambda f: f.target_user == "jack"),  # exactly: not jackson
    "actor": (["--actor", "jack"], lambda f: f.actor_name == "jack"),
    "min-severity": (["--min-severity", "high"], lambda f: f.severity in ("critical", "high")),
}


def test_filters_print_exactly_the_matching_findings(
    fake: FakeAWS, tmp_path: Path, subtests: pytest.Subtests
) -> None:
    scenario = hunt_scenario(bulk=5, deny=None)
    scenario.accounts = [CALLER]  # holds a case for every filter; the runs share the CPUs
    scenario.seed(fake)
    env = keyhunt_env(
        fake, tmp_path, KEYHUNT_ACCOUNTS=scenario.accounts_setting, KEYHUNT_ENRICH="false"
    )

    def hunt(args: list[str]) -> Run:
        done = run_keyhunt(["hunt", "--format", "jsonl", *args], env, cwd=tmp_path)
        return Run(done.returncode, done.stdout, done.stderr)

    with ThreadPoolExecutor(max_workers=len(FILTERS)) as pool:  # independent processes
        runs = dict(zip(FILTERS, pool.map(hunt, [a for a, _ in FILTERS.values()]), strict=True))

    for name, (_, wanted) in FILTERS.items():
        with subtests.test(filter=name):
            # Partial: the scenario's record that is not JSON may be any user's key.
            assert runs[name].code == 1, runs[name].stderr
            assert "keyhunt: 1 CloudTrail record(s) could not be read" in runs[name].stderr
            expected = [f for f in scenario.expected if wanted(f)]
            assert expected, "the scenario must hold something for every filter"
            assert_findings(runs[name].records, expected)


def test_account_filter_searches_only_that_account(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    scenario = hunt_scenario(bulk=2, deny=None)
    scenario.seed(fake)

    run = hunt_jsonl(keyhunt, "--account", PEER, KEYHUNT_ACCOUNTS=scenario.accounts_setting)

    assert run.code == 0, run.stderr
    assert_findings(run.records, [f for f in scenario.expected if f.account_id == PEER])
    assert {c.account_id for c in fake.calls} == {PEER}


def test_account_filter_outside_the_configuration_is_not_silently_empty(
    keyhunt: Keyhunt, fake: FakeAWS
) -> None:
    fake.add_events(PEER, REGION, [create_access_key(root(PEER), datetime.now(UTC))])

    run = hunt_jsonl(keyhunt, "--account", PEER, KEYHUNT_ACCOUNTS=CALLER)

    assert run.code != 0
    assert PEER in run.stderr


def test_suppressed_findings_are_still_shown(
    keyhunt: Keyhunt, fake: FakeAWS, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    terraform = assumed_role(CALLER, "TerraformProvisioner", "tf-apply")
    provisioned = bulk_creations(terraform, 3, now - timedelta(minutes=1))
    alice = iam_user(CALLER, "alice")
    by_hand = create_access_key(alice, now - timedelta(minutes=30), user="bob")
    fake.add_events(CALLER, REGION, [*provisioned, by_hand])
    config = tmp_path / "keyhunt.yaml"
    config.write_text(
        "suppressions:\n"
        "  - comment: Terraform provisions service users\n"
        f"    actor_arn: 'arn:aws:sts::{CALLER}:assumed-role/TerraformProvisioner/*'\n",
        encoding="utf-8",
    )

    run = keyhunt("--config", str(config), "hunt", "--format", "jsonl")

    assert run.code == 0, run.stderr
    reasons = {r["event_id"]: (r["severity"], r["reasons"]) for r in run.records}
    for record in provisioned:
        assert reasons[record["eventID"]] == ("high", ["key_for_other_user", "suppressed"])
    assert reasons[by_hand["eventID"]] == ("high", ["key_for_other_user"])


# --------------------------------------------------------------------------- keyhunt key


@pytest.mark.parametrize(
    "regions",
    # us-east-1 left out: the creation and the key's IAM and STS calls are still read there
    [f"{REGION},{OTHER_REGION}", OTHER_REGION],
    ids=["both-regions", "us-east-1-left-out"],
)
def test_key_investigation_finds_creation_activity_and_iam_status(
    keyhunt: Keyhunt, fake: FakeAWS, regions: str
) -> None:
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=fake.endpoint_url,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
    )
    user = f"svc-backup-{uuid.uuid4().hex[:8]}"  # moto's IAM outlives each test
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    now = datetime.now(UTC)
    admin, owner = iam_user(CALLER, "admin"), iam_user(CALLER, user)
    creation = create_access_key(
        admin, now - timedelta(hours=3), user=user, key_id=key, user_agent=TERMINAL_ATTACK
    )
    used = [
        api_call(
            owner,
            now - timedelta(hours=2),
            event_source="s3.amazonaws.com",
            event_name="ListBuckets",
            key_id=key,
            user_agent=TERMINAL_ATTACK,
        ),
        api_call(
            owner,
            now - timedelta(minutes=90),
            event_source="sts.amazonaws.com",
            event_name="GetCallerIdentity",
            key_id=key,
        ),
    ]
    elsewhere = api_call(
        owner,
        now - timedelta(hours=1),
        event_source="ec2.amazonaws.com",
        event_name="DescribeInstances",
        region=OTHER_REGION,
        key_id=key,
    )
    other_key = api_call(
        owner,
        now - timedelta(minutes=30),
        event_source="s3.amazonaws.com",
        event_name="ListBuckets",
        key_id="AKIAOTHERKEYOTHERKEY",
    )
    fake.add_events(CALLER, REGION, [creation, *used, other_key])
    fake.add_events(CALLER, OTHER_REGION, [elsewhere])
    env = {"KEYHUNT_ACCOUNTS": CALLER, "KEYHUNT_REGIONS": regions}

    as_json = keyhunt("key", key, "--last", "7d", "--format", "json", **env)
    as_table = keyhunt("key", key, "--last", "7d", **env)

    assert as_json.code == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["creation"]["event_id"] == creation["eventID"]
    assert report["creation"]["actor_name"] == "admin"
    assert report["creation"]["target_user"] == user
    assert (report["creation"]["severity"], report["creation"]["reasons"]) == (
        "high",
        ["key_for_other_user"],
    )
    assert [a["event_id"] for a in report["activity"]] == [r["eventID"] for r in (*used, elsewhere)]
    assert report["iam"]["user_name"] == user
    assert [(k["access_key_id"], k["status"]) for k in report["iam"]["keys"]] == [(key, "Active")]
    assert report["errors"] == []

    assert as_table.code == 0, as_table.stderr
    assert f"Access key {key}" in as_table.stdout
    assert "Activity (3 calls)" in as_table.stdout
    assert f"IAM: owner {user}" in as_table.stdout
    assert "\x1b" not in as_table.stdout
    assert "\x07" not in as_table.stdout


# --------------------------------------------------------------------------- nothing read at all


NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}


@pytest.mark.parametrize(
    "args",
    [
        ("hunt", "--last", "1h", "--format", "jsonl"),
        ("key", "AKIAIOSFODNN7EXAMPLE"),
        ("poll", "--once"),
    ],
)
def test_no_credentials_at_all_is_one_line_naming_the_cause_and_the_fix(
    keyhunt: Keyhunt, args: tuple[str, ...]
) -> None:
    run = keyhunt(*args, **NO_CREDENTIALS)

    assert run.code == 1  # CONTRACT section 1: some (here every) target could not be read
    assert "Traceback" not in run.stderr
    assert "could not list accounts" not in run.stderr  # the cause, not a guess
    (why,) = [line for line in run.stderr.splitlines() if "nothing could be read" in line]
    assert "NoCredentialsError" in why
    assert "aws sts get-caller-identity" in why
    assert run.stdout.strip() in ("", "poll: 0 new finding(s), not posted")


def test_every_assume_role_refused_names_the_role_and_its_template(
    keyhunt: Keyhunt, fake: FakeAWS
) -> None:
    for account in (PEER, EMPTY):
        fake.deny_assume_role(f"arn:aws:iam::{account}:role/KeyHuntReadOnly")

    run = hunt_jsonl(keyhunt, KEYHUNT_ACCOUNTS=f"{PEER},{EMPTY}")

    assert run.code == 1
    assert run.failures == {
        f"{PEER}/{REGION}": ("assume_role", "AccessDenied"),
        f"{EMPTY}/{REGION}": ("assume_role", "AccessDenied"),
    }
    (why,) = [line for line in run.stderr.splitlines() if "nothing could be read" in line]
    assert "every AssumeRole into KeyHuntReadOnly was refused" in why
    assert "config/cross-account-role.yaml" in why


def test_a_partial_hunt_says_nothing_of_nothing_read(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    fake.deny_assume_role(f"arn:aws:iam::{PEER}:role/KeyHuntReadOnly")

    run = hunt_jsonl(keyhunt, KEYHUNT_ACCOUNTS=f"{CALLER},{PEER}")

    assert run.code == 1
    assert set(run.failures) == {f"{PEER}/{REGION}"}
    assert "nothing could be read" not in run.stderr


def test_help_shows_examples_and_exit_codes(keyhunt: Keyhunt) -> None:
    run = keyhunt("--help")

    assert run.code == 0
    assert "keyhunt hunt --last 24h" in run.stdout
    assert "keyhunt key AKIA" in run.stdout
    for code in ("0  ", "1  ", "2  "):
        assert f"\n  {code}" in run.stdout
    assert "info (the lowest" in run.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--since", "2099-01-01T00:00Z"), "--since 2099-01-01T00:00:00Z is in the future (now "),
        (("--since", "2001-01-01T00:00Z"), "--since 2001-01-01T00:00:00Z is more than 90 days ago"),
    ],
)
def test_a_window_it_cannot_search_is_named_by_its_value(
    keyhunt: Keyhunt, args: tuple[str, ...], said: str
) -> None:
    run = keyhunt("hunt", *args)

    assert run.code == 2
    assert said in run.stderr
    assert "Traceback" not in run.stderr


def test_since_after_until_names_both(keyhunt: Keyhunt) -> None:
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

    run = keyhunt("hunt", "--since", since, "--until", until)

    assert run.code == 2
    assert f"--since {since} is after --until {until}" in run.stderr


def _iam_in(fake: FakeAWS, account: str) -> Any:
    """An IAM client in `account`, reached as keyhunt reaches it (AssumeRole from the caller)."""
    sts = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=fake.endpoint_url,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
    )
    creds = sts.assume_role(RoleArn=role_arn(account), RoleSessionName="seed")["Credentials"]
    return boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=fake.endpoint_url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_accounts_are_shown_by_name(keyhunt: Keyhunt, fake: FakeAWS) -> None:
    """The config's name wins; an account it does not name goes by its alias; one with
    neither by its ID alone. Names are in the JSON and in the table, the ID beside them."""
    now = datetime.now(UTC)
    fake.add_events(CALLER, REGION, [create_access_key(root(CALLER), now)])
    fake.add_events(PEER, REGION, [create_access_key(root(PEER), now)])
    iam = _iam_in(fake, PEER)
    iam.create_account_alias(AccountAlias="prod-alias")
    try:
        named = hunt_jsonl(keyhunt, KEYHUNT_ACCOUNTS=f"{CALLER}=security,{PEER}")
        table = keyhunt("hunt", "--format", "table", KEYHUNT_ACCOUNTS=f"{CALLER}=security,{PEER}")
        unnamed = hunt_jsonl(keyhunt, KEYHUNT_ACCOUNTS=CALLER)
    finally:
        iam.delete_account_alias(AccountAlias="prod-alias")  # moto's state outlives the test

    assert named.code == 0, named.stderr
    assert {r["account_id"]: r["account_name"] for r in named.records} == {
        CALLER: "security",
        PEER: "prod-alias",
    }
    assert f"security ({CALLER})" in table.stdout
    assert f"prod-alias ({PEER})" in table.stdout
    assert [r["account_name"] for r in unnamed.records] == [None]
