"""config/iam-policy.json and config/cross-account-role.yaml grant exactly what keyhunt calls.

A representative run of the product against FakeAWS (moto + the LookupEvents emulator) records
every AWS operation keyhunt performs: a hunt with enrichment and rotation context over the
accounts of an AWS Organization (KEYHUNT_ACCOUNTS=organization: ListAccounts, one member
closed; the others reached through AssumeRole with an external ID), two `keyhunt key`
investigations (a member's key, keyhunt's own account's key), `keyhunt check`, and one receive
cycle of the real-time consumer (bot.realtime) on config/central-bus.yaml's queue: a member's
CreateAccessKey as EventBridge delivers it, and a message it cannot use.

How every call is captured. A hook registered on the base boto3 session would miss most of
them: checks/sessions.py gives each assumed role a *new* botocore session
(`botocore.session.get_session()`), and event handlers do not propagate between sessions.
So the recorder wraps `botocore.session.Session.create_client`, the one door every client of
every session goes through (boto3's `Session.client` calls it), and registers a
`before-parameter-build.*.*` handler on each new client: it fires once per API call (not per
HTTP retry, and once per page of a paginator) with the operation model and its parameters.
Each call is also tagged with the kind of credentials its session holds (`env` for keyhunt's
own, `sts-assume-role` for a role it assumed), which is how the policy's split is checked.
The test cross-checks completeness against the fake's own log of LookupEvents requests.
"""

from __future__ import annotations

import functools
import io
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.stub import Stubber

from bot.compose import Components
from bot.hunting import HuntRequest
from bot.preflight import run_checks
from bot.settings import Settings, load_settings
from checks.investigate import KeyReport
from checks.model import HuntResult, Window
from checks.organizations import fetch_active_accounts
from keyhunt_dev import records as r
from keyhunt_dev.aws import FakeAWS, LookupCall
from keyhunt_dev.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "config" / "iam-policy.json"
TEMPLATE = ROOT / "config" / "cross-account-role.yaml"
REGION = "us-east-1"
ROLE_NAME = Settings().role_name
EXTERNAL_ID = "keyhunt-" + secrets.token_hex(8)
BOT_TOKEN = "xoxb-permissions-test"
CHANNEL = "C0ALERTS"

# Operations AWS authorizes without any policy (STS API reference: "No permissions are
# required to perform this operation", even under an explicit deny).
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})
# Batch operations have no IAM action of their own: each entry is authorized as the single
# call (SQS API reference, "Permissions"). The recorder files them under that action.
BATCH_ACTIONS = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}
CENTRAL_BUS = ROOT / "config" / "central-bus.yaml"
PER_ACCOUNT_SID = "PerAccount"  # statements the KeyHuntReadOnly role in each account needs
BOT_SID = "Bot"  # statements only keyhunt's own principal needs


# ============================================================================ the policy


def load_policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(POLICY.read_text(encoding="utf-8"))
    return policy


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def policy_actions(sid_prefix: str = "") -> set[str]:
    statements = load_policy()["Statement"]
    return actions_of([s for s in statements if s["Sid"].startswith(sid_prefix)])


def test_policy_is_a_valid_least_privilege_document() -> None:
    policy = load_policy()
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in policy["Statement"]:
        assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"]), "IAM allows [A-Za-z0-9] only"
        assert statement["Sid"].startswith((PER_ACCOUNT_SID, BOT_SID)), (
            f"{statement['Sid']}: name says who needs it (PerAccount... or Bot...)"
        )
        assert statement["Effect"] == "Allow"
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
        for action in actions_of([statement]):
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), f"no wildcards: {action}"
    assert not policy_actions() & NO_PERMISSION_NEEDED


def resources_for(action: str) -> list[str]:
    resources: list[str] = []
    for statement in load_policy()["Statement"]:
        if action in actions_of([statement]):
            value = statement["Resource"]
            resources.extend([value] if isinstance(value, str) else value)
    return resources


def test_assume_role_is_limited_to_the_configured_role_name() -> None:
    assert resources_for("sts:AssumeRole") == [f"arn:aws:iam::*:role/{ROLE_NAME}"]
    assert resources_for("iam:ListAccessKeys") == ["arn:aws:iam::*:user/*"]


