"""The one hunt path: targets x window in, findings plus what could not be read out.

Used by `keyhunt hunt`, the scheduled poll and the /keyhunt slash command alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from checks.awserror import AwsReadFailed
from checks.classify import classify
from checks.cloudtrail import Throttling, fetch_events, gate_client
from checks.iam import fetch_user_keys
from checks.model import (
    HUNT_STAT_FIELDS,
    Finding,
    HuntResult,
    HuntStats,
    KeyEvent,
    KeyInfo,
    Severity,
    Target,
    TargetError,
    Window,
)
from checks.rules import RuleContext, same_user
from checks.sessions import AssumeRoleFailed
from checks.suppress import Suppression

log = logging.getLogger(__name__)

CREATE = ("EventName", "CreateAccessKey")
ROTATION_EVENT_NAMES = ("UpdateAccessKey", "DeleteAccessKey")
IAM_REGION = "us-east-1"  # IAM is global; its API and its CloudTrail events live here


class ClientSource(Protocol):
    """Anything that hands out boto3 clients per account (checks.sessions.AwsSessions)."""

    def client(self, account_id: str, service: str, region: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class HuntOptions:
    rotation_window: timedelta = timedelta(hours=24)
    suppressions: tuple[Suppression, ...] = ()
    enrich: bool = False
    user: str | None = None
    actor: str | None = None
    min_severity: Severity | None = None
    max_workers: int = 32
    # Events already handled (the poller's overlap re-reads them): not classified again, so
    # they cost no rotation-context lookups and no IAM calls.
    known_event_ids: frozenset[str] = frozenset()
    rate_per_target: float = 2.0
    throttling: Throttling = field(default_factory=Throttling)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Called from the hunt's threads as each target finishes (target, its stats, how many
    # targets in all): what a progress line needs. Must be quick and thread-safe.
    on_target_done: Callable[[Target, HuntStats, int], None] | None = None


@dataclass(slots=True)
class _TargetOutcome:
    findings: list[Finding] = field(default_factory=list)
    errors: list[TargetError] = field(default_factory=list)
    stats: HuntStats = field(default_factory=HuntStats)


def run_hunt(
    targets: Sequence[Target],
    window: Window,
    clients: ClientSource,
    options: HuntOptions | None = None,
) -> HuntResult:
    opts = options or HuntOptions()
    workers = max(1, min(opts.max_workers, len(targets)))

    def one(target: Target) -> _TargetOutcome:
        outcome = hunt_target(target, window, clients, opts)
        if opts.on_target_done is not None:
            opts.on_target_done(target, outcome.stats, len(targets))
        return outcome

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hunt") as pool:
        outcomes = list(pool.map(one, targets))
        findings, errors, stats = _merge(outcomes)
        if opts.enrich and findings:
            findings = _enrich(findings, clients, pool, errors, stats)
    findings = [f for f in findings if _wanted(f, opts)]
    findings.sort(key=lambda f: (f.event.event_time, f.event.event_id), reverse=True)
    return HuntResult(
        window=window,
        targets=list(targets),
        findings=findings,
        errors=errors,
        stats=stats,
        per_target={t: o.stats for t, o in zip(targets, outcomes, strict=True)},
    )


def hunt_target(
    target: Target, window: Window, clients: ClientSource, opts: HuntOptions
) -> _TargetOutcome:
    """Read and classify one account x region. Never raises: failures become TargetErrors."""
    out = _TargetOutcome()
    try:
        client = clients.client(target.account_id, "cloudtrail", target.region)
    except AssumeRoleFailed as exc:
        out.errors.append(TargetError(target, "assume_role", exc.code, exc.message))
        return out
    except Exception as exc:  # noqa: BLE001 - a broken account must not sink the hunt
        out.errors.append(TargetError(target, "assume_role", type(exc).__name__, str(exc)))
        return out
    gate_client(client, opts.rate_per_target)

    try:
        events = [
            e
            for e in fetch_events(client, CREATE, window, out.stats, opts.throttling)
            if e.event_name == CREATE[1] and e.event_id not in opts.known_event_ids
        ]
    except AwsReadFailed as exc:
        out.errors.append(TargetError(target, "lookup", exc.code, exc.message))
        return out

    changes: list[KeyEvent] = []
    if any(_could_be_rotation(e) for e in events):
        changes = _rotation_context(client, target, window, opts, out)
    ctx = RuleContext(key_changes=changes, rotation_window=opts.rotation_window)
    out.findings = [classify(e, ctx, opts.suppressions, target) for e in events]
    return out


def _could_be_rotation(event: KeyEvent) -> bool:
    return not event.failed and event.actor.type != "Root"


def _rotation_context(
    client: Any, target: Target, window: Window, opts: HuntOptions, out: _TargetOutcome
) -> list[KeyEvent]:
    """UpdateAccessKey/DeleteAccessKey around the window. On failure nothing is lowered."""
    wide = Window(
        start=window.start - opts.rotation_window,
        end=min(window.end + opts.rotation_window, max(opts.now(), window.end)),
    )
    changes: list[KeyEvent] = []
    for name in ROTATION_EVENT_NAMES:
        try:
            changes.extend(
                fetch_events(client, ("EventName", name), wide, out.stats, opts.throttling)
            )
        except AwsReadFailed as exc:
            out.errors.append(TargetError(target, "rotation_context", exc.code, exc.message))
            return []
    return changes


def _merge(
    outcomes: Iterable[_TargetOutcome],
) -> tuple[list[Finding], list[TargetError], HuntStats]:
    findings: list[Finding] = []
    errors: list[TargetError] = []
    stats = HuntStats()
    seen: set[tuple[str | None, str]] = set()
    for outcome in outcomes:
        errors.extend(outcome.errors)
        for name in HUNT_STAT_FIELDS:
            setattr(stats, name, getattr(stats, name) + getattr(outcome.stats, name))
        for finding in outcome.findings:
            key = (finding.account_id, finding.event.event_id)
            if key not in seen:  # one event, one finding, even if two regions return it
                seen.add(key)
                findings.append(finding)
    return findings, errors, stats


def _enrich(
    findings: list[Finding],
    clients: ClientSource,
    pool: ThreadPoolExecutor,
    errors: list[TargetError],
    stats: HuntStats,
) -> list[Finding]:
    """One ListAccessKeys per (account, user) per hunt; a failure never loses the finding."""
    users = sorted(
        {
            (_searched_account(f), f.event.target_user)
            for f in findings
            if _searched_account(f) and f.event.target_user and f.event.target_user != "root"
        },
        key=str,
    )
    keys: dict[tuple[str | None, str | None], tuple[KeyInfo, ...]] = {}
    for (account, user), result in zip(
        users, pool.map(lambda pair: _user_keys(clients, *pair), users), strict=True
    ):
        stats.iam_calls += 1
        if isinstance(result, TargetError):
            errors.append(result)
        else:
            keys[(account, user)] = result
    return [
        replace(f, user_keys=keys.get((_searched_account(f), f.event.target_user)))
        for f in findings
    ]


def _searched_account(finding: Finding) -> str | None:
    """The account we read the event from: IAM is asked there, with the same credentials."""
    return finding.target.account_id if finding.target else finding.account_id


def _user_keys(
    clients: ClientSource, account: str | None, user: str | None
) -> tuple[KeyInfo, ...] | TargetError:
    target = Target(str(account), IAM_REGION)
    try:
        iam = clients.client(str(account), "iam", IAM_REGION)
        return tuple(fetch_user_keys(iam, str(user)))
    except AwsReadFailed as exc:
        if exc.code == "NoSuchEntity":
            return ()  # the user has been deleted since: it holds no keys now
        return TargetError(target, "iam", exc.code, exc.message)
    except AssumeRoleFailed as exc:
        return TargetError(target, "iam", exc.code, exc.message)
    except Exception as exc:  # noqa: BLE001 - enrichment is best effort by design
        return TargetError(target, "iam", type(exc).__name__, str(exc))


def _wanted(finding: Finding, opts: HuntOptions) -> bool:
    e = finding.event
    if opts.user is not None and not same_user(e.target_user, opts.user):
        return False
    if opts.actor is not None and not (
        same_user(e.actor.name, opts.actor) or e.actor.arn == opts.actor
    ):
        return False
    return opts.min_severity is None or finding.severity.rank >= opts.min_severity.rank
