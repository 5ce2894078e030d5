"""One poll cycle: read what is new since each target's checkpoint, store it, post it.

The window for a target starts at its stored checkpoint minus an overlap (CloudTrail delivers
late), or `backfill` ago on the first poll, and ends now. The checkpoint moves only after the
window's findings are stored; a target that could not be read keeps its old checkpoint, so
nothing in between is ever skipped. Findings are keyed by eventID, so overlaps never repeat.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from bot import metrics
from bot.aws import NoAccounts
from bot.containment import second_keys
from bot.hunting import AccountNotConfigured, Hunter
from bot.posting import DeliveryReport, Poster
from bot.settings import Settings
from bot.store import PollRun, Store, StoredFinding
from bot.stored import POLLED, RECONCILED
from checks.awserror import AwsReadFailed
from checks.followup import followups_of, raised_severity
from checks.hunt import activity_regions
from checks.model import FATAL_STAGES, Target, TargetError, Window
from checks.sessions import AssumeRoleFailed

log = logging.getLogger(__name__)
# How long after its creation an open key's calls are still read at every poll, and how many
# keys of one target a poll reads (the rest wait their turn at the next polls).
FOLLOW_UP_FOR = timedelta(hours=24)
FOLLOW_UPS_PER_TARGET = 5


def _in_turn(found: list[StoredFinding], turn: int) -> list[StoredFinding]:
    """FOLLOW_UPS_PER_TARGET of `found` (oldest event first), a different slice each turn."""
    if len(found) <= FOLLOW_UPS_PER_TARGET:
        return found
    start = (turn * FOLLOW_UPS_PER_TARGET) % len(found)
    return (found + found)[start : start + FOLLOW_UPS_PER_TARGET]


# What AWS or the configuration can do to a poll: logged in one line (the traceback with -v),
# since there is nothing in it for a developer. Anything else is a bug and logs its traceback.
EXPECTED_FAILURES = (
    BotoCoreError,
    ClientError,
    AwsReadFailed,
    AssumeRoleFailed,
    NoAccounts,
    AccountNotConfigured,
)


@dataclass(frozen=True)
class PollOutcome:
    new_findings: int
    failed_targets: list[str]
    delivery: DeliveryReport | None
    error: str | None = None
    targets: int = 0  # how many targets the poll planned
    errors: tuple[TargetError, ...] = ()  # why each failed target could not be read
    # CloudTrail records whose JSON could not be read (key events among them still alerted)
    unreadable: int = 0
    followed_up: int = 0  # open findings whose key has since done something that matters

    @property
    def ok(self) -> bool:
        return self.error is None


class Poller:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        hunter: Hunter,
        poster: Poster | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.hunter = hunter  # the same hunt path as /keyhunt and `keyhunt hunt`
        self.poster = poster
        self.clock = clock
        self._follow_up_turn = 0  # which slice of each target's open keys the next poll reads

    def run_once(self) -> PollOutcome:
        started = self.clock()
        try:
            outcome = self._poll(started)
        except Exception as exc:
            if isinstance(exc, EXPECTED_FAILURES):
                log.error("poll failed: %s: %s", type(exc).__name__, exc)
                log.debug("poll failed", exc_info=True)
            else:
                log.exception("poll failed")
            self.store.record_poll(
                PollRun(
                    started,
                    self.clock(),
                    ok=False,
                    complete=False,
                    new_findings=0,
                    error=f"{type(exc).__name__}: {exc}"[:500],
                )
            )
            metrics.POLLS.labels("failed").inc()
            raise
        self.store.record_poll(
            PollRun(
                started,
                self.clock(),
                ok=True,
                complete=not outcome.failed_targets,
                new_findings=outcome.new_findings,
                error=None,
                unreadable=outcome.unreadable,
            )
        )
        metrics.POLLS.labels("ok").inc()
        metrics.LAST_POLL_SUCCESS.set(self.clock().timestamp())
        return outcome

    def _poll(self, now: datetime) -> PollOutcome:
        targets = self.hunter.targets()
        new = unreadable = 0
        failed: list[TargetError] = []
        for window, group in self._windows(targets, now).items():
            stored, unread, skipped = self._hunt_group(group, window)
            new += stored
            unreadable += skipped
            failed.extend(unread)
        # New alerts go out first; then what older open keys have done since (their alerts
        # are updated in place). Findings stored by this poll wait for the next one.
        delivery = self.poster.deliver_pending() if self.poster is not None else None
        if self.poster is not None and self.poster.asking is not None:
            # Questions past their deadline escalate here too (and each minute in `serve`).
            self.poster.asking.escalate_due()
        followed = self._follow_up(now) if self.settings.follow_up else 0
        return PollOutcome(
            new,
            [str(e.target) for e in failed],
            delivery,
            unreadable=unreadable,
            targets=len(targets),
            errors=tuple(failed),
            followed_up=followed,
        )

    def _follow_up(self, now: datetime) -> int:
        """What open keys younger than FOLLOW_UP_FOR have done since: one LookupEvents by
        AccessKeyId per key (a page each) in each region its calls are looked for
        (checks.hunt.activity_regions: us-east-1, then the configured ones) of the finding's
        account, targets in parallel: a key that turns GuardDuty off or stops a trail in
        eu-west-1 is recorded there only. At most FOLLOW_UPS_PER_TARGET keys per target and
        poll, taken in turn, so a burst of new keys never makes the poll wait on its own rate
        limit (2 calls/s per target). A call that matters (checks.danger) is added to the
        finding, raises it to at least high and updates its alert in place. Best effort: a
        key that cannot be read now is read at a later poll. Returns how many findings
        changed."""
        due: dict[Target, list[StoredFinding]] = defaultdict(list)
        regions = activity_regions(self.settings.regions)
        for stored in self.store.open_findings():
            event, target = stored.finding.event, stored.finding.target
            young = now - event.event_time <= FOLLOW_UP_FOR and stored.stored_at < now
            if event.access_key_id and target and young:
                for region in regions:
                    due[Target(target.account_id, region)].append(stored)
        if not due:
            return 0
        turn, self._follow_up_turn = self._follow_up_turn, self._follow_up_turn + 1
        chosen = {target: _in_turn(found, turn) for target, found in due.items()}
        workers = min(self.settings.max_workers, len(chosen))
        with ThreadPoolExecutor(workers, thread_name_prefix="keyhunt-follow-up") as pool:
            each = pool.map(lambda i: self._follow_up_target(i[0], i[1], now), chosen.items())
            changed = set().union(*each)
        # One redraw per alert, however many of its regions added to it.
        if self.poster is not None:
            for event_id in sorted(changed):
                self.poster.refresh(event_id)
        return len(changed)

    def _follow_up_target(
        self, target: Target, found: list[StoredFinding], now: datetime
    ) -> set[str]:
        """The event IDs of `found` whose findings this target's calls added to."""
        changed: set[str] = set()
        for stored in found:
            finding = stored.finding
            key = str(finding.event.access_key_id)
            try:
                activity, stats = self.hunter.key_activity(
                    key, target, Window(finding.event.event_time, now)
                )
            except (AwsReadFailed, AssumeRoleFailed, ClientError, BotoCoreError) as exc:
                log.info("could not follow up %s: %s", stored.event_id, type(exc).__name__)
                return changed  # the target is not readable now; the next poll tries again
            metrics.LOOKUP_CALLS.labels(target.account_id, target.region).inc(stats.lookup_calls)
            metrics.LOOKUP_THROTTLES.labels(target.account_id, target.region).inc(stats.throttled)
            lines = followups_of(finding, activity)
            severity = raised_severity(finding, lines)
            if lines and self.store.add_followups(stored.event_id, lines, severity):
                changed.add(stored.event_id)
                metrics.FOLLOW_UPS.inc()
        return changed

    def _windows(self, targets: list[Target], now: datetime) -> dict[Window, list[Target]]:
        """Targets grouped by window, so targets that share a checkpoint share one hunt."""
        groups: dict[Window, list[Target]] = defaultdict(list)
        for target in targets:
            checkpoint = self.store.checkpoint(target)
            if checkpoint is None:
                start = now - self.settings.backfill
            else:
                start = min(checkpoint - self.settings.poll_overlap, now)
            groups[Window(start, now)].append(target)
        return groups

    def _hunt_group(
        self, targets: list[Target], window: Window
    ) -> tuple[int, list[TargetError], int]:
        known = self.store.event_ids_since(window.start)
        result = self.hunter.hunt_targets(targets, window, known_event_ids=known)
        # With a queue configured the poll is its reconciler: whatever it stores first is a
        # key the real-time path missed (or has not delivered yet), and is counted as such.
        source = RECONCILED if self.settings.sqs_queue_url else POLLED
        new_ids = self.store.add_findings(result.findings, source=source)
        if source == RECONCILED and new_ids:
            metrics.RECONCILED.inc(len(new_ids))
            log.warning("reconcile: %d finding(s) the queue had not delivered", len(new_ids))
        # A new key for a user whose key was just deactivated: the playbook's second key.
        second_keys(self.store, new_ids, self.clock())
        for finding in result.findings:
            if finding.event.event_id in new_ids:
                metrics.FINDINGS.labels(finding.severity.value).inc()
        for target, stats in result.per_target.items():
            metrics.LOOKUP_CALLS.labels(target.account_id, target.region).inc(stats.lookup_calls)
            metrics.LOOKUP_THROTTLES.labels(target.account_id, target.region).inc(stats.throttled)
            if stats.unreadable:
                metrics.UNREADABLE_RECORDS.labels(target.account_id, target.region).inc(
                    stats.unreadable
                )
                log.warning(
                    "%s: %d CloudTrail record(s) could not be read", target, stats.unreadable
                )
        unread = {e.target: e for e in result.errors if e.stage in FATAL_STAGES}
        stamp = self.clock()
        for target in targets:
            if target in unread:
                error = unread[target]
                self.store.target_failed(
                    target, f"{error.stage}: {error.code}: {error.message}", stamp
                )
                metrics.TARGET_FAILURES.labels(target.account_id, target.region).inc()
                log.warning("could not read %s: %s", target, error)
            else:
                self.store.target_succeeded(target, window.end, stamp)
        return len(new_ids), list(unread.values()), result.stats.unreadable
