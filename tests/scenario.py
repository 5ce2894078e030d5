"""Realistic CloudTrail records, and a multi-account scenario holding its exact expected findings.

The records follow the shapes CloudTrail writes for IAM (see ../shared/samples and the
CloudTrail user guide): `userIdentity` per principal type, IAM's `createDate` format, failed
calls with `errorCode` and a null `responseElements`, console calls marked by
`signin.amazonaws.com`.

Expected severities, reasons, actor names and target users are written out by hand from
CONTRACT sections 2 and 3, never computed by keyhunt's own code: this module is the oracle the
end-to-end tests compare keyhunt against.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from keyhunt_dev.aws import FakeAWS

CALLER = "123456789012"  # moto's account for the dummy credentials: searched as the caller
PEER = "222222222222"  # reached through sts:AssumeRole
DENIED = "333333333333"  # the account the scenario makes unreadable
EMPTY = "444444444444"  # an account with nothing to find
REGION = "us-east-1"  # IAM's CloudTrail events are recorded here
ROLE_NAME = "KeyHuntReadOnly"

CLI_AGENT = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016-aws exe/x86_64.ubuntu.22 prompt/off "
    "command/iam.create-access-key"
)
BOTO_AGENT = (
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.8 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69"
)
TERRAFORM_AGENT = (
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) "
    "terraform-provider-aws/5.42.0 (+https://registry.terraform.io/providers/hashicorp/aws) "
    "aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/iam#1.31.3"
)
CONSOLE_AGENT = "signin.amazonaws.com"

Severity = Literal["critical", "high", "medium", "low", "info"]
DenyMode = Literal["lookup", "assume_role"]

# CONTRACT section 2: every key of a finding, in order.
FINDING_KEYS = (
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
    "account_name",  # added by keyhunt (issue 11): what the account is called, or null
)


# --------------------------------------------------------------------------- small values


def role_arn(account: str, role: str = ROLE_NAME) -> str:
    return f"arn:aws:iam::{account}:role/{role}"


def new_key_id(prefix: str = "AKIA") -> str:
    """An access key ID in AWS's shape: AKIA (long-term) or ASIA (temporary) + 16 characters."""
    alphabet = string.ascii_uppercase + "234567"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(16))


def new_event_id() -> str:
    return str(uuid.uuid4())


def cloudtrail_time(moment: datetime) -> str:
    """`eventTime` as CloudTrail writes it: second precision, UTC, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iam_create_date(moment: datetime) -> str:
    """IAM's `createDate` in responseElements: `Nov 29, 2026 9:47:48 PM` (UTC)."""
    m = moment.astimezone(UTC)
    hour = m.hour % 12 or 12
    return f"{m:%b} {m.day}, {m.year} {hour}:{m:%M:%S} {'AM' if m.hour < 12 else 'PM'}"


# --------------------------------------------------------------------------- principals


@dataclass(frozen=True)
class Principal:
    """Who makes a call: its `userIdentity`, and what CONTRACT says keyhunt must call it."""

    identity: dict[str, Any]
    actor_type: str
    actor_name: str
    account: str | None
    user_name: str | None = None  # an IAM user's own name: the owner of a key it makes for itself
    console: bool = False

    @property
    def arn(self) -> str | None:
        arn = self.identity.get("arn")
        return str(arn) if arn is not None else None


def _console_context(moment: datetime | None = None) -> dict[str, Any]:
    created = cloudtrail_time(moment or datetime.now(UTC) - timedelta(hours=1))
    return {"attributes": {"creationDate": created, "mfaAuthenticated": "true"}}


def iam_user(account: str, name: str, *, path: str = "/", console: bool = False) -> Principal:
    identity: dict[str, Any] = {
        "type": "IAMUser",
        "principalId": new_key_id("AIDA"),
        "arn": f"arn:aws:iam::{account}:user{path}{name}",
        "accountId": account,
        "accessKeyId": new_key_id("ASIA" if console else "AKIA"),
        "userName": name,
    }
    if console:
        identity["sessionContext"] = _console_context()
        identity["invokedBy"] = CONSOLE_AGENT
    return Principal(identity, "IAMUser", name, account, user_name=name, console=console)


