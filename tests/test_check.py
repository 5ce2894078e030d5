"""`keyhunt check` through the real CLI: one line per check, PASS or FAIL with the fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack
from tests.conftest import keyhunt_env, run_keyhunt

CALLER, PEER = "123456789012", "210987654321"
TOKEN = "xoxb-check-test"
CHANNEL = "C0ALERTS"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(TOKEN, channels=(CHANNEL,)) as running:
        yield running


def check(
    fake: FakeAWS, slack: FakeSlack, tmp_path: Path, **overrides: str | None
) -> tuple[int, list[str]]:
    settings: dict[str, str | None] = {
        "KEYHUNT_ACCOUNTS": f"{CALLER},{PEER}",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.api_url,
        "KEYHUNT_CHANNEL": CHANNEL,
    }
    env = keyhunt_env(fake, tmp_path, **(settings | overrides))
    done = run_keyhunt(["check"], env, tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout.splitlines()


def line(lines: list[str], name: str) -> str:
    return next(entry for entry in lines if name in entry)


def test_everything_reachable_passes(
    clean_fake_aws: FakeAWS, slack: FakeSlack, tmp_path: Path
) -> None:
    code, lines = check(clean_fake_aws, slack, tmp_path)

    assert code == 0, lines
    heads = [entry for entry in lines if entry[:4] in ("PASS", "FAIL")]
    assert all(entry.startswith("PASS") for entry in heads), lines
    for name in (
        "configuration",
        "caller identity",
        f"LookupEvents {CALLER}/us-east-1",
        f"LookupEvents {PEER}/us-east-1",
        "Slack auth",
        f"bot in channel {CHANNEL}",
        "database",
    ):
        assert line(lines, name).startswith("PASS"), name
    # One LookupEvents call per account and region, and nothing else from CloudTrail.
    assert len(clean_fake_aws.lookup_calls()) == 2


def test_each_failure_is_named_with_its_fix(
    clean_fake_aws: FakeAWS, slack: FakeSlack, tmp_path: Path
) -> None:
    clean_fake_aws.deny_assume_role(f"arn:aws:iam::{PEER}:role/KeyHuntReadOnly")
    unwritable = tmp_path / "no" / "such" / "dir" / "keyhunt.db"

    code, lines = check(
        clean_fake_aws,
        slack,
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-wrong",
        KEYHUNT_DATABASE_URL=f"sqlite:///{unwritable}",
    )

    assert code == 1
    assert line(lines, f"LookupEvents {CALLER}/us-east-1").startswith("PASS")
    denied = lines.index(line(lines, f"AssumeRole {PEER}"))
    assert lines[denied].startswith("FAIL")
    assert "AccessDenied" in lines[denied]
    assert "cross-account-role.yaml" in lines[denied + 1]  # the fix follows on its own line
    assert line(lines, "Slack auth").startswith("FAIL")
    assert "invalid_auth" in line(lines, "Slack auth")
    assert line(lines, "database").startswith("FAIL")
    assert "xoxb-wrong" not in "\n".join(lines)  # the token itself is never printed


def test_a_bad_configuration_is_exit_2(
    clean_fake_aws: FakeAWS, slack: FakeSlack, tmp_path: Path
) -> None:
    code, _ = check(clean_fake_aws, slack, tmp_path, KEYHUNT_REGIONS="moon-base-1")
    assert code == 2


def test_check_probes_the_database_and_never_creates_one(
    clean_fake_aws: FakeAWS, slack: FakeSlack, tmp_path: Path
) -> None:
    database = tmp_path / "fresh.db"

    code, lines = check(
        clean_fake_aws, slack, tmp_path, KEYHUNT_DATABASE_URL=f"sqlite:///{database}"
    )

    assert code == 0, lines
    assert "not created yet; its folder is writable" in line(lines, "database")
    assert not database.exists()
    assert not list(tmp_path.glob("*.db*"))  # nor its WAL or journal


def test_check_finds_an_existing_database_reachable_and_writable(
    clean_fake_aws: FakeAWS, slack: FakeSlack, tmp_path: Path
) -> None:
    from bot.settings import Settings
    from bot.store import open_store

    database = tmp_path / "kept.db"
    store = open_store(Settings(database_url=f"sqlite:///{database}"))
    store.close()

    code, lines = check(
        clean_fake_aws, slack, tmp_path, KEYHUNT_DATABASE_URL=f"sqlite:///{database}"
    )

    assert code == 0, lines
    assert (
        " ".join(line(lines, "database").split()) == "PASS database: sqlite reachable and writable"
    )
