"""The hunt as the bot runs it: settings + a request in, HuntResult out, statuses applied.

`keyhunt hunt`, `keyhunt key`, `/keyhunt` and the poller all come through `Hunter`, so there
is one copy of how targets, options and triage states are put together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError

from bot.accounts import AccountNames
from bot.aws import activity_targets_for, hunt_options, resolve_accounts, targets_for
from bot.settings import Settings
from checks.awserror import error_of
from checks.hunt import IAM_REGION, run_hunt
from checks.investigate import KeyReport, investigate_key, key_activity
from checks.model import (
    ApiActivity,
    Finding,
    HuntResult,
    HuntStats,
    Severity,
    Target,
    TargetError,
    Window,
)
from checks.sessions import AwsSessions
from checks.timeutil import MAX_LOOKBACK, isoformat_z


class AccountNotConfigured(Exception):
    """A hunt asked for an account keyhunt is not configured to search."""

    code = "AccountNotConfigured"

    def __init__(self, account: str, accounts: Sequence[str]) -> None:
        shown = ", ".join(accounts[:10]) + (" ..." if len(accounts) > 10 else "")
        super().__init__(f"account {account} is not among the accounts searched ({shown})")


class StatusSource(Protocol):
    """Where triage states live (the store); hunts show them next to each finding."""

    def statuses(self, event_ids: Sequence[str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class HuntRequest:
    window: Window
    user: str | None = None
    actor: str | None = None
    account: str | None = None
    min_severity: Severity | None = None


def make_window(
    last: timedelta | None,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None = None,
) -> Window:
    """--last, or --since [--until]; never older than CloudTrail's 90 days, never after now."""
    current = now or datetime.now(UTC)
    if since is None:
        return Window(current - (last or timedelta(hours=24)), current)
    end = min(until or current, current)
    if since < current - MAX_LOOKBACK:
        raise ValueError(
            f"--since {isoformat_z(since)} is more than 90 days ago (CloudTrail keeps 90 days)"
        )
    if since > current:
        raise ValueError(
            f"--since {isoformat_z(since)} is in the future (now {isoformat_z(current)})"
        )
    if since > end:
        raise ValueError(f"--since {isoformat_z(since)} is after --until {isoformat_z(end)}")
    return Window(since, end)


class Hunter:
    """Every hunt keyhunt runs: `/keyhunt`, `keyhunt hunt`, `keyhunt key` and the poll.

    Targets are planned in one place (`targets`), options in one place (`bot.aws.hunt_options`),
    and triage states come from the store when there is one. AWS sessions are built on first
    use, never in a constructor, and shared by every thread.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: Callable[[], AwsSessions],
        statuses: Callable[[], StatusSource | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self._make_sessions = sessions
        self._statuses = statuses
        self._sessions: AwsSessions | None = None
        self._lock = threading.Lock()
        self.account_names = AccountNames(
            settings.account_names, lambda: self.sessions, settings.max_workers
        )

    @property
    def sessions(self) -> AwsSessions:
        with self._lock:
            if self._sessions is None:
                self._sessions = self._make_sessions()
            return self._sessions

    def accounts(self) -> list[str]:
        """Every account searched. Raises when they cannot be listed."""
        return resolve_accounts(self.settings, self.sessions, self.account_names.learn)

    def targets(self, account: str | None = None) -> list[Target]:
        """Where new keys are looked for: every configured account (or the one asked for)
        in us-east-1, where IAM's events are recorded (the other configured regions are
        for a key's activity, `investigate`). Raises when the accounts cannot be listed,
        or `account` is not among them."""
        accounts = self.accounts()
        if account is not None and account not in accounts:
            raise AccountNotConfigured(account, accounts)
        return targets_for(accounts, account)

    def hunt(self, request: HuntRequest, **progress: Any) -> HuntResult:
        """A hunt someone asked for: planning failures are unread targets, never "nothing".
        `progress` may carry `on_target_done` (checks.hunt.HuntOptions) for a progress line."""
        try:
            targets = self.targets(request.account)
        except Exception as exc:  # noqa: BLE001 - reported as an unread target
            errors = planning_errors(request.account, exc)
            return HuntResult(request.window, [e.target for e in errors], [], errors, HuntStats())
        result = self.hunt_targets(
            targets,
            request.window,
            user=request.user,
            actor=request.actor,
            min_severity=request.min_severity,
            **progress,
        )
        source = self._statuses()
        if source is not None:
            result.findings = apply_statuses(result.findings, source.statuses)
        return result

    def hunt_targets(self, targets: list[Target], window: Window, **filters: Any) -> HuntResult:
        """The hunt itself, over targets already planned (the poll groups them by checkpoint)."""
        result = run_hunt(targets, window, self.sessions, hunt_options(self.settings, **filters))
        result.findings = self.named(result.findings)
        return result

    def names_for(self, accounts: Iterable[str]) -> dict[str, str]:
        """{account ID: name} for the accounts that have one (bot.accounts)."""
        return self.account_names.names_for(accounts)

    def named(self, findings: list[Finding]) -> list[Finding]:
        """Each finding with its account's name, when the account has one."""
        names = self.account_names.names_for(f.account_id for f in findings)
        return [
            replace(f, account_name=names[f.account_id]) if f.account_id in names else f
            for f in findings
        ]

    def key_activity(
        self, access_key_id: str, target: Target, window: Window
    ) -> tuple[list[ApiActivity], HuntStats]:
        """The calls made with one key in one target (one LookupEvents by AccessKeyId a page)."""
        return key_activity(
            access_key_id, target, window, self.sessions, hunt_options(self.settings)
        )

    def investigate(self, access_key_id: str, window: Window) -> KeyReport:
        targets = activity_targets_for(self.settings, self.accounts())
        report = investigate_key(
            access_key_id, targets, window, self.sessions, hunt_options(self.settings)
        )
        if report.creation is not None:
            (report.creation,) = self.named([report.creation])
        return report


def apply_statuses(
    findings: list[Finding], lookup: Callable[[Sequence[str]], dict[str, str]]
) -> list[Finding]:
    known = lookup([f.event.event_id for f in findings])
    return [replace(f, status=known.get(f.event.event_id, f.status)) for f in findings]


def planning_errors(account: str | None, exc: Exception) -> list[TargetError]:
    """The targets a hunt could not even plan (the accounts could not be listed: no
    credentials, Organizations refused, ...), each an unread target, never "nothing found"."""
    if isinstance(exc, ClientError):
        code = error_of(exc)[0]
    else:
        code = str(getattr(exc, "code", None) or type(exc).__name__)
    where = Target(account or "caller", IAM_REGION)  # where the hunt would have read
    return [TargetError(where, "accounts", code, _first_line(exc))]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
