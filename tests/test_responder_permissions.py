"""config/responder-policy.json and config/responder-role.yaml grant exactly what Deactivate and
Reactivate call, and nothing keyhunt's read-only side could use to write.

A Deactivate and a Reactivate run against FakeAWS (moto) with the recorder of
tests/test_aws_permissions.py on every botocore client: keyhunt's own credentials make the
AssumeRole, the responder role's credentials make the IAM calls.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bot.containment import Containment
from bot.settings import Settings
from bot.store import Store
from keyhunt_dev import records as r
from keyhunt_dev.aws import FakeAWS
from tests.slackbot import CALLER, REGION, aws_environment, finding_of, now_utc, unique
from tests.test_aws_permissions import Recorder, _CfnLoader, actions_of, load_policy

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "config" / "responder-policy.json"
TEMPLATE = ROOT / "config" / "responder-role.yaml"
ROLE = Settings().responder_role_name
RESPONDER = "U0RESP"


def responder_policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(POLICY.read_text(encoding="utf-8"))
    return policy


def statements(prefix: str) -> list[dict[str, Any]]:
    return [s for s in responder_policy()["Statement"] if s["Sid"].startswith(prefix)]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    data = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    assert isinstance(data, dict)
    return data


@pytest.fixture
def recorded(clean_fake_aws: FakeAWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    aws_environment(monkeypatch, clean_fake_aws.endpoint_url, tmp_path)
    iam = boto3.Session().client("iam", region_name=REGION)  # the env now, not a cached default
    user = unique("deploy-bot")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    record = r.create_access_key(
        r.iam_user(CALLER, unique("alice")), CALLER, now_utc(), user=user, new_key=key
    )
    store = Store(f"sqlite:///{tmp_path / 'keyhunt.db'}")
    store.migrate()
    (event_id,) = store.add_findings([finding_of(record)])
    settings = replace(Settings(), response_actions=("deactivate",), responders=(RESPONDER,))
    containment = Containment(settings, store, now_utc)
    recorder = Recorder()
    recorder.install(monkeypatch)
    recorder.flow = "respond"
    for action in ("deactivate", "reactivate"):
        stored = store.get(event_id)
        assert stored is not None
        outcome = containment.act(stored, action, RESPONDER)
        assert outcome.done, outcome.message
    recorder.flow = ""
    store.close()
    return recorder


def test_the_policy_is_least_privilege_and_never_deletes() -> None:
    policy = responder_policy()
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Sid"].startswith(("Bot", "PerAccount"))
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
    assert actions_of(statements("Bot")) == {"sts:AssumeRole"}
    (assume,) = statements("Bot")
    assert assume["Resource"] == f"arn:aws:iam::*:role/{ROLE}"
    (per_account,) = statements("PerAccount")
    assert per_account["Resource"] == "arn:aws:iam::*:user/*"
    assert not {a for a in actions_of(policy["Statement"]) if "Delete" in a or "Create" in a}
    # The read-only side never gains a write: containment is this role's alone.
    assert "iam:UpdateAccessKey" not in actions_of(load_policy()["Statement"])


def test_policy_grants_exactly_what_deactivate_and_reactivate_call(recorded: Recorder) -> None:
    own = {c.action for c in recorded.calls if c.credentials == "env"}
    assumed = {c.action for c in recorded.calls if c.credentials != "env"}
    assert own == actions_of(statements("Bot"))
    assert assumed == actions_of(statements("PerAccount"))
    (call, *_) = [c for c in recorded.calls if c.action == "sts:AssumeRole"]
    assert call.params["RoleArn"] == f"arn:aws:iam::{CALLER}:role/{ROLE}"
    assert re.fullmatch(r"keyhunt-[\w+=,.@-]+", call.params["RoleSessionName"])
    assert call.params["RoleSessionName"] == f"keyhunt-{RESPONDER}"
    statuses = [c.params["Status"] for c in recorded.calls if c.action == "iam:UpdateAccessKey"]
    assert statuses == ["Inactive", "Active"]


def test_template_role_grants_exactly_the_per_account_part(template: dict[str, Any]) -> None:
    (role,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    properties = role["Properties"]
    granted = [s for p in properties["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert actions_of(granted) == actions_of(statements("PerAccount"))
    for statement in granted:
        assert statement["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"
        }
    assert properties["RoleName"] == {"Ref": "RoleName"}
    assert template["Parameters"]["RoleName"]["Default"] == ROLE
    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Ref": "KeyHuntPrincipal"}}
    with_id, without_id = trust["Condition"]["Fn::If"][1:]
    for condition in (with_id, without_id):
        assert condition["StringLike"] == {"sts:RoleSessionName": "keyhunt-*"}
    assert with_id["StringEquals"] == {"sts:ExternalId": {"Ref": "ExternalId"}}


def test_template_is_ready_for_an_organization_stackset(template: dict[str, Any]) -> None:
    for output in template.get("Outputs", {}).values():
        assert "Export" not in output
    body = json.dumps([template["Resources"], template.get("Conditions"), template["Outputs"]])
    assert not re.search(r"\d{12}", body)
    used = set(re.findall(r'"Ref": "(\w+)"', body)) | set(re.findall(r"\$\{(\w+)\}", body))
    assert set(template["Parameters"]) <= used
