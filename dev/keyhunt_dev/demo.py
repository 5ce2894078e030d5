"""`keyhunt demo`: the whole product on this machine, with no AWS account and no Slack.

moto (IAM, STS) and the LookupEvents emulator stand in for AWS, the Slack stand-in for Slack.
Everything between them is the real product: the poll, the store, the Bolt app over HTTP with
signed requests, the lazy listeners, the renderer. The day it replays: a routine rotation, an
SSO session minting a key for a service user, a root key, a failed attempt, in two accounts.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CALLER = "123456789012"  # moto's default account: the account keyhunt runs in
PROD = "222222222222"
CHANNEL = "C0ALERTS"
TRIAGER = "U0CAROL"
# What the Slack stand-in calls them (conversations.info, users.info), as a workspace would.
NAMES = {CHANNEL: "security-alerts", TRIAGER: "carol"}
SIGNING_SECRET = "demo-signing-secret"
BOT_TOKEN = "xoxb-demo-token"


def run_demo(quiet: bool = False) -> int:
    try:
        from keyhunt_dev.aws import FakeAWS
        from keyhunt_dev.slack import FakeSlack
    except ImportError as exc:
        print(
            f"keyhunt demo needs the development package (pip install -e ./dev): {exc}",
            file=sys.stderr,
        )
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="keyhunt-demo-") as tmp,
        FakeAWS() as aws,
        FakeSlack(BOT_TOKEN, channels=(CHANNEL,), names=NAMES) as slack,
    ):
        out = _Printer(quiet, _SlackNames(slack.api_url))
        _isolate_aws(aws.endpoint_url, Path(tmp))
        now = datetime.now(UTC).replace(microsecond=0)
        keys = _seed(aws, now)
        return _replay(aws, slack, Path(tmp), now, keys, out)


def _isolate_aws(endpoint: str, tmp: Path) -> None:
    """Point boto3 at the fakes, and make sure no real credential can be picked up."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "demo-secret-not-real",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )


def _seed(aws: Any, now: datetime) -> dict[str, str]:
    """IAM users and keys in moto, and the day's CloudTrail records that made them."""
    import boto3

    from keyhunt_dev import records as r

    caller_iam = boto3.client("iam", region_name="us-east-1")
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{PROD}:role/KeyHuntReadOnly", RoleSessionName="demo-seed"
    )["Credentials"]
    prod_iam = boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    caller_iam.create_user(UserName="dave")
    old = caller_iam.create_access_key(UserName="dave")["AccessKey"]["AccessKeyId"]
    new = caller_iam.create_access_key(UserName="dave")["AccessKey"]["AccessKeyId"]
    caller_iam.update_access_key(UserName="dave", AccessKeyId=old, Status="Inactive")
    prod_iam.create_user(UserName="deploy-bot")
    bot_key = prod_iam.create_access_key(UserName="deploy-bot")["AccessKey"]["AccessKeyId"]
    prod_iam.create_user(UserName="bob")
    root_key = "AKIA" + "ROOTDEMO" + "0000" + "7Q2X"

    dave = r.iam_user(CALLER, "dave", access_key=old)
    sso = r.assumed_role(
        PROD, "AWSReservedSSO_AdministratorAccess_0123456789abcdef", "alice@example.com"
    )
    mallory = r.iam_user(CALLER, "mallory", access_key="AKIAEXAMPLEMALLORY01")
    day = [
        (
            CALLER,
            r.create_access_key(
                dave,
                CALLER,
                now - timedelta(hours=5),
                user=None,
                new_key=new,
                event_id="demo-rotation-create",
            ),
        ),
        (
            CALLER,
            r.update_access_key(
                r.iam_user(CALLER, "dave", access_key=new),
                CALLER,
                now - timedelta(hours=4, minutes=50),
                user=None,
                key=old,
            ),
        ),
        (
            PROD,
            r.create_access_key(
                sso,
                PROD,
                now - timedelta(hours=2),
                user="deploy-bot",
                new_key=bot_key,
                ip="203.0.113.50",
                event_id="demo-sso-for-deploy-bot",
            ),
        ),
        (
            PROD,
            r.create_access_key(
                r.root(PROD),
                PROD,
                now - timedelta(hours=1),
                user=None,
                new_key=root_key,
                agent=r.CONSOLE_AGENT,
                event_id="demo-root-key",
            ),
        ),
        (
            CALLER,
            r.create_access_key(
                mallory,
                CALLER,
                now - timedelta(minutes=30),
                user="bob",
                new_key=None,
                agent="Boto3/1.35.0 md/Botocore#1.35.0 <!channel> *urgent*",
                ip="198.51.100.66",
                error=(
                    "AccessDenied",
                    "User: arn:aws:iam::123456789012:user/mallory is not "
                    "authorized to perform: iam:CreateAccessKey on resource: user bob",
                ),
                event_id="demo-failed-attempt",
            ),
        ),
    ]
    used_by_bot = r.iam_user(PROD, "deploy-bot", access_key=bot_key)
    activity = [
        r.api_call(
            used_by_bot,
            PROD,
            now - timedelta(hours=1, minutes=55),
            "sts.amazonaws.com",
            "GetCallerIdentity",
        ),
        r.api_call(
            used_by_bot,
            PROD,
            now - timedelta(hours=1, minutes=50),
            "s3.amazonaws.com",
            "ListBuckets",
        ),
        r.api_call(
            used_by_bot,
            PROD,
            now - timedelta(hours=1, minutes=45),
            "iam.amazonaws.com",
            "AttachUserPolicy",
            read_only=False,
            request={
                "userName": "deploy-bot",
                "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
            },
        ),
    ]
    for account, record in day:
        aws.add_events(account, "us-east-1", [record])
    aws.add_events(PROD, "us-east-1", activity)
    return {"bot_key": bot_key, "dave_new": new}