def root(account: str, *, console: bool = False) -> Principal:
    identity: dict[str, Any] = {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": new_key_id("ASIA" if console else "AKIA"),
    }
    if console:
        identity["sessionContext"] = _console_context()
    return Principal(identity, "Root", "root", account, console=console)


def assumed_role(account: str, role: str, session: str, *, path: str = "/") -> Principal:
    role_id = new_key_id("AROA")
    identity = {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": new_key_id("ASIA"),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": f"arn:aws:iam::{account}:role{path}{role}",
                "accountId": account,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {
                "creationDate": cloudtrail_time(datetime.now(UTC) - timedelta(minutes=30)),
                "mfaAuthenticated": "false",
            },
        },
    }
    return Principal(identity, "AssumedRole", session, account)


def sso_user(account: str, permission_set: str, email: str) -> Principal:
    """An IAM Identity Center session: an assumed AWSReservedSSO_* role named after the person."""
    role = f"AWSReservedSSO_{permission_set}_{uuid.uuid4().hex[:16]}"
    return assumed_role(account, role, email, path="/aws-reserved/sso.amazonaws.com/")


def federated_user(account: str, name: str) -> Principal:
    identity = {
        "type": "FederatedUser",
        "principalId": f"{account}:{name}",
        "arn": f"arn:aws:sts::{account}:federated-user/{name}",
        "accountId": account,
        "accessKeyId": new_key_id("ASIA"),
        "sessionContext": {
            "sessionIssuer": {
                "type": "IAMUser",
                "principalId": new_key_id("AIDA"),
                "arn": f"arn:aws:iam::{account}:user/federation-broker",
                "accountId": account,
                "userName": "federation-broker",
            },
            "attributes": {
                "creationDate": cloudtrail_time(datetime.now(UTC) - timedelta(minutes=10)),
                "mfaAuthenticated": "false",
            },
        },
    }
    return Principal(identity, "FederatedUser", name, account)


# --------------------------------------------------------------------------- records


def _record(
    principal: Principal,
    at: datetime,
    *,
    time_text: str | None = None,
    event_name: str,
    event_source: str = "iam.amazonaws.com",
    region: str = REGION,
    account: str | None = None,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    user_agent: str | None = None,
    source_ip: str = "203.0.113.10",
    read_only: bool = False,
    event_id: str | None = None,
) -> dict[str, Any]:
    recipient = account or principal.account
    if recipient is None:
        raise ValueError("name the account the event is recorded in")
    agent = user_agent or (CONSOLE_AGENT if principal.console else CLI_AGENT)
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": dict(principal.identity),
        "eventTime": time_text or cloudtrail_time(at),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": agent,
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = error_message or f"{error_code} for {event_name}"
    record.update(
        {
            "requestParameters": request,
            "responseElements": response,
            "requestID": str(uuid.uuid4()),
            "eventID": event_id or new_event_id(),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": recipient,
            "eventCategory": "Management",
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": f"{event_source.split('.')[0]}.amazonaws.com",
            },
        }
    )
    return record