# ========================================================================== the template


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !If, ...) into their long form."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    data = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    assert isinstance(data, dict)
    return data


def role_of(template: dict[str, Any]) -> dict[str, Any]:
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 1
    properties: dict[str, Any] = roles[0]["Properties"]
    return properties


def test_template_role_grants_exactly_the_per_account_part_of_the_policy(
    template: dict[str, Any],
) -> None:
    statements = [
        s for p in role_of(template)["Policies"] for s in p["PolicyDocument"]["Statement"]
    ]
    assert actions_of(statements) == policy_actions(PER_ACCOUNT_SID)
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Sid"].startswith(PER_ACCOUNT_SID)
    iam = {
        s["Sid"]: (sorted(actions_of([s])), s["Resource"])
        for s in statements
        if any(a.startswith("iam:") for a in actions_of([s]))
    }
    assert iam == {
        "PerAccountReadAccessKeyMetadata": (
            ["iam:GetAccessKeyLastUsed", "iam:ListAccessKeys"],
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"},
        ),
        # ListAccountAliases has no resource-level permissions: "*" is its narrowest grant.
        "PerAccountReadAccountAliasForItsName": (["iam:ListAccountAliases"], "*"),
        "PerAccountReadUserTagsToFindTheOwner": (
            ["iam:ListUserTags"],
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"},
        ),
    }


