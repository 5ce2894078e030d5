"""APScheduler 3 jobs inside `keyhunt serve`: the lease, the poll, the daily digest.

Defaults matter here: APScheduler's `misfire_grace_time=1` silently skips a late run, so every
job coalesces, runs one instance at a time and may start late by up to a poll interval. Among
replicas exactly one holds the `poller` lease in the database; only it polls and digests. The
lease is renewed every quarter interval and lasts half of one, so a dead holder is replaced
well within two poll intervals.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.health import SchedulerState
from bot.settings import Settings
from bot.store import Store

log = logging.getLogger(__name__)

LEASE_NAME = "poller"


def replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leadership:
    def __init__(self, store: Store, holder: str, interval: timedelta) -> None:
        self.store = store
        self.holder = holder
        self.ttl = interval / 2
        self.renew_every = interval / 4
        self.leading = False

    def renew(self) -> bool:
        try:
            self.leading = self.store.acquire_lease(LEASE_NAME, self.holder, self.ttl)
        except Exception:
            log.exception("could not renew the poller lease")
            self.leading = False
        return self.leading

    def release(self) -> None:
        if self.leading:
            self.store.release_lease(LEASE_NAME, self.holder)
            self.leading = False

    @contextmanager
    def held(self, wait: timedelta, poll_every: float = 0.5) -> Iterator[bool]:
        """For `keyhunt poll --once`: take the lease `serve` takes (waiting up to `wait` for
        another poller to finish), keep it renewed while the block runs, release it after.
        Yields False when it could not be had: then another process is polling."""
        deadline = time.monotonic() + wait.total_seconds()
        # Not renew(): a database that cannot be reached is an error to report, not a sign
        # that someone else polls.
        while not self.store.acquire_lease(LEASE_NAME, self.holder, self.ttl):
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(poll_every)
        self.leading = True
        done = threading.Event()

        def keep_renewing() -> None:
            while not done.wait(max(self.renew_every.total_seconds(), 0.5)):
                self.renew()

        renewer = threading.Thread(target=keep_renewing, name="lease", daemon=True)
        renewer.start()
        try:
            yield True
        finally:
            done.set()
            renewer.join(timeout=10)
            self.leading = True  # release even if a renewal failed in between
            self.release()


def build_scheduler(
    settings: Settings,
    leadership: Leadership,
    poll: Callable[[], object],
    digest: Callable[[], object],
    state: SchedulerState,
    interval: timedelta | None = None,
    escalate: Callable[[], object] | None = None,
) -> BackgroundScheduler:
    every = interval or settings.poll_interval
    grace = max(int(every.total_seconds()), 60)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
    )

    def poll_if_leader() -> None:
        if leadership.renew():
            poll()

    def digest_if_leader() -> None:
        if leadership.renew():
            digest()

    now = datetime.now(UTC)
    scheduler.add_job(
        leadership.renew,
        IntervalTrigger(seconds=max(leadership.renew_every.total_seconds(), 1)),
        id="lease",
        next_run_time=now,
    )
    scheduler.add_job(
        poll_if_leader,
        IntervalTrigger(seconds=every.total_seconds()),
        id="poll",
        next_run_time=now + timedelta(seconds=1),
    )
    if escalate is not None:
        # Unanswered "Was this you?" questions escalate within a minute of their deadline,
        # whatever the poll interval. On every replica: the escalation is a compare-and-set,
        # so it happens once, and a replica without the lease still keeps the deadline.
        scheduler.add_job(
            escalate,
            IntervalTrigger(seconds=60),
            id="escalate",
            next_run_time=now + timedelta(seconds=30),
        )
    scheduler.add_job(
        digest_if_leader,
        CronTrigger(
            hour=settings.digest_time.hour, minute=settings.digest_time.minute, timezone=UTC
        ),
        id="digest",
        misfire_grace_time=3600,
    )

    def on_event(event: JobExecutionEvent) -> None:
        if event.exception is not None:
            state.last_error = (
                f"{event.job_id}: {type(event.exception).__name__}: {event.exception}"
            )
            log.error("scheduled job %s failed: %s", event.job_id, state.last_error)
        elif event.job_id == "poll":
            state.last_error = None

    scheduler.add_listener(on_event, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)
    state.alive = lambda: bool(scheduler.running)
    return scheduler
