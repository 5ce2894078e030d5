"""The daily digest: yesterday's keys by severity and status, what still waits, poller health."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.render import render_digest
from bot.store import Store
from bot.stored import RECONCILED


def post_digest(
    store: Store,
    client: Any,
    channel: str,
    poll_minutes: int,
    now: datetime,
    names: Callable[[Iterable[str]], Mapping[str, str]] = lambda _: {},
    realtime: bool = False,
) -> str:
    """`realtime`: an SQS queue is configured, so the digest says how many keys only the
    poll (the reconciler) brought in."""
    day_start = now - timedelta(hours=24)
    health = store.target_health()
    reconciled = store.arrivals_between(day_start, now).get(RECONCILED, 0) if realtime else None
    text, blocks = render_digest(
        store.findings_between(day_start, now),
        store.open_findings(),
        store.poll_runs_since(day_start),
        poll_minutes,
        now,
        health,
        names=names(h.account_id for h in health if h.consecutive_failures),
        reconciled=reconciled,
        expired=store.expired_snoozes(day_start, now),
    )
    response = client.chat_postMessage(
        channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
    )
    return str(response["ts"])
