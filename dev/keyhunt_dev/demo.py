"""`keyhunt demo`: the whole product on this machine, with no AWS account and no Slack.

moto (IAM, STS) and the LookupEvents emulator stand in for AWS, the Slack stand-in for Slack.
Everything between them is the real product: the poll, the store, the Bolt app over HTTP with
signed requests, the lazy listeners, the renderer. The day it replays: a routine rotation, an
SSO session minting a key for a service user, a root key, a failed attempt, in two accounts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

CALLER = "123456789012"  # moto's default account: the account keyhunt runs in
PROD = "222222222222"
CHANNEL = "C0ALERTS"
TRIAGER = "U0CAROL"
ALICE = "U0ALICE"  # alice@example.com, whose SSO session made deploy-bot's key
RESPONDER = "U0DAN"  # on call: mentioned on escalations, may deactivate keys
# What the Slack stand-in calls them (conversations.info, users.info), as a workspace would.
NAMES = {CHANNEL: "security-alerts", TRIAGER: "carol", ALICE: "alice", RESPONDER: "dan"}
SIGNING_SECRET = "demo-signing-secret"
BOT_TOKEN = "xoxb-demo-token"
# `keyhunt demo --keep`: where the database and the env file stay (relative to the cwd).
KEEP_DIR = ".keyhunt-demo"
ENV_FILE = "env"


def run_demo(
    quiet: bool = False, keep: bool = False, as_json: bool = False, directory: Path | None = None
) -> int:
    """The replay; with ``keep`` the fakes and the bot stay up (until Ctrl-C) for exploring,
    and the database and an env file stay in ``directory``. ``as_json`` prints every message
    the demo posted as Block Kit JSON instead of the narrated boxes."""
    try:
        from keyhunt_dev.aws import FakeAWS
        from keyhunt_dev.slack import FakeSlack
    except ImportError as exc:
        print(
            f"keyhunt demo needs the development package (pip install -e ./dev): {exc}",
            file=sys.stderr,
        )
        return 2
    with contextlib.ExitStack() as stack:
        if keep:
            workdir = (directory or Path(KEEP_DIR)).resolve()
            workdir.mkdir(parents=True, exist_ok=True)
            for stale in (ENV_FILE, "keyhunt.db", "keyhunt.db-journal"):
                (workdir / stale).unlink(missing_ok=True)  # another run's world is gone
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keyhunt-demo-")))
        aws = stack.enter_context(FakeAWS())
        slack = stack.enter_context(
            FakeSlack(
                BOT_TOKEN,
                channels=(CHANNEL,),
                names=NAMES,
                emails={"alice@example.com": ALICE},
            )
        )
        out = _Printer(quiet or as_json, _SlackNames(slack.api_url))
        env = _isolate_aws(aws.endpoint_url, workdir)
        now = datetime.now(UTC).replace(microsecond=0)
        keys = _seed(aws, now)
        settings_env = _settings_env(slack.api_url, workdir)
        parts, url = _start_bot(stack, settings_env)
        code = _replay(aws, slack, parts, url, now, keys, out)
        if as_json:
            print(json.dumps(posted_messages(slack), indent=2, ensure_ascii=False))
        if code != 0 or not keep:
            if not keep:
                out.line(f"The database was {workdir / 'keyhunt.db'} (removed on exit).")
            out.line("Next: README.md → Deployment, to run it against your own AWS and Slack.")
            return code
        exports = {**env, **settings_env, "KEYHUNT_DEMO_URL": url, "DEMO_KEY": keys["bot_key"]}
        _write_env_file(workdir / ENV_FILE, exports)
        _explain_keep(workdir, keys["bot_key"], quiet=as_json)
        _wait_for_stop()
        (workdir / ENV_FILE).unlink(missing_ok=True)  # it names ports nothing listens on now
        print(f"keyhunt demo: stopped; the database is kept in {workdir}", file=sys.stderr)
        return 0


def _isolate_aws(endpoint: str, tmp: Path) -> dict[str, str]:
    """Point boto3 at the fakes, and make sure no real credential can be picked up."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "demo-secret-not-real",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update(env)
    return env


def _settings_env(slack_api_url: str, workdir: Path) -> dict[str, str]:
    """keyhunt's configuration for the demo world: the environment a deployment would set."""
    return {
        "KEYHUNT_CONFIG": "",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api_url,
        "KEYHUNT_CHANNEL": CHANNEL,
        "KEYHUNT_ACCOUNTS": f"{CALLER},{PROD}",
        "KEYHUNT_DATABASE_URL": f"sqlite:///{workdir / 'keyhunt.db'}",
        "KEYHUNT_TRIAGERS": f"{TRIAGER},{RESPONDER}",
        "KEYHUNT_RESPONDERS": RESPONDER,
        "KEYHUNT_RESPONSE_ACTIONS": "deactivate",
    }


