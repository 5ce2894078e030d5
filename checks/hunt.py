"""The one hunt path: targets x window in, findings plus what could not be read out.

Used by `keyhunt hunt`, the scheduled poll and the /keyhunt slash command alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    # IAM's reads are throttled per account well above this; a hunt naming many users of
    # one account still spreads its ListAccessKeys out instead of meeting that throttle.
    iam_rate_per_account: float = 5.0
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


def creation_targets(accounts: Iterable[str]) -> list[Target]:
    """Where a hunt for CreateAccessKey reads: each account in IAM_REGION, and nowhere else.

    IAM is global and CloudTrail records its events (the aws partition) in us-east-1 only, so
    a lookup anywhere else costs a call and can only answer "nothing". The configured regions
    do not change this: with us-east-1 left out of them it is still read (leaving it out
    would silently find nothing), and the others are where a key's own calls are followed
    (`activity_regions`)."""
    return [Target(account, IAM_REGION) for account in dict.fromkeys(accounts)]


def activity_regions(regions: Iterable[str]) -> tuple[str, ...]:
    """Where the calls made with a key are looked for: IAM_REGION (its IAM calls, the most
    telling ones, are recorded there whatever the configuration) then the configured ones."""
    return tuple(dict.fromkeys((IAM_REGION, *regions)))


def run_hunt(
    targets: Sequence[Target],
    window: Window,
    clients: ClientSource,
    options: HuntOptions | None = None,
) -> HuntResult:
    """Each target read in parallel; with `enrich`, each target's users are asked of IAM
    as soon as that target is read, on a pool of their own (see `_Enricher`)."""
    opts = options or HuntOptions()
    workers = max(1, min(opts.max_workers, len(targets)))

    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hunt") as pool,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hunt-iam") as iam_pool,
    ):
        enricher = _Enricher(clients, iam_pool, opts.iam_rate_per_account) if opts.enrich else None

        def one(target: Target) -> _TargetOutcome:
            outcome = hunt_target(target, window, clients, opts, enricher)
            if opts.on_target_done is not None:
                opts.on_target_done(target, outcome.stats, len(targets))
            return outcome

        outcomes = list(pool.map(one, targets))
        findings, errors, stats = _merge(outcomes)
        if enricher is not None:
            findings = enricher.apply(findings, errors, stats)
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
    target: Target,
    window: Window,
    clients: ClientSource,
    opts: HuntOptions,
    enricher: _Enricher | None = None,
) -> _TargetOutcome:
    """Read and classify one account x region. Never raises: failures become TargetErrors.
    The users its events name go to `enricher` as soon as they are read, so IAM answers
    while this target's rotation context is still being read."""
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

    if enricher is not None:
        enricher.submit(target.account_id, (e.target_user for e in events))
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


class _Enricher:
    """The target users' keys from IAM: one ListAccessKeys per distinct (account, user) per
    hunt (IAM has no batch form), asked as soon as the user's target is read, on a pool of
    its own and behind a limiter per account, so IAM's answers never hold up, nor share a
    gate with, the LookupEvents calls that are paced at CloudTrail's 2/s.

    Not the credential report: it names no key IDs (only counts and rotation dates), takes
    a GenerateCredentialReport and polling before it can be read, and can be four hours
    old; a hunt asks about the few users its findings name, which a call each covers."""

    def __init__(self, clients: ClientSource, pool: ThreadPoolExecutor, rate: float) -> None:
        self._clients = clients
        self._pool = pool
        self._rate = rate
        self._lock = threading.Lock()
        self._asked: dict[tuple[str, str], Future[tuple[KeyInfo, ...] | TargetError]] = {}

    def submit(self, account: str, users: Iterable[str | None]) -> None:
        for user in set(users):
            if not user or user == "root":  # the root user is no IAM user
                continue
            with self._lock:
                if (account, user) not in self._asked:
                    self._asked[(account, user)] = self._pool.submit(self._user_keys, account, user)

    def apply(
        self, findings: list[Finding], errors: list[TargetError], stats: HuntStats
    ) -> list[Finding]:
        """Waits for the answers; a failure is an error of its own, never a lost finding."""
        keys: dict[tuple[str, str], tuple[KeyInfo, ...]] = {}
        for pair, future in sorted(self._asked.items()):
            stats.iam_calls += 1
            result = future.result()
            if isinstance(result, TargetError):
                errors.append(result)
            else:
                keys[pair] = result
        return [_with_keys(f, keys) for f in findings]

    def _user_keys(self, account: str, user: str) -> tuple[KeyInfo, ...] | TargetError:
        target = Target(account, IAM_REGION)
        try:
            iam = self._clients.client(account, "iam", IAM_REGION)
            # The operation "iam" matches every IAM call of this client: one gate per account.
            gate_client(iam, self._rate, operation="iam", window_seconds=None)
            return tuple(fetch_user_keys(iam, user))
        except AwsReadFailed as exc:
            if exc.code == "NoSuchEntity":
                return ()  # the user has been deleted since: it holds no keys now
            return TargetError(target, "iam", exc.code, exc.message)
        except AssumeRoleFailed as exc:
            return TargetError(target, "iam", exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - enrichment is best effort by design
            return TargetError(target, "iam", type(exc).__name__, str(exc))


def _with_keys(finding: Finding, keys: dict[tuple[str, str], tuple[KeyInfo, ...]]) -> Finding:
    pair = _iam_user(finding)
    return finding if pair is None or pair not in keys else replace(finding, user_keys=keys[pair])


def _iam_user(finding: Finding) -> tuple[str, str] | None:
    """(account, user) to ask IAM about; None for root, which owns no IAM user."""
    account, user = finding.searched_account, finding.event.target_user
    if not account or not user or user == "root":
        return None
    return account, user


def _wanted(finding: Finding, opts: HuntOptions) -> bool:
    e = finding.event
    if opts.user is not None and not same_user(e.target_user, opts.user):
        return False
    if opts.actor is not None and not (
        same_user(e.actor.name, opts.actor) or e.actor.arn == opts.actor
    ):
        return False
    return opts.min_severity is None or finding.severity.rank >= opts.min_severity.rank
