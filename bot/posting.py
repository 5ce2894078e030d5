"""Deliver stored findings to the channel: once each, ever, about one message a second.

Slack has no idempotency key for chat.postMessage, so "once" is built from three parts:

1. A finding is claimed in the store before it is posted and marked posted with its `ts` after,
   so two processes never post the same finding at the same time.
2. Just before the post is sent, the store records an attempt mark. Each message carries
   Slack message metadata naming its finding (`keyhunt_alert` / `{"finding": event_id}`).
3. A finding that still carries an attempt mark (its poster died after sending, or Slack's
   answer was lost: a timeout, a 5xx, a reset connection) is looked up in the channel
   (`conversations.history`, or `conversations.replies` of its burst thread, with
   `include_all_metadata`, from the attempt on) before anything is posted again, and the `ts`
   found there is adopted.

The post itself is sent without the client's connection-error and 5xx retries: those resend
blindly, and a resend after Slack accepted is a duplicate. 429s are still retried by the
client (Slack refused them: nothing landed).

Burst summaries work the same way: the burst is a row in the store, its findings are
assigned to it before the summary is posted, and the summary carries `keyhunt_burst`
metadata, so a restarted poster finds the summary and finishes the same thread.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot import metrics
from bot.render import render_alert, render_burst
from bot.slack_io import posting_client
from bot.snoozes import covering
from bot.store import FAILED, Burst, Store, StoredFinding
from checks.ratelimit import RateLimiter

if TYPE_CHECKING:
    from bot.asking import Asking

log = logging.getLogger(__name__)

BATCH = 200
# Slack allows about one message a second per channel; just under it, a burst of 200 met no
# 429 where exactly 1/s met one per post (bench/bot_burst.py).
POSTS_PER_SECOND = 0.9
# Each finding is claimed just before its own post, so the claim only has to outlive one
# chat.postMessage with its retries; a poster that dies frees its claim within a minute.
CLAIM_LEASE = timedelta(minutes=1)
ALERT_EVENT = "keyhunt_alert"
BURST_EVENT = "keyhunt_burst"
# How far before an attempt mark the channel is searched: Slack's clock and ours may differ,
# and the mark is written a moment before the post.
SEARCH_MARGIN = timedelta(minutes=10)
# An ambiguous failure is searched for and, when absent, posted again this many times in one
# cycle; after that the finding waits, still marked, for the next cycle.
POST_TRIES = 3
HISTORY_PAGE = 200
# How long alerts wait for a summary that another poster is posting.
SUMMARY_WAIT = timedelta(seconds=15)
# Slack errors after which the channel cannot be searched at all (an app installed before
# keyhunt needed channels:history, say). Then posting wins: nothing lost comes first.
UNSEARCHABLE = frozenset({"missing_scope", "not_in_channel", "channel_not_found", "not_allowed"})
TRANSPORT_ERRORS = (SlackClientError, OSError, HTTPException, ValueError)


@dataclass(frozen=True)
class DeliveryReport:
    posted: int
    failed: int
    summary_ts: str | None
    # Posts found already in the channel (an earlier attempt had landed) and adopted.
    adopted: int = 0
    # conversations.history / conversations.replies calls that looking for them cost.
    search_calls: int = 0


class SearchFailed(Exception):
    """The channel could not be searched now; try again later."""


@dataclass
class _Search:
    """What one delivery cycle learnt of the channel: metadata -> ts, per thread."""

    found: dict[tuple[str, str], str] = field(default_factory=dict)
    searched_from: dict[str | None, float] = field(default_factory=dict)
    calls: int = 0
    unsearchable: bool = False


class Poster:
    def __init__(
        self,
        store: Store,
        client: Any,
        channel: str,
        owner: str,
        burst_threshold: int = 10,
        posts_per_second: float = POSTS_PER_SECOND,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        asking: Asking | None = None,
        actions: Sequence[str] = (),
    ) -> None:
        self.store = store
        # Who is behind each finding, resolved before its post and asked after it.
        self.asking = asking
        self.actions = tuple(actions)  # the response actions turned on (their buttons)
        # Posts go without blind resends; searches (reads, safe to repeat) keep every retry.
        self.client = posting_client(client)
        self.reader = client
        self.channel = channel
        self.owner = owner
        self.burst_threshold = burst_threshold
        self.limiter = RateLimiter(posts_per_second)
        self.clock = clock
        self._bot_user: str | None = None
        self._search = _Search()

    def refresh(self, event_id: str) -> bool:
        return redraw_alert(self.store, self.client, event_id, self.clock(), self.actions)

    def deliver_pending(self) -> DeliveryReport:
        now = self.clock()
        waiting = self.store.pending(limit=BATCH, now=now)
        if not waiting:
            return DeliveryReport(0, 0, None)
        waiting = self._unsnoozed(waiting, now)
        if not waiting:
            return DeliveryReport(0, 0, None)
        self._search = _Search()
        threads = self._burst_threads(waiting, now)
        posted = failed = adopted = 0
        resolver = self.asking.resolver() if self.asking is not None else None
        for index, candidate in enumerate(waiting):
            finding = self.store.claim(candidate.event_id, self.owner, CLAIM_LEASE, self.clock())
            if finding is None:
                continue  # another process is posting it
            if self.asking is not None and resolver is not None:
                finding = self.asking.before_post(finding, resolver)
            outcome = self._deliver_one(finding, threads.get(finding.message.burst_id))
            if outcome != "failed" and self.asking is not None:
                self.asking.after_post(finding.event_id)
            if outcome == "failed":
                failed += 1
                if failed >= 3 and posted + adopted == 0:
                    # Slack is down or the channel is wrong: leave the rest for next cycle.
                    failed += len(waiting) - index - 1
                    break
            elif outcome == "adopted":
                adopted += 1
            else:
                posted += 1
        metrics.POSTS_PENDING.set(self.store.pending_count())
        summary = next(iter(threads.values()), None)
        return DeliveryReport(
            posted + adopted, failed, summary, adopted=adopted, search_calls=self._search.calls
        )

    def _unsnoozed(self, waiting: list[StoredFinding], now: datetime) -> list[StoredFinding]:
        """The waiting findings no snooze covers; the covered ones are skipped for good."""
        snoozes = self.store.active_snoozes(now)
        if not snoozes:
            return waiting
        kept = []
        for candidate in waiting:
            snooze = covering(candidate, snoozes, now)
            if snooze is not None:  # unless it is a second key (its engagement says so)
                snooze = covering(self.store.get(candidate.event_id) or candidate, snoozes, now)
            if snooze is None:
                kept.append(candidate)
            elif self.store.skip(candidate.event_id, f"snoozed ({snooze.id})"):
                metrics.SNOOZED.inc()
                log.info("%s not posted: snooze %s covers it", candidate.event_id, snooze.id)
        return kept

    # -- bursts ---------------------------------------------------------------------------
    def _burst_threads(self, waiting: list[StoredFinding], now: datetime) -> dict[str | None, Any]:
        """burst id -> the summary's ts (None: post top level), for the findings waiting."""
        burst = self.store.open_burst(self.channel)
        unassigned = [f.event_id for f in waiting if f.message.burst_id is None]
        grew = False
        if unassigned and (burst is not None or len(unassigned) > self.burst_threshold):
            # A burst still being posted (its poster died) takes what came since into its
            # thread rather than starting a second summary.
            burst, grew = self.store.join_burst(uuid.uuid4().hex, self.channel, unassigned, now)
        threads: dict[str | None, Any] = {}
        if burst is not None:
            threads[burst.id] = self._summary_ts(burst, grew)
        return threads

    def _summary_ts(self, burst: Burst, grew: bool) -> str | None:
        if burst.state == FAILED:
            return None
        findings = self.store.burst_findings(burst.id)
        text, blocks = render_burst(findings)
        if burst.ts is not None:
            if grew:
                self._refresh_summary(burst.ts, text, blocks)
            return burst.ts
        if not self.store.claim_burst(burst.id, self.owner, CLAIM_LEASE, self.clock()):
            return self._summary_of_other_poster(burst.id)
        burst = self.store.get_burst(burst.id) or burst  # the attempt mark as it is now
        key = (BURST_EVENT, burst.id)
        if burst.attempted_at is not None:
            try:
                ts = self._find(key, None, burst.attempted_at)
            except SearchFailed as exc:
                log.warning("could not look for burst summary %s: %s", burst.id, exc)
                ts = None  # post: an extra summary is noise, a missing thread is worse
            if ts is not None:
                return self._burst_posted(burst.id, ts)
        attempted = burst.attempted_at or self.clock()
        for _ in range(POST_TRIES):
            self.store.mark_burst_attempt(burst.id, self.clock())
            try:
                return self._burst_posted(burst.id, self._post(text, blocks, None, key))
            except SlackApiError as exc:
                if not _maybe_landed(exc):
                    break
            except TRANSPORT_ERRORS:
                pass
            try:
                found = self._after_ambiguous(key, None, attempted)
            except SearchFailed as exc:
                # Whether it landed is unknown: this cycle's alerts go top level and the
                # burst stays open, to be looked for again next cycle.
                log.warning("burst summary %s may have landed: %s", burst.id, exc)
                return None
            if found is not None:
                return self._burst_posted(burst.id, found)
        # Without a summary the alerts still go out, top level: better noisy than lost.
        log.warning("burst summary %s could not be posted; alerts go to the channel", burst.id)
        self.store.mark_burst_failed(burst.id)
        return None

    def _summary_of_other_poster(self, burst_id: str) -> str | None:
        """Another poster is posting this summary: its alerts wait for its ts, briefly."""
        deadline = time.monotonic() + SUMMARY_WAIT.total_seconds()
        while time.monotonic() < deadline:
            burst = self.store.get_burst(burst_id)
            if burst is None or burst.state == FAILED:
                return None
            if burst.ts is not None:
                return burst.ts
            time.sleep(0.2)
        return None  # top level rather than late: better noisy than lost

    def _burst_posted(self, burst_id: str, ts: str) -> str:
        stored = self.store.mark_burst_posted(burst_id, ts)
        return stored.ts if stored is not None and stored.ts else ts

    def _refresh_summary(self, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        try:
            self.client.chat_update(channel=self.channel, ts=ts, text=text, blocks=blocks)
        except (SlackApiError, *TRANSPORT_ERRORS) as exc:
            log.warning("could not update the burst summary: %s", _why(exc))

    # -- one alert ------------------------------------------------------------------------
    def _deliver_one(self, finding: StoredFinding, thread_ts: str | None) -> str:
        """ "posted", "adopted" (found in the channel from an earlier attempt) or "failed"."""
        key = (ALERT_EVENT, finding.event_id)
        if finding.message.attempted_at is not None:
            try:
                ts = self._find(key, finding.message.thread_ts, finding.message.attempted_at)
            except SearchFailed as exc:
                return self._failed(finding, f"could not search the channel: {exc}", True)
            if ts is not None:
                return self._adopt(finding, ts, finding.message.thread_ts)
        if finding.message.attempts:
            metrics.POSTS.labels("retried").inc()  # an earlier cycle failed to post it
        text, blocks = render_alert(finding, self.clock(), self.actions)
        attempted = finding.message.attempted_at or self.clock()
        reason = "not tried"
        for _ in range(POST_TRIES):
            self.store.mark_attempt(finding.event_id, thread_ts, self.clock())
            try:
                ts = self._post(text, blocks, thread_ts, key)
            except SlackApiError as exc:
                reason = _why(exc)
                if not _maybe_landed(exc):
                    return self._failed(finding, reason, False)
            except TRANSPORT_ERRORS as exc:
                reason = _why(exc)
            else:
                self.store.mark_posted(finding.event_id, self.channel, ts, thread_ts)
                metrics.POSTS.labels("delivered").inc()
                return "posted"
            # Slack may have accepted it before the answer was lost: look before resending.
            log.warning("post of %s may have landed (%s); looking", finding.event_id, reason)
            try:
                found = self._after_ambiguous(key, thread_ts, attempted)
            except SearchFailed as exc:
                return self._failed(finding, f"{reason}; could not search the channel: {exc}", True)
            if found is not None:
                return self._adopt(finding, found, thread_ts)
        return self._failed(finding, reason, True)

    def _post(
        self,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None,
        key: tuple[str, str],
    ) -> str:
        event_type, ident = key
        name = "finding" if event_type == ALERT_EVENT else "burst"
        self.limiter.acquire()
        response = self.client.chat_postMessage(
            channel=self.channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            # Only our own identifiers: message metadata is visible to every app in the channel.
            metadata={"event_type": event_type, "event_payload": {name: ident}},
        )
        return str(response["ts"])

    def _adopt(self, finding: StoredFinding, ts: str, thread_ts: str | None) -> str:
        log.warning("%s was already in the channel (ts %s): not posted again", finding.event_id, ts)
        self.store.mark_posted(finding.event_id, self.channel, ts, thread_ts)
        metrics.POSTS.labels("adopted").inc()
        return "adopted"

    def _failed(self, finding: StoredFinding, reason: str, maybe_posted: bool) -> str:
        log.warning("post of %s failed, will retry next cycle: %s", finding.event_id, reason)
        self.store.mark_post_failed(finding.event_id, reason, maybe_posted=maybe_posted)
        metrics.POSTS.labels("failed").inc()
        return "failed"

    # -- looking in the channel -----------------------------------------------------------
    def _after_ambiguous(
        self, key: tuple[str, str], thread_ts: str | None, since: datetime | None
    ) -> str | None:
        """Look again after a lost answer; raises SearchFailed when the channel cannot be
        read now (then whether it landed is unknown, and resending could repeat it)."""
        return self._find(key, thread_ts, since or self.clock(), fresh=True)

    def _find(
        self,
        key: tuple[str, str],
        thread_ts: str | None,
        since: datetime,
        fresh: bool = False,
    ) -> str | None:
        """The ts of our message carrying `key` in the channel (or in `thread_ts`'s thread),
        posted after `since` (less a margin). One search per thread per cycle, unless
        `fresh` asks to look again (a post may have landed since)."""
        search = self._search
        if search.unsearchable:
            return None
        oldest = (since - SEARCH_MARGIN).timestamp()
        start = search.searched_from.get(thread_ts)
        if fresh or start is None or oldest < start:
            self._scan(thread_ts, oldest)
        return search.found.get(key)

    def _scan(self, thread_ts: str | None, oldest: float) -> None:
        search = self._search
        cursor: str | None = None
        try:
            bot_user = self._own_user()
            while True:
                args: dict[str, Any] = {
                    "channel": self.channel,
                    "oldest": f"{oldest:.6f}",
                    "include_all_metadata": True,
                    "limit": HISTORY_PAGE,
                }
                if cursor:
                    args["cursor"] = cursor
                search.calls += 1
                metrics.SLACK_SEARCHES.inc()
                if thread_ts is None:
                    page = self.reader.conversations_history(**args)
                else:
                    page = self.reader.conversations_replies(ts=thread_ts, **args)
                for message in page.get("messages") or []:
                    _remember(search.found, message, bot_user)
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not page.get("has_more") or not cursor:
                    break
        except SlackApiError as exc:
            if exc.response.get("error") in UNSEARCHABLE:
                log.error(
                    "keyhunt cannot read %s (%s): after a lost Slack answer an alert may be "
                    "posted twice. Reinstall the app with the manifest's scopes "
                    "(channels:history, groups:history).",
                    self.channel,
                    exc.response.get("error"),
                )
                search.unsearchable = True
                return
            raise SearchFailed(_why(exc)) from None
        except TRANSPORT_ERRORS as exc:
            raise SearchFailed(_why(exc)) from None
        search.searched_from[thread_ts] = oldest

    def _own_user(self) -> str | None:
        """Our bot's user ID: only its messages are ours (anyone may post metadata)."""
        if self._bot_user is None:
            self._bot_user = str(self.reader.auth_test().get("user_id") or "") or None
        return self._bot_user


def redraw_alert(
    store: Store, client: Any, event_id: str, now: datetime, actions: Sequence[str]
) -> bool:
    """Re-render a posted alert in place (chat.update) after its finding changed; a finding
    not posted yet needs nothing: it is rendered as it is when it goes out. Slack failing is
    logged, never raised: the store has the change either way."""
    current = store.get(event_id)
    if current is None or not current.message.channel or not current.message.ts:
        return False
    text, blocks = render_alert(current, now, actions)
    try:
        client.chat_update(
            channel=current.message.channel, ts=current.message.ts, text=text, blocks=blocks
        )
    except (SlackApiError, SlackClientError, HTTPException, OSError) as exc:
        log.warning("could not update the alert for %s: %s", event_id, _why(exc))
        return False
    return True


def _remember(found: dict[tuple[str, str], str], message: dict[str, Any], bot: str | None) -> None:
    if bot is not None and message.get("user") != bot:
        return
    meta = message.get("metadata") or {}
    payload = meta.get("event_payload") or {}
    if not isinstance(payload, dict):
        return
    event_type = meta.get("event_type")
    ident = payload.get("finding") if event_type == ALERT_EVENT else payload.get("burst")
    if event_type in (ALERT_EVENT, BURST_EVENT) and isinstance(ident, str) and message.get("ts"):
        found.setdefault((str(event_type), ident), str(message["ts"]))


def _maybe_landed(exc: SlackApiError) -> bool:
    """A 5xx may come after Slack stored the message; a 429 or an ok:false never does."""
    return int(exc.response.status_code or 0) >= 500


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack API error: {exc.response.get('error')} (HTTP {exc.response.status_code})"
    return f"{type(exc).__name__}: {exc}"
