"""No secret reaches the logs, at any level: RedactSecrets, and the real CLI at -vvv.

`keyhunt -vvv poll --once` and `keyhunt -vvv hunt` run as subprocesses against FakeAWS and
FakeSlack (running in this process, over loopback) with DEBUG logging on, botocore's included:
botocore then logs request headers, canonical requests and whole response bodies, among them
STS AssumeRole's answer with the assumed role's SecretAccessKey. Every secret the processes
hold is then searched for in what they wrote.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.logs import RedactSecrets, configure_logging
from bot.settings import Secret, Settings
from keyhunt_dev import records as r
from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack
from tests.conftest import KEYHUNT, keyhunt_env

CALLER = "123456789012"  # moto's account for the dummy access key id
PEER = "210987654321"  # reached through sts:AssumeRole
REGION = "us-east-1"
CHANNEL = "C0ALERTS"
BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

SESSION_TOKEN_BUG = (
    "bot/logs.py _SECRET_SHAPES (RedactSecrets.redact) misses STS session tokens: botocore at "
    "DEBUG (-vvv) logs them as <SessionToken>...</SessionToken> in AssumeRole's response body, "
    "'X-Amz-Security-Token': b'...' in request headers and x-amz-security-token:... in the "
    "canonical request; only `session_token` followed by 1-3 non-word characters is caught"
)


def aws_secret_key() -> str:
    return "".join(secrets.choice(BASE64) for _ in range(40))  # the shape of a real one


def redact(secrets_: list[str], message: str, *args: object) -> str:
    record = logging.LogRecord("test", logging.DEBUG, __file__, 1, message, args, None)
    assert RedactSecrets(secrets_).filter(record) is True  # redacts, never drops
    return record.getMessage()


# ============================================================================ RedactSecrets


def test_configured_secrets_are_replaced_wherever_they_appear() -> None:
    signing = secrets.token_hex(16)
    external_id = "keyhunt-" + secrets.token_hex(6)
    bot = "xoxb-" + secrets.token_hex(10)
    text = redact(
        [bot, signing, external_id],
        "verifying with %s; ExternalId=%s&RoleArn=x; headers %r",
        signing,
        external_id,
        {"Authorization": f"Bearer {bot}"},
    )
    for secret in (signing, external_id, bot):
        assert secret not in text
    assert text.startswith("verifying with ***; ExternalId=***&RoleArn=x;")


@pytest.mark.parametrize(
    "template",
    [
        "token {xoxb} sent",
        "app token {xapp}",
        "<SecretAccessKey>{aws}</SecretAccessKey>",
        "{{'aws_secret_access_key': '{aws}'}}",
        "credentials secret_key={aws} loaded",
        "SLACK_SIGNING_SECRET: {hex}",
    ],
)
def test_credential_shapes_are_replaced_even_when_not_configured(template: str) -> None:
    values = {
        "xoxb": "xoxb-123456789012-1234567890123-" + secrets.token_hex(12),
        "xapp": "xapp-1-A0KEYHUNT-1234567890-" + secrets.token_hex(32),
        "aws": aws_secret_key(),
        "hex": secrets.token_hex(16),
    }
    text = redact([], template.format(**values))
    assert "***" in text
    for secret in values.values():
        assert secret not in text


def test_tracebacks_are_redacted_and_folded_into_the_message() -> None:
    bot = "xoxb-" + secrets.token_hex(10)
    try:
        raise ValueError(f"Slack refused {bot}")
    except ValueError:
        record = logging.LogRecord(
            "test", logging.ERROR, __file__, 1, "post failed", None, sys.exc_info()
        )
    RedactSecrets([bot]).filter(record)
    text = logging.Formatter().format(record)
    assert "ValueError: Slack refused ***" in text
    assert bot not in text
    assert record.exc_info is None  # no handler can print the raw traceback again


def test_ordinary_identifiers_stay_readable() -> None:
    message = (
        "AKIAIOSFODNN7EXAMPLE in 123456789012 arn:aws:iam::123456789012:role/KeyHuntReadOnly "
        "event 3f0c5a2e-7d35-4c1a-9c39-0b8c4b0e8a11 channel C0ALERTS"
    )
    assert redact(["", "short"], message) == message  # an empty secret must not match all


@pytest.mark.parametrize(
    "template",
    [
        "<SessionToken>{token}</SessionToken>",
        "{{'X-Amz-Security-Token': b'{token}'}}",
        "x-amz-security-token:{token}\n",
    ],
)
def test_session_tokens_are_replaced(template: str) -> None:
    token = "FQoGZXIvYXdzE" + "".join(secrets.choice(BASE64) for _ in range(300))
    assert token not in redact([], template.format(token=token))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    levels = {name: logging.getLogger(name).level for name in ("botocore", "urllib3")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_json_format_writes_one_redacted_object_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bot = "xoxb-" + secrets.token_hex(10)
    configure_logging(Settings(slack_bot_token=Secret(bot), log_format="json"), verbosity=3)
    logging.getLogger("bot.test").debug("two\nlines with %s", bot)
    logging.getLogger("botocore.endpoint").debug("botocore speaks at -vvv")
    lines = capsys.readouterr().err.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["message"] for e in entries] == ["two\nlines with ***", "botocore speaks at -vvv"]
    assert entries[0]["level"] == "debug"
    assert entries[0]["logger"] == "bot.test"
    assert set(entries[0]) == {"time", "level", "logger", "message"}


# ===================================================================== the CLI at -vvv


@dataclass(frozen=True)
class CliSecrets:
    bot_token: str
    signing_secret: str
    app_token: str
    aws_secret_key: str
    external_id: str


@dataclass
class CliRun:
    secrets: CliSecrets
    poll: subprocess.CompletedProcess[str]  # KEYHUNT_LOG_FORMAT=json
    hunt: subprocess.CompletedProcess[str]  # KEYHUNT_LOG_FORMAT=text
    assumed: list[tuple[str, str]]  # (SecretAccessKey, SessionToken) of each role assumed

    @property
    def output(self) -> str:
        return "\n".join([self.poll.stderr, self.poll.stdout, self.hunt.stderr, self.hunt.stdout])


def assumed_role_credentials(external_id: str) -> list[tuple[str, str]]:
    """What moto handed out to the subprocesses (moto runs in this process): the roles they
    assumed carry this run's external ID."""
    from moto.sts.models import sts_backends

    return [
        (role.secret_access_key, role.session_token)
        for regions in sts_backends.values()
        for backend in regions.values()
        for role in backend.assumed_roles
        if role.external_id == external_id
    ]