def _replay(
    aws: Any, slack: Any, tmp: Path, now: datetime, keys: dict[str, str], out: _Printer
) -> int:
    from bot.compose import Components
    from bot.render import ACTION_EXPECTED, ACTION_INVESTIGATE
    from bot.settings import load_settings
    from bot.triage import encode_value
    from keyhunt_dev.slack import block_action_body, post_to_bot, slash_command_body

    settings = load_settings(
        path=None,
        environ={
            "KEYHUNT_CONFIG": "",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "KEYHUNT_CHANNEL": CHANNEL,
            "KEYHUNT_ACCOUNTS": f"{CALLER},{PROD}",
            "KEYHUNT_DATABASE_URL": f"sqlite:///{tmp / 'keyhunt.db'}",
            "KEYHUNT_TRIAGERS": TRIAGER,
        },
    )
    parts = Components(settings)
    out.title(
        "keyhunt demo — fake AWS (moto + LookupEvents emulator) and a fake Slack, "
        "the real bot in between"
    )
    out.line(f"Accounts {CALLER} (keyhunt's own) and {PROD} (through AssumeRole), us-east-1.")

    out.title("1. One poll")
    outcome = parts.poller.run_once()
    delivery = outcome.delivery
    out.line(
        f"{outcome.new_findings} new findings stored; "
        f"{delivery.posted if delivery else 0} alerts posted to {out.names.channel(CHANNEL)}; "
        f"{len(aws.calls)} LookupEvents calls."
    )
    for message in slack.channel_messages(CHANNEL):
        out.message(message.text, message.blocks)

    parts.state.alive = lambda: True
    server = parts.http_server("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}/slack/events"
    try:
        out.title(f"2. Clicks, signed like Slack signs them, sent to {url}")
        rotation = parts.store.get("demo-rotation-create")
        sso = parts.store.get("demo-sso-for-deploy-bot")
        if rotation is None or sso is None or not rotation.message.ts or not sso.message.ts:
            out.line("the alerts were not posted; stopping")
            return 1
        for finding, action, label in (
            (rotation, ACTION_EXPECTED, "Expected rotation"),
            (sso, ACTION_INVESTIGATE, "Investigate"),
        ):
            # What Slack sends back: the button's value as the message holds it.
            value = encode_value(finding.event_id, finding.triage.status)
            body = block_action_body(
                action,
                value,
                user_id=TRIAGER,
                channel_id=CHANNEL,
                message_ts=str(finding.message.ts),
                response_url=slack.response_url("click"),
                message=slack.messages[CHANNEL][str(finding.message.ts)].as_dict(),
            )
            status, _, _ = post_to_bot(url, body, SIGNING_SECRET)
            who = out.names.user(TRIAGER)
            out.line(f"{who} clicked [{label}] on {finding.event_id}: HTTP {status}")
        _wait(
            lambda: (
                len(slack.calls_to("chat.update")) >= 2
                and len(slack.thread(CHANNEL, str(sso.message.ts))) >= 2
            )
        )
        for finding in (rotation, sso):
            out.message(
                slack.messages[CHANNEL][str(finding.message.ts)].text,
                slack.messages[CHANNEL][str(finding.message.ts)].blocks,
                "updated in place",
            )
        for reply in slack.thread(CHANNEL, str(sso.message.ts))[1:]:
            out.message(reply.text, reply.blocks, "in the thread")
        forged = post_to_bot(url, body, "not-the-secret")[0]
        out.line(f"The same click with a forged signature: HTTP {forged}, nothing changed.")

        out.title("3. /keyhunt last 24h")
        body = slash_command_body(
            "last 24h", user_id=TRIAGER, channel_id=CHANNEL, response_url=slack.response_url("hunt")
        )
        started = time.monotonic()
        status, _, _ = post_to_bot(url, body, SIGNING_SECRET)
        out.line(f"acknowledged in {1000 * (time.monotonic() - started):.0f} ms (HTTP {status})")
        _wait(lambda: any(p.key == "hunt" for p in slack.responses))
        answer = next(p for p in slack.responses if p.key == "hunt").body
        out.message(str(answer.get("text")), list(answer.get("blocks") or []), "only you see this")
        history = parts.store.history("demo-rotation-create")
        out.title("4. What the store kept")
        for decision in history:
            out.line(
                f"audit: {decision.event_id} {decision.previous_status} → "
                f"{decision.status} by {decision.user_id} at {decision.at:%H:%M:%S} UTC"
            )
        out.line(
            f"Investigated key {keys['bot_key']}; the database was {tmp / 'keyhunt.db'} "
            "(removed on exit)."
        )
        out.line("Next: README.md → Deployment, to run it against your own AWS and Slack.")
    finally:
        server.stop()
        parts.close()
    return 0


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)


