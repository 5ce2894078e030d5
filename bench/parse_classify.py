"""How fast CloudTrail records become findings: parse_record + classify on one core.

    python -m bench.parse_classify [--records 50000] [--repeats 3] [--changes 200] [--cpu N]

Builds synthetic CreateAccessKey records (many actor kinds, targets, user agents, some
failures), serialised as compact JSON strings the way LookupEvents returns `CloudTrailEvent`,
plus a rotation context of UpdateAccessKey/DeleteAccessKey events such as a hunt gathers for
one account. It then times bare `json.loads` (the floor: parsing can never beat it) and the
full `classify(parse_record(text), ctx)` path, and prints records per second for both and
their ratio. Figures only, no pass/fail; the target for parse + classify is 20,000 records/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from checks.classify import classify
from checks.parse import parse_record
from checks.rules import RuleContext

START = datetime(2025, 6, 10, tzinfo=UTC)
ACCOUNTS = [f"1111111111{i:02d}" for i in range(20)]
USERS = [f"{team}-{i}" for team in ("svc", "ci", "app", "ops", "data") for i in range(40)]
PEOPLE = ["alice", "bob", "carol", "dana", "erin", "frank", "grace", "heidi", "ivan", "judy"]
AGENTS = [
    "aws-cli/2.17.41 md/awscrt#0.21.2 ua/2.0 os/linux#6.8.0-45-generic md/arch#x86_64 "
    "lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
    "md/prompt#off md/command#iam.create-access-key",
    "Boto3/1.35.10 md/Botocore#1.35.10 ua/2.0 os/linux#5.10.223-211.872.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.12.5 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.10",
    "APN/1.0 HashiCorp/1.0 Terraform/1.9.5 (+https://www.terraform.io) "
    "terraform-provider-aws/5.64.0 (+https://registry.terraform.io/providers/hashicorp/aws) "
    "aws-sdk-go-v2/1.30.4 ua/2.1 os/linux lang/go#1.22.6 md/GOOS#linux md/GOARCH#amd64",
    "aws-sdk-go-v2/1.14.0 os/macos lang/go/1.17.6 md/GOOS/darwin md/GOARCH/arm64 api/iam/1.17.0",
    "cloudformation.amazonaws.com",
    "<!channel> <https://evil.example|click> *bold* python-requests/2.32.3",
]
KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class Synth:
    """Deterministic builder of realistic, clearly synthetic CloudTrail records."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def key(self, prefix: str = "AKIA", length: int = 16) -> str:
        """An access key id (AKIA/ASIA + 16) or a principal id (AIDA/AROA + 17)."""
        return prefix + "".join(self.rng.choice(KEY_CHARS) for _ in range(length))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def when(self, hours: float = 24) -> datetime:
        return START + timedelta(seconds=self.rng.uniform(0, hours * 3600))

    def ip(self) -> str:
        return self.rng.choice(("198.51.100.", "203.0.113.")) + str(self.rng.randint(1, 254))

    def identity(self, account: str) -> tuple[dict[str, Any], str | None, str]:
        """A caller, the user name it acts on by default, and a suitable user agent."""
        rng = self.rng
        kind = rng.choices(
            ("user", "path_user", "console_user", "sso", "role", "federated", "root"),
            weights=(30, 10, 10, 22, 20, 5, 3),
        )[0]
        session = {
            "webIdFederationData": {},
            "attributes": {"creationDate": "2025-06-10T00:00:00Z", "mfaAuthenticated": "false"},
        }
        if kind in ("user", "path_user", "console_user"):
            name = rng.choice(USERS + PEOPLE)
            path = "/" if kind != "path_user" else rng.choice(("/dept/", "/automation/ci/"))
            identity: dict[str, Any] = {
                "type": "IAMUser",
                "principalId": self.key("AIDA", 17),
                "arn": f"arn:aws:iam::{account}:user{path}{name}",
                "accountId": account,
                "accessKeyId": self.key("ASIA" if kind == "console_user" else "AKIA"),
                "userName": name,
            }
            if kind == "console_user":
                identity["sessionContext"] = {"sessionIssuer": {}, **session}
                return identity, name, "signin.amazonaws.com"
            return identity, name, rng.choice(AGENTS)
        if kind == "root":
            identity = {
                "type": "Root",
                "principalId": account,
                "arn": f"arn:aws:iam::{account}:root",
                "accountId": account,
                "accessKeyId": self.key("ASIA"),
            }
            return identity, None, rng.choice(("signin.amazonaws.com", AGENTS[0]))
        if kind == "federated":
            name = rng.choice(PEOPLE)
            identity = {
                "type": "FederatedUser",
                "principalId": f"{account}:{name}",
                "arn": f"arn:aws:sts::{account}:federated-user/{name}",
                "accountId": account,
                "accessKeyId": self.key("ASIA"),
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "IAMUser",
                        "arn": f"arn:aws:iam::{account}:user/idp-broker",
                        "accountId": account,
                        "userName": "idp-broker",
                    },
                    **session,
                },
            }
            return identity, None, "signin.amazonaws.com"
        if kind == "sso":
            role = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
            role_arn = f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}"
            session_name = f"{rng.choice(PEOPLE)}@example.com"
        else:
            role = rng.choice(("TerraformDeployer", "OrganizationAccountAccessRole", "CIDeploy"))
            role_arn = f"arn:aws:iam::{account}:role/{role}"
            session_name = f"{role.lower()}-{rng.randint(1000, 9999)}"
        identity = {
            "type": "AssumedRole",
            "principalId": f"{self.key('AROA', 17)}:{session_name}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session_name}",
            "accountId": account,
            "accessKeyId": self.key("ASIA"),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": role_arn,
                    "accountId": account,
                    "userName": role,
                },
                **session,
            },
        }
        return identity, None, rng.choice(AGENTS[:4])

    def envelope(
        self, name: str, when: datetime, account: str, identity: dict[str, Any], agent: str
    ) -> dict[str, Any]:
        return {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "iam.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": self.ip(),
            "userAgent": agent,
        }

    def create_access_key(self) -> dict[str, Any]:
        rng = self.rng
        account = rng.choice(ACCOUNTS)
        identity, own_name, agent = self.identity(account)
        when = self.when()
        if identity["type"] == "Root" and rng.random() < 0.5:
            user = None  # root's own key: no userName anywhere
        elif own_name is not None and rng.random() < 0.6:
            user = own_name
        else:
            user = rng.choice(USERS)
        record = self.envelope("CreateAccessKey", when, account, identity, agent)
        roll = rng.random()
        if roll < 0.03:
            record["errorCode"] = "AccessDenied"
            resource = f"user {user}" if user else f"arn:aws:iam::{account}:root"
            record["errorMessage"] = (
                f"User: {identity['arn']} is not authorized to perform: "
                f"iam:CreateAccessKey on resource: {resource}"
            )
        elif roll < 0.05:
            record["errorCode"] = "LimitExceededException"
            record["errorMessage"] = "Cannot exceed quota for AccessKeysPerUser: 2"
        # A user creating its own key usually leaves out --user-name.
        omit_name = user is None or (user == own_name and rng.random() < 0.5)
        record["requestParameters"] = None if omit_name else {"userName": user}
        if "errorCode" in record:
            record["responseElements"] = None
        else:
            hour = when.hour % 12 or 12
            access_key = {
                "accessKeyId": self.key(),
                "status": "Active",
                "createDate": f"{when:%b} {when.day}, {when.year} {hour}:{when:%M:%S} "
                + ("AM" if when.hour < 12 else "PM"),
            }
            if user is not None:
                access_key = {"userName": user, **access_key}
            record["responseElements"] = {"accessKey": access_key}
        record.update(
            {
                "requestID": self.uuid(),
                "eventID": self.uuid(),
                "readOnly": False,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": account,
                "eventCategory": "Management",
                "tlsDetails": {
                    "tlsVersion": "TLSv1.3",
                    "cipherSuite": "TLS_AES_128_GCM_SHA256",
                    "clientProvidedHostHeader": "iam.amazonaws.com",
                },
            }
        )
        return record

    def key_change(self) -> dict[str, Any]:
        rng = self.rng
        account = rng.choice(ACCOUNTS)
        identity, _, agent = self.identity(account)
        name = rng.choice(("UpdateAccessKey", "DeleteAccessKey"))
        record = self.envelope(
            name, self.when(hours=48) - timedelta(hours=12), account, identity, agent
        )
        record["requestParameters"] = {"userName": rng.choice(USERS), "accessKeyId": self.key()}
        if name == "UpdateAccessKey":
            record["requestParameters"]["status"] = rng.choice(("Inactive", "Inactive", "Active"))
        record["responseElements"] = None
        record.update(
            {
                "requestID": self.uuid(),
                "eventID": self.uuid(),
                "eventType": "AwsApiCall",
                "recipientAccountId": account,
            }
        )
        return record


