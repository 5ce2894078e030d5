"""Queued CreateAccessKey events to findings: the hunt's classification, with its context.

A queued event is judged by the same rules as a polled one (checks.classify with a
checks.rules.RuleContext). What differs is where the context comes from: the hunt reads the
UpdateAccessKey/DeleteAccessKey events around its window in the same LookupEvents pass; a
queued event arrives alone, so its target's key changes are read here, with the hunt's
window shape (the rotation window before the event, up to now after it), one pair of
LookupEvents calls per target per batch, through the target's own rate limiter.

What this cannot see: a retirement CloudTrail has not delivered to LookupEvents yet (about
five minutes), nor one made after the alert (a rotation usually deactivates the old key
after the new one works). Such a key is alerted at its unlowered severity; nothing is ever
lowered on evidence that could not be read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from checks.awserror import AwsReadFailed
from checks.classify import classify
from checks.cloudtrail import fetch_events, gate_client
from checks.eventbridge import QueuedEvent
from checks.hunt import IAM_REGION, ROTATION_EVENT_NAMES, ClientSource, HuntOptions
from checks.iam import fetch_user_keys
from checks.model import Finding, HuntStats, KeyEvent, KeyInfo, Target, TargetError, Window
from checks.rules import RuleContext
from checks.sessions import AssumeRoleFailed


@dataclass(slots=True)
class QueuedFindings:
    findings: list[Finding] = field(default_factory=list)
    # Context that could not be read (rotation, IAM): the findings are still made.
    errors: list[TargetError] = field(default_factory=list)
    stats: HuntStats = field(default_factory=HuntStats)  # IAM calls
    # The rotation context's LookupEvents calls, per target (for the per-target metrics).
    per_target: dict[Target, HuntStats] = field(default_factory=dict)


def classify_queued(
    queued: Sequence[QueuedEvent], clients: ClientSource, opts: HuntOptions
) -> QueuedFindings:
    """One finding per queued event, in order; never raises for AWS failures."""
    out = QueuedFindings()
    by_target: dict[Target | None, list[KeyEvent]] = defaultdict(list)
    for item in queued:
        by_target[item.target].append(item.event)
    contexts: dict[Target | None, RuleContext] = {}
    for target, events in by_target.items():
        changes: list[KeyEvent] = []
        if target is not None and any(_could_be_rotation(e) for e in events):
            changes = _key_changes(target, events, clients, opts, out)
        contexts[target] = RuleContext(key_changes=changes, rotation_window=opts.rotation_window)
    findings = [classify(q.event, contexts[q.target], opts.suppressions, q.target) for q in queued]
    out.findings = _enrich(findings, clients, out) if opts.enrich else findings
    return out


def _could_be_rotation(event: KeyEvent) -> bool:
    """As the hunt decides it: only a successful key made by someone other than root."""
    return not event.failed and event.actor.type != "Root"


def _key_changes(
    target: Target,
    events: list[KeyEvent],
    clients: ClientSource,
    opts: HuntOptions,
    out: QueuedFindings,
) -> list[KeyEvent]:
    first = min(e.event_time for e in events)
    last = max(e.event_time for e in events)
    now: datetime = opts.now()
    window = Window(first - opts.rotation_window, min(last + opts.rotation_window, max(now, last)))
    try:
        client = clients.client(target.account_id, "cloudtrail", IAM_REGION)
    except AssumeRoleFailed as exc:
        out.errors.append(TargetError(target, "rotation_context", exc.code, exc.message))
        return []
    except Exception as exc:  # noqa: BLE001 - context is best effort; the alert is not
        out.errors.append(TargetError(target, "rotation_context", type(exc).__name__, str(exc)))
        return []
    gate_client(client, opts.rate_per_target)
    stats = out.per_target.setdefault(target, HuntStats())
    changes: list[KeyEvent] = []
    for name in ROTATION_EVENT_NAMES:
        try:
            changes.extend(
                fetch_events(client, ("EventName", name), window, stats, opts.throttling)
            )
        except AwsReadFailed as exc:
            out.errors.append(TargetError(target, "rotation_context", exc.code, exc.message))
            return []
    return changes


def _enrich(findings: list[Finding], clients: ClientSource, out: QueuedFindings) -> list[Finding]:
    """The target user's keys as IAM lists them now, one ListAccessKeys per (account, user)
    of the batch, as the hunt enriches; a failure leaves the finding without them."""
    keys: dict[tuple[str, str], tuple[KeyInfo, ...]] = {}
    for finding in findings:
        account, user = finding.account_id, finding.event.target_user
        if not account or not user or user == "root" or (account, user) in keys:
            continue
        target = Target(account, IAM_REGION)
        try:
            iam = clients.client(account, "iam", IAM_REGION)
            out.stats.iam_calls += 1
            keys[(account, user)] = tuple(fetch_user_keys(iam, user))
        except AwsReadFailed as exc:
            if exc.code == "NoSuchEntity":
                keys[(account, user)] = ()  # deleted since: it holds no keys now
            else:
                out.errors.append(TargetError(target, "iam", exc.code, exc.message))
        except AssumeRoleFailed as exc:
            out.errors.append(TargetError(target, "iam", exc.code, exc.message))
        except Exception as exc:  # noqa: BLE001 - enrichment is best effort by design
            out.errors.append(TargetError(target, "iam", type(exc).__name__, str(exc)))
    return [
        replace(f, user_keys=keys[(str(f.account_id), str(f.event.target_user))])
        if (str(f.account_id), str(f.event.target_user)) in keys
        else f
        for f in findings
    ]
