"""The hunt as the bot runs it: settings + a request in, HuntResult out, statuses applied.

`keyhunt hunt`, `/keyhunt` and the poller all come through `run_request`, so there is one
copy of how targets, options and triage states are put together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.aws import hunt_options, resolve_accounts, targets_for
from bot.settings import Settings
from checks.hunt import run_hunt
from checks.investigate import KeyReport, investigate_key
from checks.model import Finding, HuntResult, HuntStats, Severity, Target, TargetError, Window
from checks.sessions import AwsSessions
from checks.timeutil import MAX_LOOKBACK


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
        raise ValueError("--since is more than 90 days ago (CloudTrail's event history)")
    if since > end:
        raise ValueError("--since is after --until (or in the future)")
    return Window(since, end)


def run_request(
    settings: Settings,
    sessions: AwsSessions,
    request: HuntRequest,
    status_source: StatusSource | None = None,
) -> HuntResult:
    try:
        accounts = resolve_accounts(settings, sessions)
        if request.account is not None and request.account not in accounts:
            raise AccountNotConfigured(request.account, accounts)
    except Exception as exc:  # noqa: BLE001 - reported as an unread target, never as "nothing"
        return _unreadable(settings, request, exc)
    targets = targets_for(settings, accounts, request.account)
    options = hunt_options(
        settings, user=request.user, actor=request.actor, min_severity=request.min_severity
    )
    result = run_hunt(targets, request.window, sessions, options)
    if status_source is not None:
        result.findings = apply_statuses(result.findings, status_source.statuses)
    return result


def run_key_request(
    settings: Settings, sessions: AwsSessions, access_key_id: str, window: Window
) -> KeyReport:
    accounts = resolve_accounts(settings, sessions)
    return investigate_key(
        access_key_id, targets_for(settings, accounts), window, sessions, hunt_options(settings)
    )


def apply_statuses(
    findings: list[Finding], lookup: Callable[[Sequence[str]], dict[str, str]]
) -> list[Finding]:
    known = lookup([f.event.event_id for f in findings])
    return [replace(f, status=known.get(f.event.event_id, f.status)) for f in findings]


def _unreadable(settings: Settings, request: HuntRequest, exc: Exception) -> HuntResult:
    code = getattr(exc, "code", None) or type(exc).__name__
    where = request.account or "caller"
    targets = [Target(where, region) for region in settings.regions]
    errors = [TargetError(t, "accounts", str(code), _first_line(exc)) for t in targets]
    return HuntResult(request.window, targets, [], errors, HuntStats())


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
