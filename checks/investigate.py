"""Investigate one access key: who made it, from where, what it has done since, IAM's view."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from checks.awserror import AwsReadFailed
from checks.classify import classify
from checks.cloudtrail import fetch_pages, gate_client, parse_entry
from checks.hunt import CREATE, IAM_REGION, ClientSource, HuntOptions
from checks.iam import KeyLastUse, fetch_key_last_use, fetch_user_keys
from checks.model import (
    FATAL_STAGES,
    HUNT_STAT_FIELDS,
    ApiActivity,
    Finding,
    HuntStats,
    KeyInfo,
    Target,
    TargetError,
    Window,
)
from checks.parse import MalformedRecord, UnreadableRecord, parse_activity, parse_envelope
from checks.sessions import AssumeRoleFailed

log = logging.getLogger(__name__)

ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")


@dataclass(slots=True)
class KeyReport:
    access_key_id: str
    window: Window
    targets: list[Target]
    creation: Finding | None = None
    last_use: KeyLastUse | None = None
    owner_keys: tuple[KeyInfo, ...] | None = None
    activity: list[ApiActivity] = field(default_factory=list)
    errors: list[TargetError] = field(default_factory=list)
    stats: HuntStats = field(default_factory=HuntStats)

    @property
    def complete(self) -> bool:
        return not any(e.stage in FATAL_STAGES for e in self.errors)


def validate_key_id(text: str) -> str:
    key = text.strip()
    if not ACCESS_KEY_ID.match(key):
        raise ValueError(f"bad access key ID {text!r}: expected 16-128 upper-case letters/digits")
    return key


def investigate_key(
    access_key_id: str,
    targets: Sequence[Target],
    window: Window,
    clients: ClientSource,
    options: HuntOptions | None = None,
) -> KeyReport:
    opts = options or HuntOptions()
    report = KeyReport(access_key_id=access_key_id, window=window, targets=list(targets))
    workers = max(1, min(opts.max_workers, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="key") as pool:
        for creation, activity, errors, stats in pool.map(
            lambda t: _read_target(access_key_id, t, window, clients, opts), targets
        ):
            if creation is not None and report.creation is None:
                report.creation = creation
            report.activity.extend(activity)
            report.errors.extend(errors)
            for name in HUNT_STAT_FIELDS:
                setattr(report.stats, name, getattr(report.stats, name) + getattr(stats, name))
    report.activity.sort(key=lambda a: (a.event_time, a.event_id))
    _read_iam(report, targets, clients)
    return report


def _read_target(
    key: str, target: Target, window: Window, clients: ClientSource, opts: HuntOptions
) -> tuple[Finding | None, list[ApiActivity], list[TargetError], HuntStats]:
    stats = HuntStats()
    try:
        client = clients.client(target.account_id, "cloudtrail", target.region)
    except AssumeRoleFailed as exc:
        return None, [], [TargetError(target, "assume_role", exc.code, exc.message)], stats
    gate_client(client, opts.rate_per_target)
    creation: Finding | None = None
    activity: list[ApiActivity] = []
    try:
        if target.region == IAM_REGION:  # IAM's CloudTrail events are recorded only here
            creation = _find_creation(client, key, target, window, stats, opts)
        activity = _activity(client, key, window, stats, opts)
    except AwsReadFailed as exc:
        return creation, activity, [TargetError(target, "lookup", exc.code, exc.message)], stats
    return creation, activity, [], stats


def key_activity(
    access_key_id: str,
    target: Target,
    window: Window,
    clients: ClientSource,
    options: HuntOptions | None = None,
) -> tuple[list[ApiActivity], HuntStats]:
    """The calls made with one key in one target: the LookupEvents by AccessKeyId alone (no
    creation lookup, no IAM), what a poll's follow-up of an open finding costs. Raises
    AwsReadFailed (AssumeRoleFailed) when the target cannot be read."""
    opts = options or HuntOptions()
    stats = HuntStats()
    client = clients.client(target.account_id, "cloudtrail", target.region)
    gate_client(client, opts.rate_per_target)
    return _activity(client, access_key_id, window, stats, opts), stats


def _activity(
    client: object, key: str, window: Window, stats: HuntStats, opts: HuntOptions
) -> list[ApiActivity]:
    activity: list[ApiActivity] = []
    for page in fetch_pages(client, ("AccessKeyId", key), window, stats, opts.throttling):
        for entry in page:
            stats.events_read += 1
            call = _read_activity(entry, stats)
            if call is not None:
                activity.append(call)
    return activity


def _find_creation(
    client: object,
    key: str,
    target: Target,
    window: Window,
    stats: HuntStats,
    opts: HuntOptions,
) -> Finding | None:
    for page in fetch_pages(client, CREATE, window, stats, opts.throttling):
        for entry in page:
            stats.events_read += 1
            event = parse_entry(entry, stats)
            if event is not None and event.access_key_id == key:
                return classify(event, suppressions=opts.suppressions, target=target)
    return None


def _read_activity(entry: dict[str, Any], stats: HuntStats) -> ApiActivity | None:
    """One API call made with the key; a record without an ID, name or time is skipped."""
    envelope = parse_envelope(entry)
    raw = entry.get("CloudTrailEvent")
    try:
        if not isinstance(raw, str | bytes):
            raise UnreadableRecord("missing" if raw is None else type(raw).__name__)
        call = parse_activity(raw, envelope)
    except UnreadableRecord as exc:
        stats.unreadable += 1
        log.warning("skipped unreadable record %r: %s", envelope.event_id, exc)
        return None
    except MalformedRecord as exc:
        stats.malformed += 1
        log.warning("skipped malformed record %r: %s", envelope.event_id, exc)
        return None
    if call.problems:
        stats.malformed += 1
    return call


def _read_iam(report: KeyReport, targets: Sequence[Target], clients: ClientSource) -> None:
    """Ask IAM which user owns the key, in the creation's account first, then the others."""
    accounts = sorted({t.account_id for t in targets})
    if report.creation is not None and report.creation.account_id in accounts:
        first = report.creation.account_id
        accounts = [first] + [a for a in accounts if a != first]
    for account in accounts:
        try:
            iam = clients.client(account, "iam", IAM_REGION)
            use = fetch_key_last_use(iam, report.access_key_id)
            report.stats.iam_calls += 1
        except (AwsReadFailed, AssumeRoleFailed) as exc:
            report.stats.iam_calls += 1
            if exc.code not in ("NoSuchEntity", "AccessDenied", "AccessDeniedException"):
                report.errors.append(
                    TargetError(Target(account, IAM_REGION), "iam", exc.code, exc.message)
                )
            continue
        report.last_use = use
        if use.user_name:
            try:
                report.owner_keys = tuple(fetch_user_keys(iam, use.user_name))
                report.stats.iam_calls += 1
            except AwsReadFailed as exc:
                report.errors.append(
                    TargetError(Target(account, IAM_REGION), "iam", exc.code, exc.message)
                )
        return