def _start_bot(stack: contextlib.ExitStack, environ: dict[str, str]) -> tuple[Any, str]:
    """The real bot, built as `keyhunt serve` builds it, on a loopback port."""
    from bot.compose import Components
    from bot.settings import load_settings

    parts = Components(load_settings(path=None, environ=environ))
    stack.callback(parts.close)
    parts.state.alive = lambda: True
    server = parts.http_server("127.0.0.1", 0)
    stack.callback(server.stop)
    return parts, f"http://127.0.0.1:{server.port}/slack/events"


def _seed(aws: Any, now: datetime) -> dict[str, str]:
    """IAM users and keys in moto, and the day's CloudTrail records that made them."""
    import boto3

    from keyhunt_dev import records as r

    caller_iam = boto3.client("iam", region_name="us-east-1")
    prod_iam = aws_client(PROD, "iam")
    # What the on-call calls them: keyhunt reads each account's alias (iam:ListAccountAliases).
    caller_iam.create_account_alias(AccountAlias="security")
    prod_iam.create_account_alias(AccountAlias="prod")
    caller_iam.create_user(UserName="dave")
    old = caller_iam.create_access_key(UserName="dave")["AccessKey"]["AccessKeyId"]
    new = caller_iam.create_access_key(UserName="dave")["AccessKey"]["AccessKeyId"]
    caller_iam.update_access_key(UserName="dave", AccessKeyId=old, Status="Inactive")
    aws.backdate_key(CALLER, old, now - timedelta(days=212))  # the key dave rotated away
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
    aws: Any, slack: Any, parts: Any, url: str, now: datetime, keys: dict[str, str], out: _Printer
) -> int:
    from bot.render import ACTION_EXPECTED, ACTION_INVESTIGATE
    from bot.triage import encode_value
    from keyhunt_dev.slack import block_action_body, post_to_bot, slash_command_body

    out.title(
        "keyhunt demo — fake AWS (moto + LookupEvents emulator) and a fake Slack, "
        "the real bot in between"
    )
    out.line(
        f"Accounts security ({CALLER}, keyhunt's own) and prod ({PROD}, through AssumeRole), "
        "us-east-1; named by their account aliases."
    )

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
    code = _ask_and_contain(aws, slack, parts, url, keys, out)
    if code != 0:
        return code
    out.title("5. What the store kept (keyhunt audit --last 1d)")
    for entry in parts.store.audit_since(now - timedelta(days=1)):
        who = out.names.user(entry.user_id) if entry.user_id != "keyhunt" else "keyhunt"
        out.line(f"audit: {entry.at:%H:%M:%S} UTC {who} {entry.action} {entry.event_id}")
    out.line(f"Investigated key {keys['bot_key']}.")
    return 0


def _ask_and_contain(
    aws: Any, slack: Any, parts: Any, url: str, keys: dict[str, str], out: _Printer
) -> int:
    """Alice was asked "Was this you?" after the poll; she says No; the thread escalates to
    the responder, who deactivates the key (moto's IAM really changes) and reactivates it."""
    from bot.render import ACTION_DEACTIVATE, ACTION_REACTIVATE
    from bot.render_asking import ACTION_OWNER_NO
    from keyhunt_dev.slack import block_action_body, post_to_bot

    out.title("4. Was this you? Asking the owner, containing the key")
    sso = parts.store.get("demo-sso-for-deploy-bot")
    people = sso.engagement if sso is not None else None
    if sso is None or people is None or not people.dm_channel or not people.dm_ts:
        out.line("nobody was asked; stopping")
        return 1
    dm = slack.messages[people.dm_channel][people.dm_ts]
    out.message(dm.text, dm.blocks, f"DM to {out.names.user(ALICE)}")

    def click(channel: str, ts: str, action: str, user: str, block: str) -> int:
        message = slack.messages[channel][ts].as_dict()
        value = next(
            (
                str(e.get("value"))
                for b in message.get("blocks") or []
                for e in b.get("elements") or []
                if e.get("action_id") == action
            ),
            "",
        )
        body = block_action_body(
            action,
            value,
            user_id=user,
            channel_id=channel,
            message_ts=ts,
            message=message,
            response_url=slack.response_url("click"),
            block_id=block,
        )
        return post_to_bot(url, body, SIGNING_SECRET)[0]

    status = click(people.dm_channel, people.dm_ts, ACTION_OWNER_NO, ALICE, "owner")
    out.line(f"{out.names.user(ALICE)} clicked [No, I didn't]: HTTP {status}")
    alert_ts = str(sso.message.ts)
    _wait(lambda: any(f"<@{RESPONDER}>" in m.text for m in slack.thread(CHANNEL, alert_ts)))
    escalation = next(m for m in slack.thread(CHANNEL, alert_ts) if f"<@{RESPONDER}>" in m.text)
    out.message(escalation.text, escalation.blocks, "in the thread")
    iam = aws_client(PROD, "iam")

    def status_of() -> str:
        listed = iam.list_access_keys(UserName="deploy-bot")["AccessKeyMetadata"]
        return str(next(k["Status"] for k in listed if k["AccessKeyId"] == keys["bot_key"]))

    def status_is(expected: str) -> bool:
        return status_of() == expected

    for action, label, wanted in (
        (ACTION_DEACTIVATE, "Deactivate key", "Inactive"),
        (ACTION_REACTIVATE, "Reactivate key", "Active"),
    ):
        _wait(partial(_offers, slack, alert_ts, action))
        replies = len(slack.thread(CHANNEL, alert_ts))
        status = click(CHANNEL, alert_ts, action, RESPONDER, "triage")
        _wait(partial(status_is, wanted))
        # The thread's note is the click's last step: printed (and kept) only once it is there.
        _wait(partial(_replied, slack, alert_ts, replies))
        out.line(
            f"{out.names.user(RESPONDER)} clicked [{label}] and confirmed: HTTP {status}; "
            f"IAM now says {keys['bot_key']} is {status_of()}"
        )
        if action == ACTION_DEACTIVATE:
            alert = slack.messages[CHANNEL][alert_ts]
            out.message(alert.text, alert.blocks, "updated in place")
    return 0