class _SlackNames:
    """Channel and user names, asked of the Slack stand-in as a Slack client would."""

    def __init__(self, api_url: str) -> None:
        from slack_sdk import WebClient

        self.client = WebClient(token=BOT_TOKEN, base_url=api_url)
        self.cache: dict[str, str] = {}

    def channel(self, channel_id: str) -> str:
        if channel_id not in self.cache:
            info = self.client.conversations_info(channel=channel_id)
            self.cache[channel_id] = f"#{info['channel']['name']}"
        return self.cache[channel_id]

    def user(self, user_id: str) -> str:
        if user_id not in self.cache:
            info = self.client.users_info(user=user_id)
            self.cache[user_id] = f"@{info['user']['name']}"
        return self.cache[user_id]


class _Printer:
    """Slack messages for a terminal, as Slack would show them: bold markers dropped outside
    code spans, entities decoded, mentions and channels by name, lines wrapped at words. What
    came from CloudTrail is shown as it is: never cut, never rewritten."""

    WIDTH = 96

    def __init__(self, quiet: bool, names: _SlackNames) -> None:
        self.quiet = quiet
        self.names = names

    def title(self, text: str) -> None:
        if not self.quiet:
            print(f"\n\033[1m{text}\033[0m" if sys.stdout.isatty() else f"\n== {text}")

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text)

    def message(self, text: str, blocks: list[dict[str, Any]], note: str = "") -> None:
        if self.quiet:
            return
        width = self.WIDTH
        label = f" {note} " if note else ""
        print("┌" + label.center(width, "─") + "┐")
        for chunk in _wrap(self.readable(text), width - 2):
            print("│ " + chunk.ljust(width - 2) + " │")
        print("│" + " " * width + "│")
        for line in _blocks_to_lines(blocks):
            for chunk in _wrap(self.readable(line), width - 2):
                print("│ " + chunk.ljust(width - 2) + " │")
        print("└" + "─" * width + "┘")

    def readable(self, text: str) -> str:
        """mrkdwn as Slack renders it, in plain text."""
        parts = re.split(r"(`[^`\n]*`)", text)  # code spans are shown exactly as they are
        shown = []
        for part in parts:
            if not part.startswith("`"):
                # Outside code spans a `*` is keyhunt's own bold marker (what came from
                # CloudTrail is always in a code span), so every one goes.
                part = part.replace("*", "")
                part = re.sub(r"<@([A-Z0-9]+)>", lambda m: self.names.user(m.group(1)), part)
                part = re.sub(
                    r"<#([A-Z0-9]+)(?:\|[^>]*)?>", lambda m: self.names.channel(m.group(1)), part
                )
            shown.append(part.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        return "".join(shown)


def _blocks_to_lines(blocks: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("section", "context"):
            texts = [block["text"]["text"]] if "text" in block else []
            texts += [f["text"] for f in block.get("fields", [])]
            texts += [e.get("text", "") for e in block.get("elements", [])]
            for text in texts:
                lines.extend(text.splitlines())
        elif kind == "actions":
            lines.append("  ".join(f"[ {e['text']['text']} ]" for e in block["elements"]))
    return lines


def _wrap(line: str, width: int) -> list[str]:
    """At word boundaries; a word longer than the line (a key ID, an ARN) is split, never cut."""
    return textwrap.wrap(
        line,
        width,
        break_on_hyphens=False,
        replace_whitespace=False,
        drop_whitespace=True,
        subsequent_indent="  ",
    ) or [""]