def run_in_parallel(
    commands: dict[str, tuple[list[str], dict[str, str], Path]],
) -> dict[str, subprocess.CompletedProcess[str]]:
    running = {
        name: subprocess.Popen(
            [*KEYHUNT, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        for name, (args, env, cwd) in commands.items()
    }
    done = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=90)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return done


@pytest.fixture(scope="module")
def cli_run(fake_aws: FakeAWS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRun]:
    fake_aws.reset()
    cli = CliSecrets(
        bot_token=f"xoxb-123456789012-1234567890123-{secrets.token_hex(12)}",
        signing_secret=secrets.token_hex(16),
        app_token=f"xapp-1-A0KEYHUNT-1234567890-{secrets.token_hex(32)}",
        aws_secret_key=aws_secret_key(),
        external_id="keyhunt-" + secrets.token_hex(8),
    )
    now = datetime.now(UTC)
    erin = r.iam_user(CALLER, "erin")
    frank = r.assumed_role(PEER, "AWSReservedSSO_Admin_0123456789abcdef", "frank@example.com")
    fake_aws.add_events(
        CALLER,
        REGION,
        [r.create_access_key(erin, CALLER, now - timedelta(hours=2), user=None, new_key=None)],
    )
    fake_aws.add_events(
        PEER,
        REGION,
        [r.create_access_key(frank, PEER, now - timedelta(hours=1), user="gina", new_key=None)],
    )
    with FakeSlack(cli.bot_token, channels=(CHANNEL,)) as slack:
        commands = {}
        for name, args, log_format in (
            ("poll", ["-vvv", "poll", "--once"], "json"),
            ("hunt", ["-vvv", "hunt", "--last", "1d", "--format", "jsonl"], "text"),
        ):
            home = tmp_path_factory.mktemp(name)
            env = keyhunt_env(
                fake_aws,
                home,
                AWS_SECRET_ACCESS_KEY=cli.aws_secret_key,
                SLACK_BOT_TOKEN=cli.bot_token,
                SLACK_SIGNING_SECRET=cli.signing_secret,
                SLACK_APP_TOKEN=cli.app_token,
                SLACK_API_URL=slack.api_url,
                KEYHUNT_CHANNEL=CHANNEL,
                KEYHUNT_ACCOUNTS=f"{CALLER},{PEER}",
                KEYHUNT_EXTERNAL_ID=cli.external_id,
                KEYHUNT_LOG_FORMAT=log_format,
            )
            commands[name] = (args, env, home)
        done = run_in_parallel(commands)
        posted = len(slack.channel_messages(CHANNEL))
    assert posted == 2, done["poll"].stderr[-3000:]
    yield CliRun(cli, done["poll"], done["hunt"], assumed_role_credentials(cli.external_id))
    fake_aws.reset()


def test_the_commands_did_their_work_with_full_debug_logging(cli_run: CliRun) -> None:
    """Without this the secret search below could pass on empty logs."""
    assert cli_run.poll.returncode == 0, cli_run.poll.stderr[-3000:]
    assert cli_run.hunt.returncode == 0, cli_run.hunt.stderr[-3000:]
    assert len(cli_run.hunt.stdout.splitlines()) == 2
    assert len(cli_run.assumed) == 2, "each process assumed the role into the peer account"
    for process in (cli_run.poll, cli_run.hunt):
        assert "botocore.endpoint" in process.stderr  # botocore at DEBUG
        assert "<AssumeRoleResponse" in process.stderr  # the response body, credentials and all
        assert "<SecretAccessKey>***</SecretAccessKey>" in process.stderr
    assert "slack_sdk" in cli_run.poll.stderr  # the Slack client at DEBUG


def test_no_secret_appears_in_any_output(cli_run: CliRun) -> None:
    named = {
        "SLACK_BOT_TOKEN": cli_run.secrets.bot_token,
        "SLACK_SIGNING_SECRET": cli_run.secrets.signing_secret,
        "SLACK_APP_TOKEN": cli_run.secrets.app_token,
        "AWS_SECRET_ACCESS_KEY": cli_run.secrets.aws_secret_key,
        "KEYHUNT_EXTERNAL_ID": cli_run.secrets.external_id,
    }
    for index, (secret_key, _) in enumerate(cli_run.assumed):
        named[f"assumed role {index} SecretAccessKey"] = secret_key
    leaked = [name for name, secret in named.items() if secret in cli_run.output]
    assert not leaked, f"secrets in the output: {leaked}"


def test_no_session_token_appears_in_any_output(cli_run: CliRun) -> None:
    for _, token in cli_run.assumed:
        assert token not in cli_run.output


def test_json_logs_are_one_object_per_line(cli_run: CliRun) -> None:
    lines = cli_run.poll.stderr.splitlines()
    assert len(lines) > 50
    for line in lines:
        entry = json.loads(line)
        assert set(entry) == {"time", "level", "logger", "message"}, line
    assert {"debug", "info"} <= {json.loads(line)["level"] for line in lines}
