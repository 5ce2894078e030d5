"""Builders for realistic CloudTrail records, for the demo and the tests. Synthetic data only.

Shapes follow real CloudTrail (eventVersion 1.09): userIdentity per principal type, IAM
responseElements, console vs SDK user agents. Addresses are documentation ranges.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]

SDK_AGENT = (
    "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.11.8"
)
CONSOLE_AGENT = "signin.amazonaws.com"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iam_user(
    account: str,
    name: str,
    path: str = "/",
    access_key: str = "AKIAEXAMPLEACTOR0001",
    console: bool = False,
) -> Record:
    identity: Record = {
        "type": "IAMUser",
        "principalId": "AIDA" + uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:17].upper(),
        "arn": f"arn:aws:iam::{account}:user{path}{name}",
        "accountId": account,
        "accessKeyId": ("ASIA" if console else "AKIA") + access_key[4:],
        "userName": name,
    }
    if console:
        identity["sessionContext"] = {
            "sessionIssuer": {},
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-29T08:00:00Z", "mfaAuthenticated": "true"},
        }
        identity["invokedBy"] = CONSOLE_AGENT
    return identity


def assumed_role(
    account: str, role: str, session: str, access_key: str = "ASIAEXAMPLESESSION01"
) -> Record:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLEID0001:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": access_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLEID0001",
                "arn": f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}",
                "accountId": account,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-29T08:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def root(account: str, console: bool = True) -> Record:
    identity: Record = {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEROOTSESS1",
        "sessionContext": {
            "attributes": {"creationDate": "2026-11-29T08:00:00Z", "mfaAuthenticated": "true"}
        },
    }
    if console:
        identity["invokedBy"] = CONSOLE_AGENT
    return identity


def _base(
    identity: Record,
    account: str,
    moment: datetime,
    name: str,
    agent: str,
    ip: str,
    event_id: str | None,
) -> Record:
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": _time(moment),
        "eventSource": "iam.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def create_access_key(
    identity: Record,
    account: str,
    moment: datetime,
    *,
    user: str | None,
    new_key: str | None,
    agent: str = SDK_AGENT,
    ip: str = "198.51.100.7",
    error: tuple[str, str] | None = None,
    event_id: str | None = None,
) -> Record:
    record = _base(identity, account, moment, "CreateAccessKey", agent, ip, event_id)
    record["requestParameters"] = {"userName": user} if user else None
    if error is not None:
        record["errorCode"], record["errorMessage"] = error
        record["responseElements"] = None
    else:
        owner = user or identity.get("userName")
        access_key: Record = {
            "accessKeyId": new_key,
            "status": "Active",
            "createDate": moment.astimezone(UTC).strftime("%b %d, %Y, %I:%M:%S %p"),
        }
        if owner:
            access_key["userName"] = owner
        record["responseElements"] = {"accessKey": access_key}
    return record


def update_access_key(
    identity: Record,
    account: str,
    moment: datetime,
    *,
    user: str | None,
    key: str,
    status: str = "Inactive",
    event_id: str | None = None,
) -> Record:
    record = _base(
        identity, account, moment, "UpdateAccessKey", SDK_AGENT, "198.51.100.7", event_id
    )
    params: Record = {"accessKeyId": key, "status": status}
    if user:
        params["userName"] = user
    record["requestParameters"] = params
    record["responseElements"] = None
    return record


def delete_access_key(
    identity: Record,
    account: str,
    moment: datetime,
    *,
    user: str | None,
    key: str,
    event_id: str | None = None,
) -> Record:
    record = _base(
        identity, account, moment, "DeleteAccessKey", SDK_AGENT, "198.51.100.7", event_id
    )
    params: Record = {"accessKeyId": key}
    if user:
        params["userName"] = user
    record["requestParameters"] = params
    record["responseElements"] = None
    return record


def api_call(
    identity: Record,
    account: str,
    moment: datetime,
    source: str,
    name: str,
    *,
    region: str = "us-east-1",
    ip: str = "203.0.113.50",
    agent: str = SDK_AGENT,
    request: Record | None = None,
    read_only: bool = True,
) -> Record:
    record = _base(identity, account, moment, name, agent, ip, None)
    record["eventSource"] = source
    record["awsRegion"] = region
    record["readOnly"] = read_only
    record["requestParameters"] = request
    record["responseElements"] = None
    return record
