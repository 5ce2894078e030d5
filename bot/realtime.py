"""The real-time path: CreateAccessKey events from an SQS queue that EventBridge fills.

One receive cycle: long-poll up to 10 messages; read each EventBridge envelope
(checks.eventbridge); classify the usable ones as the hunt does (checks.realtime: the same
rules, the rotation context read from LookupEvents); store them (`source=queue`); delete
those messages; post what is pending (bot.posting). Delivery is at least once, so:

- a message is deleted only after its finding is stored: a crash before the delete means the
  message comes back, never that a key is lost;
- a redelivered or duplicated event is stored once (the store keys findings by eventID) and
  posted once (the poster's claims), and its message is deleted like any other;
- a message that cannot be used (not JSON, not an EventBridge CloudTrail event, not
  CreateAccessKey) is counted and left alone: the queue's redrive policy moves it to the
  dead-letter queue after `maxReceiveCount` receives, where a person can read it. keyhunt
  never deletes what it could not read. It never holds up the rest of its batch.

Every replica consumes (not only the poller lease holder): SQS hands each message to one
receiver at a time, the store and the claims make a second receipt harmless, and a replica
dying leaves no real-time gap while the lease moves (see README, "Real time").
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot import metrics
from bot.aws import hunt_options
from bot.containment import second_keys
from bot.health import QueueState
from bot.hunting import Hunter
from bot.posting import DeliveryReport, Poster
from bot.settings import Settings
from bot.store import Store
from bot.stored import QUEUED
from checks.awserror import error_of
from checks.cloudtrail import Throttling
from checks.eventbridge import IAM_REGION, PoisonMessage, QueuedEvent, read_message
from checks.realtime import classify_queued
from checks.sessions import CLIENT_CONFIG

log = logging.getLogger(__name__)

BATCH = 10  # SQS's most per ReceiveMessage
# How long a received message stays hidden from other receivers: longer than a cycle takes
# (the rotation context is bounded by QUEUE_THROTTLE_DEADLINE per call), short enough that a
# crashed receiver's messages come back within minutes.
VISIBILITY_TIMEOUT = timedelta(minutes=2)
QUEUE_THROTTLE_DEADLINE = 30.0  # seconds a throttled rotation-context read may keep trying
STOP_WAIT = 5.0  # seconds `stop` waits for a receive in flight (its messages come back anyway)
MAX_BACKOFF = 60.0
_QUEUE_HOST = re.compile(r"^https?://(?:sqs[.-]([a-z]{2}(?:-[a-z]+)+-\d{1,2})|queue)\.amazonaws")


def queue_region(url: str) -> str:
    """The region in a queue URL (sqs.<region>.amazonaws.com; the legacy queue.amazonaws.com
    is us-east-1); us-east-1, where IAM's events and the central bus live, for any other
    host (a VPC endpoint, or AWS_ENDPOINT_URL pointing elsewhere)."""
    match = _QUEUE_HOST.match(url)
    return (match.group(1) or IAM_REGION) if match else IAM_REGION


def queue_client_config(wait_seconds: int) -> Config:
    """The product's client config, with a read timeout beyond the long poll's wait."""
    return CLIENT_CONFIG.merge(Config(read_timeout=wait_seconds + 10))


@dataclass(frozen=True)
class CycleReport:
    received: int = 0
    stored: int = 0  # new findings
    duplicates: int = 0  # already stored (a redelivery, the poll first, or twice in a batch)
    poison: int = 0  # left for the dead-letter queue
    delivery: DeliveryReport | None = None


class QueueConsumer:
    """Receives, stores and posts; `start` runs it on a thread of its own until `stop`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hunter: Hunter,
        poster: Poster | None,
        sqs: Any,
        *,
        visibility_timeout: timedelta | None = None,  # None: VISIBILITY_TIMEOUT
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.url = settings.sqs_queue_url
        self.store = store
        self.hunter = hunter  # its sessions read the rotation context; its names the accounts
        self.poster = poster
        self.sqs = sqs
        hidden = visibility_timeout or VISIBILITY_TIMEOUT
        self.visibility = max(1, int(hidden.total_seconds()))
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # What /healthz and /keyhunt status say of this replica's real-time path.
        self.state = QueueState(running=lambda: self.running)

    # -- one cycle ----------------------------------------------------------------------
    def receive_once(self, wait_seconds: int | None = None) -> CycleReport:
        """One receive cycle. Raises when SQS or the store fails (nothing is deleted then)."""
        wait = self.settings.queue_wait_seconds if wait_seconds is None else wait_seconds
        try:
            answer = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.visibility,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except (ClientError, BotoCoreError):
            metrics.QUEUE_ERRORS.labels("receive").inc()
            raise
        received_at = self.clock()
        metrics.LAST_QUEUE_RECEIVE.set(received_at.timestamp())
        self.state.last_receive = received_at
        messages: list[dict[str, Any]] = list(answer.get("Messages") or [])
        if not messages:
            return CycleReport()
        usable: list[tuple[dict[str, Any], QueuedEvent]] = []
        now = self.clock()
        for message in messages:
            try:
                usable.append((message, read_message(message.get("Body"), read_at=now)))
            except PoisonMessage as exc:
                metrics.QUEUE_MESSAGES.labels("poison").inc()
                received = (message.get("Attributes") or {}).get("ApproximateReceiveCount")
                # The ID and the reason only: the body is whatever the sender chose.
                log.warning(
                    "queue message %r is unusable (received %s times; the redrive policy "
                    "moves it to the dead-letter queue): %s",
                    message.get("MessageId"),
                    received,
                    exc,
                )
        poison = len(messages) - len(usable)
        if not usable:
            return CycleReport(received=len(messages), poison=poison)
        new_ids = self._store([q for _, q in usable])
        self._delete([m for m, _ in usable])
        stored = len(new_ids)
        metrics.QUEUE_MESSAGES.labels("stored").inc(stored)
        metrics.QUEUE_MESSAGES.labels("duplicate").inc(len(usable) - stored)
        # Posted in this cycle, duplicates included: a redelivery after a crash between the
        # store and the delete finds its finding still pending, and posts it now.
        delivery = self.poster.deliver_pending() if self.poster is not None else None
        return CycleReport(len(messages), stored, len(usable) - stored, poison, delivery)

    def _store(self, queued: list[QueuedEvent]) -> list[str]:
        """Classified as the hunt does, stored; the new event IDs. Raises when the store
        fails: then nothing is deleted and every message comes back."""
        opts = replace(
            hunt_options(self.settings),
            throttling=Throttling(
                deadline_seconds=min(
                    self.settings.throttle_deadline_seconds, QUEUE_THROTTLE_DEADLINE
                )
            ),
        )
        result = classify_queued(queued, self.hunter.sessions, opts)
        for error in result.errors:
            log.info("queued finding context incomplete: %s", error)
        for target, stats in result.per_target.items():
            metrics.LOOKUP_CALLS.labels(target.account_id, target.region).inc(stats.lookup_calls)
            metrics.LOOKUP_THROTTLES.labels(target.account_id, target.region).inc(stats.throttled)
        # One finding per event even when a batch holds the same event twice.
        unique = list({f.event.event_id: f for f in reversed(result.findings)}.values())[::-1]
        findings = self.hunter.named(unique)
        try:
            new_ids = self.store.add_findings(findings, source=QUEUED)
        except Exception:
            metrics.QUEUE_ERRORS.labels("store").inc()
            raise
        for finding in findings:
            if finding.event.event_id in new_ids:
                metrics.FINDINGS.labels(finding.severity.value).inc()
        # As in the poll: a new key for a user whose key was just deactivated.
        second_keys(self.store, new_ids, self.clock())
        return new_ids

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        """Delete stored messages; one that fails comes back and is a duplicate then."""
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        try:
            answer = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            metrics.QUEUE_ERRORS.labels("delete").inc()
            log.warning("could not delete %d stored message(s): %s", len(entries), exc)
            return
        for failed in answer.get("Failed") or []:
            metrics.QUEUE_ERRORS.labels("delete").inc()
            log.warning("could not delete a stored message: %s", failed.get("Code"))

    # -- the thread -----------------------------------------------------------------------
    def start(self) -> QueueConsumer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="keyhunt-queue", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Ask the loop to stop and wait briefly. A receive still waiting is left: whatever
        it was handed stays in the queue and comes back after the visibility timeout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.info("queue receive still in flight at stop; its messages come back")
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.cycle():
                self._stop.wait(min(MAX_BACKOFF, 2.0**self.state.failures))

    def cycle(self) -> bool:
        """One receive cycle that never raises: False, counted in `state`, when it failed."""
        try:
            self.receive_once()
        except (ClientError, BotoCoreError) as exc:
            self._failed(error_of(exc)[0] if isinstance(exc, ClientError) else None, exc)
            log.error("queue receive failed: %s: %s", type(exc).__name__, exc)
            return False
        except Exception as exc:
            self._failed(None, exc)
            log.exception("queue cycle failed; its messages come back")
            return False
        self.state.failures, self.state.last_error = 0, None
        return True

    def _failed(self, code: str | None, exc: Exception) -> None:
        # The code or the exception's type only: the message may quote a URL or a request.
        self.state.failures += 1
        self.state.last_error = str(code or type(exc).__name__)[:100]


def consumer_poster(poster: Poster | None, owner: str) -> Poster | None:
    """The poller's poster for the queue thread: the same collaborators and the same rate
    limiter (both threads share the channel's ~1 post/s), its own per-cycle state, and an
    owner of its own, since a burst summary's claim is per owner."""
    if poster is None:
        return None
    twin = copy.copy(poster)
    twin.owner = f"{owner}-queue"
    twin._search = type(poster._search)()
    return twin