def create_access_key(
    principal: Principal,
    at: datetime,
    *,
    time_text: str | None = None,
    user: str | None = None,
    key_id: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    user_agent: str | None = None,
    source_ip: str = "203.0.113.10",
    response_user: str | None = None,
    region: str = REGION,
    account: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A CreateAccessKey record. `user` is the UserName in the request (None: the caller's own
    key); the new key belongs to `response_user`, else `user`, else the calling IAM user.
    `time_text` overrides how `eventTime` is written."""
    request = {"userName": user} if user is not None else None
    response = None
    if error_code is None:
        owner = response_user or user or principal.user_name
        access_key: dict[str, Any] = {
            "accessKeyId": key_id or new_key_id(),
            "status": "Active",
            "createDate": iam_create_date(at),
        }
        if owner is not None:
            access_key["userName"] = owner
        response = {"accessKey": access_key}
    return _record(
        principal,
        at,
        time_text=time_text,
        event_name="CreateAccessKey",
        region=region,
        account=account,
        request=request,
        response=response,
        error_code=error_code,
        error_message=error_message,
        user_agent=user_agent,
        source_ip=source_ip,
        event_id=event_id,
    )


def update_access_key(
    principal: Principal,
    at: datetime,
    *,
    key_id: str,
    status: str = "Inactive",
    user: str | None = None,
    error_code: str | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {"accessKeyId": key_id, "status": status}
    if user is not None:
        request["userName"] = user
    return _record(
        principal, at, event_name="UpdateAccessKey", request=request, error_code=error_code
    )


def delete_access_key(
    principal: Principal,
    at: datetime,
    *,
    key_id: str,
    user: str | None = None,
    error_code: str | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {"accessKeyId": key_id}
    if user is not None:
        request["userName"] = user
    return _record(
        principal, at, event_name="DeleteAccessKey", request=request, error_code=error_code
    )


def api_call(
    principal: Principal,
    at: datetime,
    *,
    event_source: str,
    event_name: str,
    region: str = REGION,
    key_id: str | None = None,
    request: dict[str, Any] | None = None,
    error_code: str | None = None,
    read_only: bool = True,
    user_agent: str = BOTO_AGENT,
    source_ip: str = "198.51.100.23",
) -> dict[str, Any]:
    """Any other API call; `key_id` is the access key it was signed with."""
    record = _record(
        principal,
        at,
        event_name=event_name,
        event_source=event_source,
        region=region,
        request=request,
        error_code=error_code,
        user_agent=user_agent,
        source_ip=source_ip,
        read_only=read_only,
    )
    if key_id is not None:
        record["userIdentity"]["accessKeyId"] = key_id
    return record


# --------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Expected:
    """One finding as CONTRACT says keyhunt must print it."""

    event_id: str
    event_time: str
    account_id: str
    severity: Severity
    reasons: tuple[str, ...]
    actor_type: str | None  # None: the record's userIdentity could not be read
    actor_name: str | None
    target_user: str | None
    access_key_id: str | None
    error_code: str | None

    @property
    def triple(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.event_id, self.severity, self.reasons)

    def fields(self) -> dict[str, Any]:
        """The jsonl keys this expectation pins down."""
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "account_id": self.account_id,
            "region": REGION,
            "event_name": "CreateAccessKey",
            "actor_type": self.actor_type,
            "actor_name": self.actor_name,
            "target_user": self.target_user,
            "access_key_id": self.access_key_id,
            "error_code": self.error_code,
            "severity": self.severity,
            "reasons": list(self.reasons),
            "status": "open",
        }


@dataclass(frozen=True)
class RawEvent:
    """A LookupEvents entry whose CloudTrailEvent string is served verbatim (malformed ones)."""

    account: str
    region: str
    event_id: str
    event_name: str
    at: datetime
    text: str

    @property
    def readable(self) -> bool:
        """JSON object (read in part) rather than text that is no record at all."""
        try:
            return isinstance(json.loads(self.text), dict)
        except ValueError:
            return False


@dataclass
class Scenario:
    """Records for several accounts, the faults around them, and the findings they must yield."""

    now: datetime
    accounts: list[str]
    records: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    raw: list[RawEvent] = field(default_factory=list)
    findings: list[Expected] = field(default_factory=list)
    throttles: dict[tuple[str, str], int] = field(default_factory=dict)
    deny: DenyMode | None = None
    denied_account: str | None = None

    # ---- building

    def add(self, records: Iterable[dict[str, Any]], region: str = REGION) -> None:
        """Records that are not findings (other API calls, rotations, out-of-window events)."""
        for record in records:
            key = (str(record["recipientAccountId"]), region)
            self.records.setdefault(key, []).append(record)

    def expect(
        self,
        record: dict[str, Any],
        severity: Severity,
        reasons: Sequence[str],
        *,
        principal: Principal,
        target_user: str,
        event_time: str | None = None,
    ) -> dict[str, Any]:
        """Add a CreateAccessKey record and the finding CONTRACT says it is."""
        self.add([record])
        response = record.get("responseElements") or {}
        key = response.get("accessKey", {}).get("accessKeyId")
        self.findings.append(
            Expected(
                event_id=str(record["eventID"]),
                event_time=event_time or str(record["eventTime"]),
                account_id=str(record["recipientAccountId"]),
                severity=severity,
                reasons=tuple(reasons),
                actor_type=principal.actor_type,
                actor_name=principal.actor_name,
                target_user=target_user,
                access_key_id=key,
                error_code=record.get("errorCode"),
            )
        )
        return record

    def add_malformed(
        self, account: str, at: datetime, text: str, *, record_id: str | None = None
    ) -> None:
        """A CreateAccessKey whose CloudTrailEvent is broken: still a finding, reason
        `malformed`, with what could not be read null. `record_id` is the eventID the text
        itself carries (else LookupEvents' EventId is the finding's)."""
        raw = RawEvent(account, REGION, new_event_id(), "CreateAccessKey", at, text)
        self.raw.append(raw)
        self.findings.append(
            Expected(
                event_id=record_id or raw.event_id,
                event_time=cloudtrail_time(at),
                account_id=account,
                severity="medium",
                reasons=("malformed",),
                actor_type=None,
                actor_name=None,
                target_user=None,
                access_key_id=None,
                error_code=None,
            )
        )

    # ---- using

    @property
    def unreadable(self) -> set[str]:
        return {self.denied_account} if self.deny and self.denied_account else set()

    @property
    def expected(self) -> list[Expected]:
        """What a hunt over `accounts` must print, newest first (ties: event ID, descending)."""
        readable = [
            f
            for f in self.findings
            if f.account_id in self.accounts and f.account_id not in self.unreadable
        ]
        return sorted(readable, key=lambda f: (f.event_time, f.event_id), reverse=True)

    @property
    def expected_triples(self) -> set[tuple[str, str, tuple[str, ...]]]:
        return {f.triple for f in self.expected}

    @property
    def malformed_count(self) -> int:
        """Records that are JSON objects but could be read only in part."""
        return sum(1 for raw in self.raw if raw.account not in self.unreadable and raw.readable)

    @property
    def unreadable_count(self) -> int:
        """Records that are not JSON objects at all."""
        return sum(1 for raw in self.raw if raw.account not in self.unreadable and not raw.readable)

    @property
    def accounts_setting(self) -> str:
        """KEYHUNT_ACCOUNTS for this scenario."""
        return ",".join(self.accounts)

    def seed(self, fake: FakeAWS) -> None:
        for (account, region), records in self.records.items():
            fake.add_events(account, region, records)
        for raw in self.raw:
            fake.add_raw_event(
                raw.account,
                raw.region,
                event_id=raw.event_id,
                event_name=raw.event_name,
                event_time=raw.at,
                cloudtrail_event=raw.text,
            )
        for (account, region), calls in self.throttles.items():
            fake.throttle(account, region, calls)
        if self.deny == "lookup" and self.denied_account:
            fake.deny_lookup(self.denied_account)
        elif self.deny == "assume_role" and self.denied_account:
            fake.deny_assume_role(role_arn(self.denied_account))


SERVICE_USERS = tuple(f"svc-{n:03d}" for n in range(10))


def bulk_creations(
    principal: Principal,
    count: int,
    newest: datetime,
    *,
    users: Sequence[str] = SERVICE_USERS,
    step: timedelta = timedelta(seconds=20),
) -> list[dict[str, Any]]:
    """`count` CreateAccessKey records by one principal for a rotating set of users."""
    return [
        create_access_key(
            principal, newest - i * step, user=users[i % len(users)], user_agent=TERRAFORM_AGENT
        )
        for i in range(count)
    ]


def hunt_scenario(
    now: datetime | None = None,
    *,
    bulk: int = 260,
    throttle: int = 0,
    deny: DenyMode | None = "lookup",
) -> Scenario:
    """Three accounts, every CONTRACT situation, pagination, malformed records and faults.

    * 123456789012 (the caller): root, other-user, self-service, role, SSO, failed, console,
      rotation and decoys that are not rotations; two broken CreateAccessKey records (one
      not JSON, one without userIdentity), which are still findings; noise.
    * 222222222222 (AssumeRole): `bulk` keys made by a Terraform role (pages of 50), a
      federated user; its first `throttle` LookupEvents calls are throttled.
    * 333333333333: a root key that must not be reported when the account is unreadable
      (`deny`: LookupEvents denied, or AssumeRole denied).
    * 444444444444: no events at all.

    The `info` severity is in CONTRACT's list but no situation in its table produces it.
    """
    now = now or datetime.now(UTC)
    s = Scenario(now=now, accounts=[CALLER, PEER, DENIED, EMPTY], deny=deny, denied_account=DENIED)

    def ago(**delta: float) -> datetime:
        return now - timedelta(**delta)

    # ---- 123456789012: one finding per situation of CONTRACT section 3
    console_root = root(CALLER, console=True)
    s.expect(
        create_access_key(
            console_root, ago(minutes=10), response_user="Root", user_agent="console.amazonaws.com"
        ),
        "critical",
        ["root_actor", "console"],
        principal=console_root,
        target_user="root",
    )
    cli_root = root(CALLER)
    s.expect(
        create_access_key(cli_root, ago(hours=3), user="breakglass-ops"),
        "critical",
        ["root_actor"],
        principal=cli_root,
        target_user="breakglass-ops",
    )
    alice = iam_user(CALLER, "alice", console=True)
    s.expect(
        create_access_key(alice, ago(minutes=20), user="bob"),
        "high",
        ["key_for_other_user", "console"],
        principal=alice,
        target_user="bob",
    )
    jack = iam_user(CALLER, "jack", path="/engineering/")
    s.expect(  # `jack` is a prefix of `jackson`: still another user
        create_access_key(jack, ago(minutes=40), user="jackson"),
        "high",
        ["key_for_other_user"],
        principal=jack,
        target_user="jackson",
    )
    s.expect(  # an IAM path does not make `user/engineering/jack` someone else
        create_access_key(jack, ago(minutes=50), user="jack"),
        "medium",
        ["self_service"],
        principal=jack,
        target_user="jack",
    )
    deployer = assumed_role(CALLER, "Deployer", "gh-actions-8842")
    s.expect(
        create_access_key(deployer, ago(hours=1), user="svc-reporting", user_agent=BOTO_AGENT),
        "high",
        ["key_for_other_user"],
        principal=deployer,
        target_user="svc-reporting",
    )
    jane = sso_user(CALLER, "AdministratorAccess", "jane@example.com")
    s.expect(  # an SSO session owns no key, whatever its session is called
        create_access_key(jane, ago(minutes=70), user="jane"),
        "high",
        ["key_for_other_user"],
        principal=jane,
        target_user="jane",
    )
    mallory = iam_user(CALLER, "mallory")
    s.expect(
        create_access_key(
            mallory,
            ago(minutes=80),
            user="admin",
            error_code="AccessDenied",
            error_message=(
                f"User: arn:aws:iam::{CALLER}:user/mallory is not authorized to perform: "
                f"iam:CreateAccessKey on resource: user admin because no identity-based policy "
                "allows the iam:CreateAccessKey action"
            ),
            source_ip="192.0.2.66",
        ),
        "medium",
        ["key_for_other_user", "failed_attempt"],
        principal=mallory,
        target_user="admin",
    )
    carol = iam_user(CALLER, "carol")
    old_key = new_key_id()
    s.expect(  # rotation: her old key is deactivated, then deleted, soon after
        create_access_key(carol, ago(hours=2)),
        "low",
        ["self_service", "likely_rotation"],
        principal=carol,
        target_user="carol",
    )
    s.add(
        [
            update_access_key(carol, ago(hours=1, minutes=50), key_id=old_key),
            delete_access_key(carol, ago(hours=1, minutes=40), key_id=old_key),
        ]
    )
    dave = iam_user(CALLER, "dave")
    s.expect(  # the two-keys quota: an honest mistake, capped at low
        create_access_key(
            dave,
            ago(hours=2, minutes=30),
            error_code="LimitExceededException",
            error_message="Cannot exceed quota for AccessKeysPerUser: 2",
        ),
        "low",
        ["self_service", "failed_attempt"],
        principal=dave,
        target_user="dave",
    )
    frank, grace = iam_user(CALLER, "frank"), iam_user(CALLER, "grace")
    s.expect(  # decoy: someone else's key was deactivated nearby
        create_access_key(frank, ago(hours=4)),
        "medium",
        ["self_service"],
        principal=frank,
        target_user="frank",
    )
    s.add([update_access_key(grace, ago(hours=3, minutes=55), key_id=new_key_id())])
    henry = iam_user(CALLER, "henry")
    s.expect(  # decoy: his old key was deleted, but 30 hours earlier
        create_access_key(henry, ago(hours=5)),
        "medium",
        ["self_service"],
        principal=henry,
        target_user="henry",
    )
    s.add([delete_access_key(henry, ago(hours=35), key_id=new_key_id())])
    ivan = iam_user(CALLER, "ivan")
    moment = ago(hours=6)
    s.expect(  # a normalised eventTime as some exports carry it
        create_access_key(ivan, moment, time_text=moment.strftime("%Y-%m-%d %H:%M:%S")),
        "medium",
        ["self_service"],
        principal=ivan,
        target_user="ivan",
        event_time=cloudtrail_time(moment),
    )
    erin = iam_user(CALLER, "erin")
    s.add([create_access_key(erin, ago(hours=30))])  # outside the 24 h window
    s.add(  # other API calls are never findings
        [
            api_call(
                alice, ago(minutes=21), event_source="iam.amazonaws.com", event_name="ListUsers"
            ),
            api_call(
                carol,
                ago(hours=2, minutes=5),
                event_source="sts.amazonaws.com",
                event_name="GetCallerIdentity",
            ),
            api_call(
                mallory,
                ago(minutes=81),
                event_source="iam.amazonaws.com",
                event_name="CreateUser",
                read_only=False,
                request={"userName": "backdoor"},
                error_code="AccessDenied",
            ),
        ]
    )
    s.add_malformed(CALLER, ago(minutes=15), '{"eventVersion": "1.09", "eventName": "CreateAc')
    s.add_malformed(
        CALLER,
        ago(minutes=25),
        '{"eventVersion": "1.09", "eventID": "no-identity", "eventName": "CreateAccessKey", '
        f'"eventTime": "{cloudtrail_time(ago(minutes=25))}", "awsRegion": "us-east-1"}}',
        record_id="no-identity",
    )

    # ---- 222222222222: enough keys to need pages, and a federated user
    terraform = assumed_role(PEER, "TerraformProvisioner", "tf-apply-20261129")
    for record in bulk_creations(terraform, bulk, ago(minutes=3), users=SERVICE_USERS[:4]):
        s.expect(
            record,
            "high",
            ["key_for_other_user"],
            principal=terraform,
            target_user=record["requestParameters"]["userName"],
        )
    broker = federated_user(PEER, "build-bot")
    s.expect(
        create_access_key(broker, ago(minutes=95), user="release"),
        "high",
        ["key_for_other_user"],
        principal=broker,
        target_user="release",
    )
    if throttle:
        s.throttles[(PEER, REGION)] = throttle

    # ---- 333333333333: found only when it can be read
    their_root = root(DENIED)
    s.expect(
        create_access_key(their_root, ago(minutes=30)),
        "critical",
        ["root_actor"],
        principal=their_root,
        target_user="root",
    )
    return s
