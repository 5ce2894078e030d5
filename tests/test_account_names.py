"""Accounts by name: the config's, the Organization's or the alias; shown beside the ID."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest

from bot.accounts import AccountNames
from bot.aws import build_sessions
from bot.render import alert_text, render_status
from bot.settings import ConfigError, Settings, load_settings
from bot.stored import TargetHealth
from checks.sessions import AwsSessions
from keyhunt_dev.aws import FakeAWS
from tests.conftest import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from tests.scenario import CALLER, PEER, REGION, role_arn
from tests.slackbot import finding_of, root_key

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def settings_with(accounts: str | None = None, yaml_accounts: object = None) -> Settings:
    environ = {"KEYHUNT_CONFIG": ""}
    if accounts is not None:
        environ["KEYHUNT_ACCOUNTS"] = accounts
    return load_settings(environ=environ) if yaml_accounts is None else _from_yaml(yaml_accounts)


def _from_yaml(value: object) -> Settings:
    import tempfile
    from pathlib import Path

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keyhunt.yaml"
        path.write_text(yaml.safe_dump({"accounts": value}), encoding="utf-8")
        return load_settings(path=path, environ={})


def test_names_come_with_ids_in_the_config() -> None:
    env = settings_with(f"{CALLER}=security, {PEER}")
    assert env.accounts == (CALLER, PEER)
    assert env.account_names == ((CALLER, "security"),)
    mapping = settings_with(yaml_accounts={CALLER: "security", PEER: "prod"})
    assert mapping.accounts == (CALLER, PEER)
    assert dict(mapping.account_names) == {CALLER: "security", PEER: "prod"}
    listed = settings_with(yaml_accounts=[{PEER: "prod"}, CALLER])
    assert listed.accounts == (PEER, CALLER)
    assert listed.account_names == ((PEER, "prod"),)
    assert settings_with("organization").use_organization


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12345=prod", "'12345' is not a 12-digit account ID"),
        (f"{CALLER}={'x' * 65}", "over 64 characters"),
        (f"organization,{CALLER}=prod", "'organization' cannot be combined"),
    ],
)
def test_a_bad_account_entry_is_named(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_with(value)


def test_a_name_is_shown_beside_the_id() -> None:
    finding = replace(finding_of(root_key(NOW, account=PEER)), account_name="prod")
    assert f"in prod ({PEER}), us-east-1" in alert_text(finding)
    assert f"in {PEER}, us-east-1" in alert_text(replace(finding, account_name=None))
    health = [TargetHealth(PEER, REGION, NOW, NOW, None, None, 0)]
    _, blocks = render_status(health, [], 0, NOW, 5, names={PEER: "prod"})
    assert f"`prod ({PEER})` `{REGION}`: last read" in str(blocks)


def test_a_hostile_name_stays_text() -> None:
    finding = replace(finding_of(root_key(NOW, account=PEER)), account_name="<!channel> *x*")
    assert "<!channel>" not in alert_text(finding)


# -- aliases, through moto --------------------------------------------------------------


@pytest.fixture
def sessions(clean_fake_aws: FakeAWS, monkeypatch: pytest.MonkeyPatch) -> AwsSessions:
    monkeypatch.setenv("AWS_ENDPOINT_URL", clean_fake_aws.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET_KEY)
    return build_sessions(Settings(), boto3.Session(region_name=REGION))


@pytest.fixture
def peer_alias(sessions: AwsSessions) -> Iterator[str]:
    iam = sessions.client(PEER, "iam", REGION)
    iam.create_account_alias(AccountAlias="prod-alias")
    yield "prod-alias"
    iam.delete_account_alias(AccountAlias="prod-alias")  # moto's state outlives the test


def test_an_alias_is_asked_once_and_the_config_wins(
    sessions: AwsSessions, peer_alias: str, clean_fake_aws: FakeAWS
) -> None:
    asked: list[str] = []

    def counting() -> AwsSessions:
        asked.append("sessions")
        return sessions

    names = AccountNames([(CALLER, "security")], counting)
    assert names.names_for([PEER, CALLER, None]) == {PEER: peer_alias, CALLER: "security"}
    assert names.names_for([PEER]) == {PEER: peer_alias}
    assert asked == ["sessions"]  # one lookup, for the one account the config does not name
    names.learn({PEER: "from-the-organization"})
    assert names.names_for([PEER]) == {PEER: "from-the-organization"}


def test_a_failed_lookup_leaves_the_id_and_is_asked_again(
    sessions: AwsSessions, clean_fake_aws: FakeAWS
) -> None:
    clean_fake_aws.deny_assume_role(role_arn(PEER))
    names = AccountNames([], lambda: sessions)
    assert names.names_for([PEER]) == {}  # never raises: a name is a nicety
    clean_fake_aws.reset_faults()
    assert PEER not in names._learned  # not remembered as "has no name"