def test_template_trusts_the_bot_with_an_optional_external_id(template: dict[str, Any]) -> None:
    role = role_of(template)
    assert role["MaxSessionDuration"] == 3600
    assert role["RoleName"] == {"Ref": "RoleName"}
    assert template["Parameters"]["RoleName"]["Default"] == ROLE_NAME
    assert "Path" not in role, "keyhunt builds the ARN as role/<name>, without a path"
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow"
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"] == {"AWS": {"Ref": "KeyHuntPrincipal"}}
    assert trust["Condition"] == {
        "Fn::If": [
            "HasExternalId",
            {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Conditions"]["HasExternalId"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]
    }
    assert template["Parameters"]["ExternalId"]["Default"] == ""
    principal_pattern = template["Parameters"]["KeyHuntPrincipal"]["AllowedPattern"]
    for accepted in ("111122223333", "arn:aws:iam::111122223333:role/keyhunt"):
        assert re.fullmatch(principal_pattern, accepted)
    assert not re.fullmatch(principal_pattern, "*")


def test_template_is_ready_for_an_organization_stackset(template: dict[str, Any]) -> None:
    """Same template in every account: nothing account-specific, no exports to collide."""
    for output in template.get("Outputs", {}).values():
        assert "Export" not in output
    body = json.dumps([template["Resources"], template.get("Conditions"), template["Outputs"]])
    assert not re.search(r"\d{12}", body), "no account IDs outside parameter descriptions"
    used = set(re.findall(r'"Ref": "(\w+)"', body)) | set(re.findall(r"\$\{(\w+)\}", body))
    assert set(template["Parameters"]) <= used, "every parameter is used"


# =================================================================== recording the calls


@dataclass(frozen=True)
class AwsCall:
    flow: str
    action: str  # IAM action: cloudtrail:LookupEvents
    credentials: str  # botocore's Credentials.method: "env", "sts-assume-role", ...
    params: dict[str, Any]


@dataclass
class Recorder:
    calls: list[AwsCall] = field(default_factory=list)
    flow: str = ""  # the flow being recorded; "" = not recording
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = botocore.session.Session.create_client

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            credentials = session.get_credentials()
            explicit = bool(kwargs.get("aws_access_key_id"))
            prefix = client.meta.service_model.signing_name  # IAM's action prefix

            def record(model: Any, params: dict[str, Any], **_: Any) -> None:
                if not self.flow:
                    return
                # Read at each call: a client every role account shares (checks.sessions)
                # signs with the calling account's credentials, whose method is theirs.
                kind = "explicit" if explicit else str(getattr(credentials, "method", "none"))
                action = f"{prefix}:{model.name}"
                call = AwsCall(self.flow, BATCH_ACTIONS.get(action, action), kind, dict(params))
                with self._lock:
                    self.calls.append(call)

            client.meta.events.register("before-parameter-build.*.*", record)
            return client

        monkeypatch.setattr(botocore.session.Session, "create_client", create_client)

    def actions(self, credentials: str | None = None) -> set[str]:
        return {c.action for c in self.calls if credentials is None or c.credentials == credentials}


@dataclass(frozen=True)
class Organization:
    management: str  # keyhunt runs here, with its own credentials
    active: tuple[str, ...]  # member accounts keyhunt reaches through AssumeRole
    closed: str


@dataclass
class Recording:
    org: Organization
    recorder: Recorder
    lookups: dict[str, list[LookupCall]]  # flow -> LookupEvents requests the fake answered
    hunt: HuntResult  # KEYHUNT_ACCOUNTS=organization, enrichment on
    keys: list[KeyReport]
    check_rc: int
    check_output: str
    named: HuntResult  # the same accounts listed by ID: names from their aliases
    queue_url: str  # the real-time consumer's queue (config/central-bus.yaml's default name)
    received: int  # messages its receive cycle got


def unique_account() -> str:
    return "7" + "".join(secrets.choice("0123456789") for _ in range(11))


@functools.cache
def seeding_session() -> boto3.Session:
    """One explicit session for seeding (a session per seeded account would reload botocore's
    models each time). Never boto3's default session: it caches the first credentials it
    sees, which would seed the wrong account."""
    return boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="seed-secret",
        region_name=REGION,
    )


def credentials_in(account: str, role: str = "seed") -> dict[str, str]:
    """Keys in `account`: moto lets anyone assume any role and maps the keys to its account."""
    creds = (
        seeding_session()
        .client("sts")
        .assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName=role)[
            "Credentials"
        ]
    )
    return {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


def client_in(account: str, service: str) -> Any:
    return seeding_session().client(service, **credentials_in(account))  # type: ignore[call-overload]


def use_account(monkeypatch: pytest.MonkeyPatch, account: str) -> None:
    """Make keyhunt's own credentials (the environment's) belong to `account`. A fresh account
    per run keeps this module's Organization apart from anything else in moto's
    process-wide state."""
    creds = credentials_in(account, "keyhunt-bot")
    for name, value in creds.items():
        monkeypatch.setenv(name.upper(), value)


def seed(
    fake: FakeAWS, monkeypatch: pytest.MonkeyPatch, now: datetime
) -> tuple[Organization, tuple[str, str]]:
    """An Organization of four accounts (one closed) and a day of key events in each."""
    management = unique_account()
    use_account(monkeypatch, management)
    orgs = client_in(management, "organizations")
    orgs.create_organization(FeatureSet="ALL")
    members = [
        orgs.create_account(AccountName=f"member-{n}", Email=f"member-{n}@example.com")[
            "CreateAccountStatus"
        ]["AccountId"]
        for n in range(3)
    ]
    *active, closed = members
    orgs.close_account(AccountId=closed)
    for n, account in enumerate(active):  # what names accounts listed by ID
        client_in(account, "iam").create_account_alias(AccountAlias=f"member-{n}-alias")

    # keyhunt's own account: dave rotates his key (rotation context, enrichment as itself).
    iam = client_in(management, "iam")
    iam.create_user(UserName="dave")
    old = iam.create_access_key(UserName="dave")["AccessKey"]["AccessKeyId"]
    new = iam.create_access_key(UserName="dave")["AccessKey"]["AccessKeyId"]
    dave = r.iam_user(management, "dave", access_key=old)
    fake.add_events(
        management,
        REGION,
        [
            r.create_access_key(dave, management, now - timedelta(hours=5), user=None, new_key=new),
            r.update_access_key(dave, management, now - timedelta(hours=4), user=None, key=old),
        ],
    )
    # A member: an SSO session mints a key for a service user, which then calls AWS.
    iam = client_in(active[0], "iam")
    iam.create_user(UserName="deploy-bot")
    key = iam.create_access_key(UserName="deploy-bot")["AccessKey"]["AccessKeyId"]
    sso = r.assumed_role(active[0], "AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com")
    user = r.iam_user(active[0], "deploy-bot", access_key=key)
    fake.add_events(
        active[0],
        REGION,
        [
            r.create_access_key(
                sso, active[0], now - timedelta(hours=3), user="deploy-bot", new_key=key
            ),
            r.api_call(
                user, active[0], now - timedelta(hours=2), "s3.amazonaws.com", "ListBuckets"
            ),
        ],
    )
    # Another member: a failed attempt on a user that does not exist (NoSuchEntity on enrich).
    mallory = r.iam_user(active[1], "mallory", access_key="AKIAEXAMPLEMALLORY01")
    fake.add_events(
        active[1],
        REGION,
        [
            r.create_access_key(
                mallory,
                active[1],
                now - timedelta(hours=1),
                user="bob",
                new_key=None,
                error=("AccessDenied", "not authorized to perform: iam:CreateAccessKey"),
            )
        ],
    )
    # The closed account has history too; it must never be read.
    fake.add_events(
        closed,
        REGION,
        [
            r.create_access_key(
                r.root(closed), closed, now - timedelta(hours=1), user=None, new_key=None
            )
        ],
    )
    return Organization(management, tuple(active), closed), (key, new)


def default_queue_name() -> str:
    template = yaml.load(CENTRAL_BUS.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return str(template["Parameters"]["QueueName"]["Default"])


def eventbridge_envelope(record: dict[str, Any]) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "permissions-test",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.iam",
            "account": record["recipientAccountId"],
            "region": REGION,
            "time": record["eventTime"],
            "resources": [],
            "detail": record,
        }
    )


