"""config/eventbridge-forwarder.yaml and config/central-bus.yaml say what keyhunt relies on.

Read as data (cfn-lint checks them as CloudFormation in `make lint`): the events they route
are the ones checks.eventbridge accepts, each grant is the narrowest that works, the queue
keeps what keyhunt cannot use for the dead-letter queue, and the forwarder can be one
StackSet for every account. config/iam-policy.json's queue grant is meta-tested against the
consumer's real calls in tests/test_aws_permissions.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.realtime import VISIBILITY_TIMEOUT
from checks.eventbridge import DETAIL_TYPE, IAM_REGION, SOURCE
from checks.parse import CREATE_ACCESS_KEY
from tests.test_aws_permissions import _CfnLoader

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict[str, Any]:
    text = (ROOT / "config" / name).read_text(encoding="utf-8")
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def forwarder() -> dict[str, Any]:
    return load("eventbridge-forwarder.yaml")


@pytest.fixture(scope="module")
def central() -> dict[str, Any]:
    return load("central-bus.yaml")


def only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]
    return found  # type: ignore[no-any-return]


def test_both_rules_route_exactly_what_keyhunt_reads(
    forwarder: dict[str, Any], central: dict[str, Any]
) -> None:
    expected = {
        "source": [SOURCE],
        "detail-type": [DETAIL_TYPE],
        "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": [CREATE_ACCESS_KEY]},
    }
    for template in (forwarder, central):
        assert only(template, "AWS::Events::Rule")["EventPattern"] == expected
        assert template["Rules"]["OnlyInUsEast1"]["Assertions"][0]["Assert"] == {
            "Fn::Equals": [{"Ref": "AWS::Region"}, IAM_REGION]
        }


def test_the_forwarder_puts_on_the_central_bus_only(forwarder: dict[str, Any]) -> None:
    rule = only(forwarder, "AWS::Events::Rule")
    assert rule["EventBusName"] == "default"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "CentralEventBusArn"}
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    role = only(forwarder, "AWS::IAM::Role")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in statements] == [
        ("Allow", "events:PutEvents", {"Ref": "CentralEventBusArn"})
    ]
    pattern = forwarder["Parameters"]["CentralEventBusArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "arn:aws:events:us-east-1:111122223333:event-bus/keyhunt")
    assert not re.fullmatch(pattern, "*")


def test_the_forwarder_is_one_stackset_for_every_account(forwarder: dict[str, Any]) -> None:
    for output in forwarder["Outputs"].values():
        assert "Export" not in output
    body = json.dumps([forwarder["Resources"], forwarder["Outputs"]])
    assert not re.search(r"\d{12}", body), "no account IDs"
    assert "RoleName" not in json.dumps(forwarder["Resources"]), "named IAM collides per stack"
    used = set(re.findall(r'"Ref": "(\w+)"', body))
    assert set(forwarder["Parameters"]) <= used


def test_only_the_organization_puts_on_the_bus(central: dict[str, Any]) -> None:
    policy = only(central, "AWS::Events::EventBusPolicy")
    statement = policy["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == {"Fn::GetAtt": ["Bus", "Arn"]}
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}
    }
    assert re.fullmatch(central["Parameters"]["OrganizationId"]["AllowedPattern"], "o-a1b2c3d4e5")


def test_only_the_rule_sends_to_the_queues(central: dict[str, Any]) -> None:
    (statement,) = only(central, "AWS::SQS::QueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["CreateAccessKeyToQueue", "Arn"]}}
    }


def test_what_keyhunt_cannot_use_ends_in_the_dead_letter_queue(central: dict[str, Any]) -> None:
    resources = central["Resources"]
    queue = resources["Queue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert queue["VisibilityTimeout"] >= VISIBILITY_TIMEOUT.total_seconds()
    assert queue["SqsManagedSseEnabled"] is True  # no KMS grant needed (README)
    (target,) = resources["CreateAccessKeyToQueue"]["Properties"]["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    assert {"QueueUrl", "EventBusArn", "DeadLetterQueueUrl"} <= set(central["Outputs"])
    assert central["Outputs"]["QueueUrl"]["Value"] == {"Ref": "Queue"}
