"""The daily digest: yesterday's keys by severity and status, what still waits, poller health."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.render import render_digest
from bot.store import Store


def post_digest(store: Store, client: Any, channel: str, poll_minutes: int, now: datetime) -> str:
    day_start = now - timedelta(hours=24)
    text, blocks = render_digest(
        store.findings_between(day_start, now),
        store.open_findings(),
        store.poll_runs_since(day_start),
        poll_minutes,
        now,
        store.target_health(),
    )
    response = client.chat_postMessage(
        channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
    )
    return str(response["ts"])
