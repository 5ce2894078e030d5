"""Run the real `keyhunt` CLI and SIGKILL it at a chosen step of delivering alerts.

    KEYHUNT_CRASH_AT=after_accept:3 python -m tests.crashpoint poll --once

Steps, counted over the process's chat.postMessage calls (burst summary included, in the
order they are made) or over the store's records of a post:
- `before_post:N`  the Nth post is claimed and marked as attempted, and never sent;
- `after_accept:N` Slack accepted the Nth post; the process dies before reading on;
- `after_mark:N`   the store recorded the Nth post (alert or summary), then the process dies;
- `after_queue_store:N` the queue consumer (bot.realtime) stored its Nth batch of findings
  and dies before deleting its messages. `QUEUE_VISIBILITY_SECONDS` shortens how long the
  received messages stay hidden, so they come back within a test's patience.

No hook lives in the product: the patches are installed here, around the real methods, in
the process that then runs `bot.cli.main` as the `keyhunt` script does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

STEPS = ("before_post", "after_accept", "after_mark", "after_queue_store")
REPO = Path(__file__).resolve().parent.parent


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _counting(original: Callable[..., Any], nth: int, before: bool) -> Callable[..., Any]:
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if before and calls[0] == nth:
            _die()
        result = original(*args, **kwargs)
        if not before and calls[0] == nth:
            _die()
        return result

    return wrapper


def install(spec: str) -> None:
    step, _, count = spec.partition(":")
    if step not in STEPS or not count.isdigit() or int(count) < 1:
        raise SystemExit(f"KEYHUNT_CRASH_AT must be STEP:N with STEP in {STEPS}, got {spec!r}")
    nth = int(count)
    if step == "after_queue_store":
        from bot import realtime

        realtime.QueueConsumer._store = _counting(  # type: ignore[method-assign]
            realtime.QueueConsumer._store, nth, before=False
        )
        return
    if step in ("before_post", "after_accept"):
        from slack_sdk import WebClient

        WebClient.chat_postMessage = _counting(  # type: ignore[method-assign]
            WebClient.chat_postMessage, nth, before=step == "before_post"
        )
        return
    from bot.store import Store

    # Alerts and summaries are recorded by two methods; one count over both, in call order.
    calls = [0]
    for name in ("mark_posted", "mark_burst_posted"):
        original = getattr(Store, name, None)
        if original is None:
            continue  # a keyhunt without burst rows (the bench measures older versions too)

        def recorded(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            result = _original(*args, **kwargs)
            calls[0] += 1
            if calls[0] == nth:
                _die()
            return result

        setattr(Store, name, recorded)


# ---------------------------------------------------------------- for tests and the bench


def poll_env(
    aws: Any, slack_api_url: str, database_url: str, tmp_path: Path, **extra: str | None
) -> dict[str, str]:
    """The environment of a `keyhunt poll --once` posting a burst quickly to the fake Slack."""
    from tests.conftest import keyhunt_env
    from tests.slackbot import BOT_TOKEN, CHANNEL

    return keyhunt_env(
        aws,
        tmp_path,
        KEYHUNT_DATABASE_URL=database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_API_URL=slack_api_url,
        KEYHUNT_CHANNEL=CHANNEL,
        KEYHUNT_BURST_THRESHOLD="10",
        KEYHUNT_POSTS_PER_SECOND="50",
        KEYHUNT_ENRICH="false",
        # slack_sdk reads HTTP(S)_PROXY but ignores NO_PROXY: keyhunt_env's dead proxy would
        # swallow every Slack call of the subprocess (boto3 honours NO_PROXY).
        HTTP_PROXY=None,
        HTTPS_PROXY=None,
        **extra,
    )


def run_poll(
    env: dict[str, str], cwd: Path, crash_at: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`keyhunt poll --once` in its own process, killed at `crash_at` when given."""
    extra = {"PYTHONPATH": str(REPO)}
    if crash_at:
        extra["KEYHUNT_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "tests.crashpoint", "poll", "--once"],
        env={**env, **extra},
        cwd=cwd,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def expire_dead_poller(database_url: str) -> None:
    """The killed poller's lease and claims run out. In production that is a minute or two of
    waiting; here their expiry is moved into the past."""
    from sqlalchemy import update

    from bot import store as schema

    past = datetime.now(UTC) - timedelta(seconds=1)
    store = schema.Store(database_url)
    # bursts: absent from keyhunt before schema 2, which the bench measures too
    claimed = [t for t in (schema.findings_table, getattr(schema, "bursts", None)) if t is not None]
    try:
        with store.engine.begin() as conn:
            conn.execute(update(schema.leases).values(expires_at=past))
            for table in claimed:
                conn.execute(
                    update(table)
                    .where(table.c.claimed_until.is_not(None))
                    .values(claimed_until=past)
                )
    finally:
        store.close()


def alerts_in_channel(slack: Any, channel: str) -> Counter[str]:
    """How many messages in the channel (threads included) carry each event's alert."""
    from tests.slackbot import events_in

    seen: Counter[str] = Counter()
    for message in slack.channel_messages(channel):
        seen.update(events_in(message.blocks))
    return seen


def main() -> int:
    spec = os.environ.get("KEYHUNT_CRASH_AT")
    if spec:
        install(spec)
    hidden = os.environ.get("QUEUE_VISIBILITY_SECONDS")
    if hidden:
        from bot import realtime

        realtime.VISIBILITY_TIMEOUT = timedelta(seconds=int(hidden))
    from bot.cli import main as keyhunt

    return keyhunt(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
