"""`keyhunt check`: one line per check, PASS or FAIL with the reason and the fix.

Exit 0 only when every check passes. Nothing here changes anything: the database check
writes inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from bot.aws import NoAccounts, activity_targets_for, resolve_accounts
from bot.settings import Settings
from bot.store import Store
from checks.awserror import error_of
from checks.sessions import AssumeRoleFailed, AwsSessions

if TYPE_CHECKING:
    from bot.compose import Components


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        head = f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"
        return head if self.ok or not self.fix else f"{head}\n      fix: {self.fix}"


def run_checks(parts: Components, out: TextIO = sys.stdout) -> int:
    settings = parts.settings
    results = [CheckResult("configuration", True, "valid")]
    results.extend(check_aws(settings, parts.sessions))
    results.extend(check_slack(settings, parts.slack if settings.slack_bot_token else None))
    results.append(check_database(settings.database_url))
    for result in results:
        print(result.line(), file=out)
    return 0 if all(r.ok for r in results) else 1


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        code, message = error_of(exc)
        return f"{code}: {message}"
    if isinstance(exc, AssumeRoleFailed):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def check_aws(settings: Settings, sessions: AwsSessions) -> list[CheckResult]:
    try:
        caller = sessions.caller_account()
    except (ClientError, BotoCoreError) as exc:
        return [
            CheckResult(
                "caller identity",
                False,
                _aws_error(exc),
                "give keyhunt AWS credentials (instance role, AWS_PROFILE, or env)",
            )
        ]
    results = [CheckResult("caller identity", True, f"account {caller}")]
    try:
        accounts = resolve_accounts(settings, sessions)
    except (ClientError, BotoCoreError, NoAccounts) as exc:
        return [
            *results,
            CheckResult(
                "organization accounts",
                False,
                _aws_error(exc),
                "allow organizations:ListAccounts, or list KEYHUNT_ACCOUNTS",
            ),
        ]
    if settings.use_organization:
        results.append(CheckResult("organization accounts", True, f"{len(accounts)} active"))
    now = datetime.now(UTC)
    for target in activity_targets_for(settings, accounts):
        name = f"LookupEvents {target}"
        try:
            client = sessions.client(target.account_id, "cloudtrail", target.region)
            client.lookup_events(
                LookupAttributes=[
                    {"AttributeKey": "EventName", "AttributeValue": "CreateAccessKey"}
                ],
                StartTime=now - timedelta(hours=1),
                EndTime=now,
                MaxResults=1,
            )
            results.append(CheckResult(name, True, "readable"))
        except AssumeRoleFailed as exc:
            results.append(
                CheckResult(
                    f"AssumeRole {target.account_id}",
                    False,
                    _aws_error(exc),
                    f"deploy config/cross-account-role.yaml in {target.account_id} trusting "
                    f"account {caller} (role {settings.role_name}; external ID if set)",
                )
            )
        except (ClientError, BotoCoreError) as exc:
            results.append(
                CheckResult(
                    name,
                    False,
                    _aws_error(exc),
                    "grant cloudtrail:LookupEvents (config/iam-policy.json)",
                )
            )
    return results


def check_slack(settings: Settings, client: Any | None) -> list[CheckResult]:
    from slack_sdk.errors import SlackApiError, SlackClientError

    if client is None or not settings.slack_bot_token:
        return [
            CheckResult(
                "Slack auth",
                False,
                "SLACK_BOT_TOKEN is not set",
                "create the app from config/slack-manifest.yaml and set its bot token",
            )
        ]
    web = client
    calls: list[tuple[str, Callable[[], Any], Callable[[Any], str], str]] = [
        (
            "Slack auth",
            web.auth_test,
            lambda r: f"bot {r.get('user_id')} in {r.get('team')}",
            "check SLACK_BOT_TOKEN (xoxb-...) and SLACK_API_URL",
        ),
    ]
    if settings.channel:
        calls.append(
            (
                f"bot in channel {settings.channel}",
                lambda: web.conversations_info(channel=settings.channel),
                lambda r: "member" if r.get("channel", {}).get("is_member") else "NOT a member",
                f"invite the bot: /invite @keyhunt in {settings.channel}",
            )
        )
    results = []
    for name, call, describe, fix in calls:
        try:
            response = call()
            detail = describe(response)
            results.append(CheckResult(name, "NOT" not in detail, detail, fix))
        except (SlackApiError, SlackClientError, OSError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
            results.append(CheckResult(name, False, str(error), fix))
    if not settings.channel:
        results.append(
            CheckResult(
                "channel",
                False,
                "KEYHUNT_CHANNEL is not set",
                "set KEYHUNT_CHANNEL to the alert channel's ID (C...)",
            )
        )
    return results


def check_database(url: str) -> CheckResult:
    """Reachable and writable, without creating anything: `check` only probes. A SQLite file
    that does not exist yet passes when its folder is writable (`serve` creates it)."""
    fix = "check KEYHUNT_DATABASE_URL and that the volume is writable"
    path = sqlite_path(url)
    if path is not None and not path.exists():
        folder = path.parent
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            return CheckResult(
                "database",
                True,
                f"sqlite {path.name} not created yet; its folder is writable "
                "(keyhunt serve or poll --once creates it)",
            )
        return CheckResult("database", False, f"sqlite folder {folder} is not writable", fix)
    store = Store(url)  # no migration: a probe changes nothing
    try:
        with store.engine.connect() as conn:
            if not store.engine.dialect.has_table(conn, "leases"):
                return CheckResult(
                    "database",
                    True,
                    f"{store.dialect} reachable; no keyhunt schema yet "
                    "(keyhunt serve or poll --once creates it)",
                )
        store.ping()
        return CheckResult("database", True, f"{store.dialect} reachable and writable")
    except Exception as exc:  # noqa: BLE001 - any failure here is the answer
        return CheckResult("database", False, f"{type(exc).__name__}: {str(exc)[:200]}", fix)
    finally:
        store.close()


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///` URL; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None