def settings_for(tmp: Path, slack: FakeSlack, accounts: str, queue_url: str = "") -> Settings:
    return load_settings(
        environ={
            "KEYHUNT_CONFIG": "",
            "KEYHUNT_ACCOUNTS": accounts,
            "KEYHUNT_EXTERNAL_ID": EXTERNAL_ID,
            "KEYHUNT_REGIONS": REGION,
            "KEYHUNT_ENRICH": "true",
            "KEYHUNT_DATABASE_URL": f"sqlite:///{tmp / 'keyhunt.db'}",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": slack.api_url,
            "KEYHUNT_CHANNEL": CHANNEL,
            "KEYHUNT_SQS_QUEUE_URL": queue_url,
        }
    )


@pytest.fixture(scope="module")
def recording(fake_aws: FakeAWS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    tmp = tmp_path_factory.mktemp("permissions")
    now = datetime.now(UTC).replace(microsecond=0)
    window = Window(now - timedelta(days=1), now)
    fake_aws.reset()
    with pytest.MonkeyPatch.context() as mp, FakeSlack(BOT_TOKEN, channels=(CHANNEL,)) as slack:
        mp.setenv("AWS_ENDPOINT_URL", fake_aws.endpoint_url)
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        org, key_ids = seed(fake_aws, mp, now)
        recorder = Recorder()
        recorder.install(mp)
        lookups: dict[str, list[LookupCall]] = {}

        def flow(name: str) -> None:
            recorder.flow = name
            fake_aws.clear_calls()

        def done(name: str) -> None:
            lookups[name] = fake_aws.lookup_calls()

        # One AwsSessions for the hunt and the investigations, as `keyhunt serve` keeps one.
        settings = settings_for(tmp, slack, "organization")
        hunter = Components(settings).hunter
        flow("hunt")
        hunt = hunter.hunt(HuntRequest(window))
        done("hunt")

        # Accounts listed by ID (not the Organization): their names come from their aliases.
        flow("hunt-listed")
        listed = settings_for(tmp, slack, ",".join([org.management, *org.active]))
        named = Components(listed).hunter.hunt(HuntRequest(window))
        done("hunt-listed")

        flow("key")  # one key made in a member account, one in keyhunt's own
        keys = [hunter.investigate(key_id, window) for key_id in key_ids]
        done("key")

        flow("check")  # `keyhunt check` runs in a process of its own
        out = io.StringIO()
        check_rc = run_checks(Components(settings), out=out)
        done("check")

        # A poll that posts: who is behind each finding (bot.owners) reads IAM user tags.
        flow("deliver")
        Components(settings).poller.run_once()
        done("deliver")
        recorder.flow = ""  # not recording the seeding
        # The real-time consumer, on the queue config/central-bus.yaml makes in keyhunt's
        # own account: a member's key as EventBridge delivers it, and garbage. Without Slack:
        # what posting costs in AWS calls is the poll's, recorded above.
        sqs = client_in(org.management, "sqs")
        queue_url = sqs.create_queue(QueueName=default_queue_name())["QueueUrl"]
        created = r.create_access_key(
            r.iam_user(org.active[1], "erin"), org.active[1], now, user=None, new_key=None
        )
        created.pop("errorCode", None)
        sqs.send_message(QueueUrl=queue_url, MessageBody=eventbridge_envelope(created))
        sqs.send_message(QueueUrl=queue_url, MessageBody="not an event")
        realtime = Components(
            replace(settings_for(tmp, slack, "organization", queue_url), channel="")
        )
        flow("queue")
        consumer = realtime.queue_consumer
        assert consumer is not None
        cycle = consumer.receive_once(wait_seconds=1)
        done("queue")
        recorder.flow = ""

        yield Recording(
            org,
            recorder,
            lookups,
            hunt,
            keys,
            check_rc,
            out.getvalue(),
            named,
            queue_url,
            cycle.received,
        )
    fake_aws.reset()


def test_the_flows_ran_cleanly(recording: Recording) -> None:
    """Sanity: a flow that failed half-way would under-report what keyhunt needs."""
    assert recording.hunt.errors == []
    assert {f.account_id for f in recording.hunt.findings} == {
        recording.org.management,
        *recording.org.active,
    }
    assert any(f.user_keys for f in recording.hunt.findings), "enrichment ran"
    for report in recording.keys:
        assert report.errors == []
        assert report.creation is not None
        assert report.last_use is not None
        assert report.owner_keys
    assert recording.check_rc == 0, recording.check_output
    assert recording.named.errors == []
    assert recording.received == 2, "the consumer's receive cycle got both messages"
    assert {f.account_name for f in recording.hunt.findings} >= {"member-0"}  # the listing's
    assert {f.account_name for f in recording.named.findings} >= {"member-0-alias"}


def test_policy_grants_exactly_the_actions_keyhunt_performs(recording: Recording) -> None:
    performed = recording.recorder.actions() - NO_PERMISSION_NEEDED
    granted = policy_actions()
    assert not performed - granted, f"config/iam-policy.json lacks {sorted(performed - granted)}"
    assert not granted - performed, f"granted but never used: {sorted(granted - performed)}"
    assert "sts:GetCallerIdentity" in recording.recorder.actions()  # called, needs nothing


def test_recorder_captures_clients_of_assumed_role_sessions(recording: Recording) -> None:
    assumed = recording.recorder.actions("sts-assume-role")
    assert {"cloudtrail:LookupEvents", "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed"} <= assumed
    # Completeness: every LookupEvents request the fake answered was recorded, flow by flow.
    for flow, answered in recording.lookups.items():
        recorded = [
            c
            for c in recording.recorder.calls
            if c.flow == flow and c.action == "cloudtrail:LookupEvents"
        ]
        assert len(recorded) == len(answered), flow
        assert answered, f"{flow} made no LookupEvents call"


def test_policy_split_matches_who_makes_each_call(recording: Recording) -> None:
    per_account = policy_actions(PER_ACCOUNT_SID)
    bot_only = policy_actions(BOT_SID)
    assert per_account.isdisjoint(bot_only)
    # The role in each account needs exactly the PerAccount statements ...
    assert recording.recorder.actions("sts-assume-role") == per_account
    # ... and keyhunt's own principal needs the Bot statements plus the same reads, because
    # it searches its own account with its own credentials.
    own = recording.recorder.actions("env") - NO_PERMISSION_NEEDED
    assert own == per_account | bot_only


def test_the_queue_grant_is_scoped_to_the_central_bus_templates_queue(
    recording: Recording,
) -> None:
    """sqs:ReceiveMessage and sqs:DeleteMessage on config/central-bus.yaml's queue (its
    default name), in us-east-1, and on nothing else; the consumer called exactly those,
    with keyhunt's own credentials, on that queue."""
    name = default_queue_name()
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert resources_for(action) == [f"arn:aws:sqs:{REGION}:*:{name}"]
    calls = [c for c in recording.recorder.calls if c.action.startswith("sqs:")]
    assert {c.action for c in calls} == {"sqs:ReceiveMessage", "sqs:DeleteMessage"}
    account, queue = recording.queue_url.rsplit("/", 2)[1:]
    for call in calls:
        assert call.credentials == "env"
        assert call.params["QueueUrl"] == recording.queue_url
        assert fnmatchcase(f"arn:aws:sqs:{REGION}:{account}:{queue}", resources_for(call.action)[0])


def test_assume_role_targets_the_documented_role_with_the_external_id(
    recording: Recording,
) -> None:
    calls = [c for c in recording.recorder.calls if c.action == "sts:AssumeRole"]
    assert calls
    (resource,) = resources_for("sts:AssumeRole")
    assumed = set()
    for call in calls:
        arn = call.params["RoleArn"]
        assert fnmatchcase(arn, resource), arn
        assert call.params["ExternalId"] == EXTERNAL_ID
        assert call.credentials == "env", "roles are assumed with keyhunt's own credentials"
        assumed.add(arn.split(":")[4])
    assert assumed == set(recording.org.active), "never the own account, never a closed one"


# ================================================================= organization discovery


def test_organization_discovery_hunts_exactly_the_active_accounts(recording: Recording) -> None:
    org = recording.org
    active = {org.management, *org.active}
    assert {t.account_id for t in recording.hunt.targets} == active
    assert {c.account_id for c in recording.lookups["hunt"]} == active
    assert org.closed not in {f.account_id for f in recording.hunt.findings}
    listed = [c for c in recording.recorder.calls if c.flow == "hunt"]
    assert "organizations:ListAccounts" in {c.action for c in listed}
    assert f"{len(active)} active" in recording.check_output


def page(*accounts: dict[str, str], token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"Accounts": list(accounts)}
    if token:
        body["NextToken"] = token
    return body


def test_fetch_active_accounts_keeps_active_ones_across_pages() -> None:
    """States moto cannot produce (PENDING_CLOSURE) and responses carrying only the older
    `Status` field, across two pages."""
    client = boto3.client(
        "organizations",
        region_name=REGION,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="unused",
    )
    with Stubber(client) as stub:
        stub.add_response(
            "list_accounts",
            page(
                {"Id": "111111111111", "Name": "ops", "State": "ACTIVE", "Status": "ACTIVE"},
                {"Id": "222222222222", "State": "PENDING_CLOSURE", "Status": "PENDING_CLOSURE"},
                {"Id": "333333333333", "State": "SUSPENDED", "Status": "SUSPENDED"},
                token="page-2",
            ),
            {},
        )
        stub.add_response(
            "list_accounts",
            page(
                {"Id": "444444444444", "Status": "ACTIVE"},
                {"Id": "555555555555", "Status": "SUSPENDED"},
            ),
            {"NextToken": "page-2"},
        )
        assert fetch_active_accounts(client) == {"111111111111": "ops", "444444444444": None}
        stub.assert_no_pending_responses()


ORG_FAIL_OPEN = (
    "bot/aws.py resolve_accounts returns [] when ListAccounts lists no ACTIVE account; "
    "Hunter.hunt then hunts zero targets and calls the result complete (`keyhunt hunt` exits "
    "0 with nothing searched), and bot/preflight.py check_aws prints 'PASS organization "
    "accounts: 0 active': fail open, where the design asks to fail closed"
)


def test_an_organization_listing_no_active_account_fails_closed(
    fake_aws: FakeAWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", fake_aws.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    use_account(monkeypatch, unique_account())  # in no Organization: moto lists no account
    settings = load_settings(
        environ={
            "KEYHUNT_CONFIG": "",
            "KEYHUNT_ACCOUNTS": "organization",
            "KEYHUNT_DATABASE_URL": f"sqlite:///{tmp_path / 'keyhunt.db'}",
        }
    )
    now = datetime.now(UTC)
    result = Components(settings).hunter.hunt(HuntRequest(Window(now - timedelta(hours=1), now)))
    out = io.StringIO()
    run_checks(Components(settings), out=out)
    assert not result.complete, f"searched {result.targets}, reported complete"
    assert "PASS  organization accounts: 0 active" not in out.getvalue()