def _replied(slack: Any, ts: str, before: int) -> bool:
    """The thread of `ts` has grown past `before` messages."""
    return len(slack.thread(CHANNEL, ts)) > before


def _offers(slack: Any, ts: str, action: str) -> bool:
    """The channel message `ts` offers the button `action` now."""
    return action in json.dumps(slack.messages[CHANNEL][ts].blocks)


def aws_client(account: str, service: str) -> Any:
    """A client in `account` as the demo's seeding does it (AssumeRole into the fake)."""
    import boto3

    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/KeyHuntReadOnly", RoleSessionName="demo-seed"
    )["Credentials"]
    session: Any = boto3.Session()  # `service` is any name: no per-service overload applies
    return session.client(
        service,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def posted_messages(slack: Any) -> dict[str, Any]:
    """Every message the demo posted, as Slack holds it (current version, Block Kit JSON), and
    every answer the bot sent to a response_url (only its asker sees those)."""
    return {
        "messages": [m.as_dict() | {"channel": m.channel} for m in slack.channel_messages(CHANNEL)],
        "responses": [{"response_url": p.key, **p.body} for p in slack.responses],
    }


def _write_env_file(path: Path, exports: dict[str, str]) -> None:
    """Shell lines that put a second terminal in the demo world; written last (and atomically)
    so that its existence means the world is up."""
    scripts = sysconfig.get_path("scripts")
    lines = [
        "# keyhunt demo --keep: `. " + shlex.quote(str(path)) + "` in another shell.",
        "# Fake credentials for the fake AWS; nothing here reaches a real account.",
        "unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE",
        f'export PATH={shlex.quote(scripts)}:"$PATH"',
        *(f"export {name}={shlex.quote(value)}" for name, value in exports.items()),
    ]
    partial = path.with_suffix(".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)


def _explain_keep(workdir: Path, key: str, quiet: bool) -> None:
    """What to type next, on stderr when stdout carries the JSON."""
    env_file = shlex.quote(str(workdir / ENV_FILE))
    text = f"""
The demo world stays up: fake AWS, fake Slack and the bot. In another terminal:

  . {env_file}
  keyhunt hunt --last 24h              # the same findings, from the terminal
  keyhunt key "$DEMO_KEY"              # {key}: who made it, what it did since
  keyhunt demo slash "last 24h"        # a signed /keyhunt, answered as in Slack
  keyhunt poll --once                  # one poll cycle: nothing new, nothing posted twice

Ctrl-C here stops it; the database stays in {workdir}.
"""
    print(text, file=sys.stderr if quiet else sys.stdout, flush=True)


def _wait_for_stop() -> None:
    """Until Ctrl-C or SIGTERM; the caller's with-block then stops everything in order."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def run_slash(text: str, environ: Mapping[str, str] | None = None) -> int:
    """`keyhunt demo slash TEXT`: a /keyhunt command, signed as Slack signs it, sent to the
    kept demo's bot; prints the ack and the answer the bot posts to the response_url."""
    from bot.commands import CommandError, Help, parse_command
    from keyhunt_dev.slack import post_to_bot, slash_command_body

    env = os.environ if environ is None else environ
    url, secret = env.get("KEYHUNT_DEMO_URL"), env.get("SLACK_SIGNING_SECRET")
    api_url = env.get("SLACK_API_URL")
    if not url or not secret or not api_url:
        print(
            "keyhunt demo slash: no demo to talk to (KEYHUNT_DEMO_URL is not set): run "
            f"`keyhunt demo --keep` and source the env file it names ({KEEP_DIR}/{ENV_FILE})",
            file=sys.stderr,
        )
        return 2
    try:
        answered_later = not isinstance(parse_command(text), Help)
    except CommandError:
        answered_later = False  # the ack itself is the usage answer
    out = _Printer(False, _SlackNames(api_url))
    with _ResponseCatcher() as catcher:
        body = slash_command_body(
            text,
            user_id=env.get("KEYHUNT_TRIAGERS", TRIAGER).split(",")[0],
            channel_id=env.get("KEYHUNT_CHANNEL", CHANNEL),
            response_url=catcher.url,
        )
        try:
            status, _, raw = post_to_bot(url, body, secret)
        except OSError as exc:
            print(
                f"keyhunt demo slash: the demo bot at {url} did not answer: {exc}", file=sys.stderr
            )
            return 1
        if status != 200:
            print(
                f"keyhunt demo slash: the bot refused the command: HTTP {status}", file=sys.stderr
            )
            return 1
        ack = _json_object(raw)
        out.message(str(ack.get("text", "")), list(ack.get("blocks") or []), "ack")
        if not answered_later:
            return 0
        answer = catcher.wait(timeout=120.0)
        if answer is None:
            print("keyhunt demo slash: no answer within 120 s", file=sys.stderr)
            return 1
        out.message(str(answer.get("text")), list(answer.get("blocks") or []), "only you see this")
    return 0


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"text": raw.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {}


class _ResponseCatcher:
    """A loopback response_url: the first JSON object POSTed to it is the answer."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        got: list[dict[str, Any]] = []
        arrived = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got.append(_json_object(self.rfile.read(length)))
                arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")  # as Slack answers a response_url post

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response"
        self.got, self.arrived = got, arrived

    def __enter__(self) -> _ResponseCatcher:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, timeout: float) -> dict[str, Any] | None:
        return self.got[0] if self.arrived.wait(timeout) else None


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
        for line in _blocks_to_lines(blocks, self.readable, (width - 2) // 2 - 1):
            for chunk in _wrap(line, width - 2):
                print("│ " + chunk.ljust(width - 2) + " │")
        print("└" + "─" * width + "┘")

    def readable(self, text: str) -> str:
        """mrkdwn as Slack renders it, in plain text."""
        # Code spans are shown exactly as they are; a code block's fences are not shown.
        parts = re.split(r"(```|`[^`\n]*`)", text)
        shown = []
        for part in parts:
            if part == "```":
                continue
            if not part.startswith("`"):
                # Outside code spans a `*` is keyhunt's own bold marker (what came from
                # CloudTrail is always in a code span), so every one goes.
                part = part.replace("*", "")
                # Slack's date token: a terminal shows its UTC fallback.
                part = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", part)
                part = re.sub(r"<@([A-Z0-9]+)>", lambda m: self.names.user(m.group(1)), part)
                part = re.sub(
                    r"<#([A-Z0-9]+)(?:\|[^>]*)?>", lambda m: self.names.channel(m.group(1)), part
                )
            shown.append(part.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        return "".join(shown)


def _blocks_to_lines(
    blocks: list[dict[str, Any]], readable: Callable[[str], str], column: int
) -> list[str]:
    """Each block's lines as shown; a section's fields go two to a row, as Slack lays them
    out, when both fit in a column (`column` characters), else one to a row."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("section", "context"):
            texts = [block["text"]["text"]] if "text" in block else []
            texts += [e.get("text", "") for e in block.get("elements", [])]
            for text in texts:
                lines.extend(readable(line) for line in text.splitlines())
            fields = [readable(f["text"]) for f in block.get("fields", [])]
            for i in range(0, len(fields), 2):
                left, right = fields[i], fields[i + 1] if i + 1 < len(fields) else ""
                if "\n" not in left + right and max(len(left), len(right)) <= column:
                    lines.append(left.ljust(column + 2) + right)
                else:
                    lines.extend(t for f in (left, right) if f for t in f.splitlines())
        elif kind == "actions":
            lines.append(
                "  ".join(
                    "[ ⋯ ]" if e.get("type") == "overflow" else f"[ {e['text']['text']} ]"
                    for e in block["elements"]
                )
            )
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
