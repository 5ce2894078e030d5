"""The AWS side from settings: the one place a boto3 session is built (for bot.compose),
and the list of targets a hunt searches."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import boto3

from bot.settings import Settings
from checks.cloudtrail import Throttling
from checks.hunt import HuntOptions, activity_regions, creation_targets
from checks.model import Target
from checks.organizations import fetch_active_accounts
from checks.sessions import AwsSessions


class NoAccounts(Exception):
    """There is no account to search; a hunt must say so rather than report nothing."""

    code = "NoAccounts"


def build_sessions(settings: Settings, base: boto3.Session | None = None) -> AwsSessions:
    """Standard credential chain; honours AWS_ENDPOINT_URL(_<SERVICE>) because boto3 does."""
    return AwsSessions(
        base or boto3.Session(region_name=settings.regions[0]),
        role_name=settings.role_name,
        external_id=settings.external_id or None,
    )


def resolve_accounts(
    settings: Settings,
    sessions: AwsSessions,
    names: Callable[[Mapping[str, str | None]], None] = lambda _: None,
) -> list[str]:
    """Configured accounts; the Organization's active ones (their names go to `names`); else
    the caller's own."""
    if settings.use_organization:
        client = sessions.client(sessions.caller_account(), "organizations", "us-east-1")
        listed = fetch_active_accounts(client)
        if not listed:  # fail closed: "nothing to search" must never read as "nothing found"
            raise NoAccounts("the AWS Organization lists no ACTIVE account")
        names(listed)
        return list(listed)
    if settings.accounts:
        return list(settings.accounts)
    return [sessions.caller_account()]


def targets_for(accounts: list[str], only_account: str | None = None) -> list[Target]:
    """What a hunt for new keys reads: each account in us-east-1 only, whatever the
    configured regions (checks.hunt.creation_targets says why)."""
    return creation_targets(a for a in accounts if only_account is None or a == only_account)


def activity_targets_for(settings: Settings, accounts: list[str]) -> list[Target]:
    """Where a key's own calls are followed (`keyhunt key`, Investigate), and what
    `keyhunt check` verifies: us-east-1 and every configured region, in each account."""
    return [
        Target(account, region)
        for account in accounts
        for region in activity_regions(settings.regions)
    ]


def hunt_options(settings: Settings, **filters: Any) -> HuntOptions:
    """The settings' hunt options, plus per-hunt filters (user, actor, known_event_ids, ...)."""
    return HuntOptions(
        rotation_window=settings.rotation_window,
        suppressions=settings.suppressions,
        enrich=settings.enrich,
        max_workers=settings.max_workers,
        rate_per_target=settings.rate_per_target,
        throttling=Throttling(deadline_seconds=settings.throttle_deadline_seconds),
        **filters,
    )
