"""Deliver stored findings to the channel: once each, about one message a second, retried.

A finding is claimed in the store before it is posted and marked posted with its `ts` after,
so a crash, a second process or a Slack outage never posts twice or loses a post: what is not
marked posted stays pending and the next cycle (of any process) tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot import metrics
from bot.render import render_alert, render_burst
from bot.store import Store, StoredFinding
from checks.ratelimit import RateLimiter

log = logging.getLogger(__name__)

BATCH = 200
# Slack allows about one message a second per channel; just under it, a burst of 200 met no
# 429 where exactly 1/s met one per post (bench/bot_burst.py).
POSTS_PER_SECOND = 0.9
# Each finding is claimed just before its own post, so the claim only has to outlive one
# chat.postMessage with its retries; a poster that dies frees its claim within a minute.
CLAIM_LEASE = timedelta(minutes=1)


@dataclass(frozen=True)
class DeliveryReport:
    posted: int
    failed: int
    summary_ts: str | None


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
    ) -> None:
        self.store = store
        self.client = client
        self.channel = channel
        self.owner = owner
        self.burst_threshold = burst_threshold
        self.limiter = RateLimiter(posts_per_second)
        self.clock = clock

    def deliver_pending(self) -> DeliveryReport:
        waiting = self.store.pending(limit=BATCH)
        if not waiting:
            return DeliveryReport(0, 0, None)
        thread_ts = self._post_summary(waiting) if len(waiting) > self.burst_threshold else None
        posted = failed = 0
        for index, finding in enumerate(waiting):
            if not self.store.claim(finding.event_id, self.owner, CLAIM_LEASE):
                continue  # another process is posting it
            if self._post_one(finding, thread_ts):
                posted += 1
            else:
                failed += 1
                if failed >= 3 and posted == 0:
                    # Slack is down or the channel is wrong: leave the rest for next cycle.
                    failed += len(waiting) - index - 1
                    break
        metrics.POSTS_PENDING.set(self.store.pending_count())
        return DeliveryReport(posted, failed, thread_ts)

    def _post_summary(self, findings: list[StoredFinding]) -> str | None:
        text, blocks = render_burst(findings)
        try:
            self.limiter.acquire()
            response = self.client.chat_postMessage(
                channel=self.channel,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
            return str(response["ts"])
        except (SlackApiError, SlackClientError, OSError) as exc:
            # Without a summary the alerts still go out, top level: better noisy than lost.
            log.warning("burst summary failed, posting alerts individually: %s", _why(exc))
            return None

    def _post_one(self, finding: StoredFinding, thread_ts: str | None) -> bool:
        text, blocks = render_alert(finding, self.clock())
        if finding.post_attempts:
            metrics.POSTS.labels("retried").inc()  # an earlier cycle failed to post it
        try:
            self.limiter.acquire()
            response = self.client.chat_postMessage(
                channel=self.channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            reason = _why(exc)
            log.warning("post of %s failed, will retry next cycle: %s", finding.event_id, reason)
            self.store.mark_post_failed(finding.event_id, reason)
            metrics.POSTS.labels("failed").inc()
            return False
        self.store.mark_posted(
            finding.event_id,
            str(response.get("channel") or self.channel),
            str(response["ts"]),
            thread_ts,
        )
        metrics.POSTS.labels("delivered").inc()
        return True


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack API error: {exc.response.get('error')} (HTTP {exc.response.status_code})"
    return f"{type(exc).__name__}: {exc}"