def build_records(count: int, seed: int = 20250610) -> list[str]:
    synth = Synth(seed)
    return [json.dumps(synth.create_access_key(), separators=(",", ":")) for _ in range(count)]


def build_context(count: int, seed: int = 6102025) -> RuleContext:
    synth = Synth(seed)
    return RuleContext(key_changes=[parse_record(synth.key_change()) for _ in range(count)])


def best_rate(run: Callable[[Sequence[str]], object], items: Sequence[str], repeats: int) -> float:
    """Items per second of the fastest of `repeats` runs (the least disturbed one)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(items)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def pin_to_cpu(cpu: int | None) -> str:
    """The code under test is single-threaded; optionally also pin it to one CPU."""
    if cpu is None:
        return "one thread"
    if not hasattr(os, "sched_setaffinity"):
        return "one thread (CPU pinning unsupported here)"
    os.sched_setaffinity(0, {cpu})
    return f"one thread pinned to CPU {cpu}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.parse_classify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=50_000, help="records to build")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    parser.add_argument(
        "--changes",
        type=int,
        default=200,
        help="UpdateAccessKey/DeleteAccessKey events in the rotation context",
    )
    parser.add_argument("--cpu", type=int, help="pin the process to this CPU (Linux)")
    args = parser.parse_args(argv)

    where = pin_to_cpu(args.cpu)
    records = build_records(args.records)
    ctx = build_context(args.changes)
    mean_size = sum(map(len, records)) / len(records)

    def loads_only(items: Sequence[str]) -> None:
        loads = json.loads
        for item in items:
            loads(item)

    def parse_and_classify(items: Sequence[str]) -> None:
        for item in items:
            classify(parse_record(item), ctx)

    def parse_only(items: Sequence[str]) -> None:
        for item in items:
            parse_record(item)  # results dropped, as in the full path: no extra GC pressure

    def classify_rate(context: RuleContext, count: int = 5_000) -> float:
        sample = events[:count]
        start = time.perf_counter()
        for event in sample:
            classify(event, context)
        return len(sample) / (time.perf_counter() - start)

    loads_rate = best_rate(loads_only, records, args.repeats)
    full_rate = best_rate(parse_and_classify, records, args.repeats)
    parse_rate = best_rate(parse_only, records, args.repeats)
    events = [parse_record(record) for record in records]
    severities = Counter(classify(event, ctx).severity.value for event in events)
    mix = ", ".join(f"{s} {severities[s]:,}" for s in ("critical", "high", "medium", "low"))

    print(f"keyhunt bench: parse_record + classify, Python {platform.python_version()}, {where}")
    print(
        f"  {len(records):,} CreateAccessKey records, mean {mean_size:,.0f} bytes of JSON; "
        f"rotation context {args.changes:,} key changes; best of {args.repeats}"
    )
    print(f"  findings: {mix}")
    print(f"  json.loads alone               {loads_rate:>9,.0f} records/s")
    print(f"  parse_record + classify        {full_rate:>9,.0f} records/s   (target >= 20,000)")
    print(
        f"  ratio                          {loads_rate / full_rate:>9.1f}x the time of json.loads"
    )
    print("  where the time goes (classify on the first 5,000 events):")
    print(f"    parse_record alone           {parse_rate:>9,.0f} records/s")
    for changes in (0, args.changes, 10 * args.changes):
        context = ctx if changes == args.changes else build_context(changes)
        label = f"classify, {changes:,} key changes"
        print(f"    {label:<28} {classify_rate(context):>9,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
