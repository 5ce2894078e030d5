"""What /healthz, /keyhunt status and the scheduler know about keyhunt's own health.

`SchedulerState` is written by the scheduler (bot.schedule) and read by the status command;
`assess` turns it and the store's poll history into the `Health` that /healthz serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

# Receives failed in a row before /healthz says the real-time path is down (one or two are
# a blip SQS recovers from; the consumer backs off 2, 4, 8 s between them).
QUEUE_FAILURES_UNHEALTHY = 3


@dataclass
class QueueState:
    """What this replica's SQS consumer (bot.realtime) says of itself. Per replica: every
    replica consumes, so each one's /healthz speaks for its own consumer."""

    running: Callable[[], bool] = lambda: False
    last_receive: datetime | None = None  # when SQS last answered a receive
    failures: int = 0  # cycles failed in a row
    last_error: str | None = None  # the last failure's AWS error code, or its type


@dataclass
class SchedulerState:
    """What /keyhunt status and /healthz know about the in-process scheduler, and about the
    queue consumer when KEYHUNT_SQS_QUEUE_URL is set (`queue` is None otherwise)."""

    alive: Callable[[], bool] = lambda: False
    last_error: str | None = None
    queue: QueueState | None = None


@dataclass(frozen=True)
class Health:
    ok: bool
    scheduler_alive: bool
    last_poll_age_seconds: float | None
    detail: str
    queue: QueueHealth | None = None  # None: no queue configured


@dataclass(frozen=True)
class QueueHealth:
    ok: bool
    running: bool
    last_receive_age_seconds: float | None
    consecutive_failures: int
    last_error: str | None  # an AWS error code or an exception's type, never its message


class _TargetState(Protocol):
    @property
    def consecutive_failures(self) -> int: ...


class PollHistory(Protocol):
    """What health needs from the store."""

    def last_successful_poll(self) -> datetime | None: ...

    def target_health(self) -> Sequence[_TargetState]: ...


def poll_age(last_success: datetime | None, now: datetime | None = None) -> float | None:
    if last_success is None:
        return None
    return ((now or datetime.now(UTC)) - last_success).total_seconds()


def assess(
    store: PollHistory,
    poll_interval: timedelta,
    state: SchedulerState,
    now: datetime | None = None,
) -> Health:
    """Healthy: the scheduler runs, the last successful poll (by any replica: the store is
    shared) is at most three intervals and two minutes old, and some target can be read."""
    age = poll_age(store.last_successful_poll(), now)
    alive = state.alive()
    limit = 3 * poll_interval.total_seconds() + 120
    fresh = age is not None and age <= limit
    targets = store.target_health()
    all_failing = bool(targets) and all(t.consecutive_failures for t in targets)
    ok = alive and (fresh or age is None) and not all_failing
    if not alive:
        detail = "scheduler stopped"
    elif all_failing:
        detail = "no account or region could be read in the last poll"
    else:
        detail = "ok" if ok else "last successful poll too old"
    queue = assess_queue(state.queue, now)
    if queue is None or queue.ok:
        return Health(ok, alive, age, detail, queue)
    why = (
        "queue consumer stopped"
        if not queue.running
        else f"queue receive failing ({queue.consecutive_failures} in a row: "
        f"{queue.last_error or 'unknown'})"
    )
    return Health(False, alive, age, why if ok else f"{detail}; {why}", queue)


def assess_queue(state: QueueState | None, now: datetime | None = None) -> QueueHealth | None:
    """Healthy: the consumer's thread runs and its receives are not failing in a row. None
    without a queue."""
    if state is None:
        return None
    running = state.running()
    ok = running and state.failures < QUEUE_FAILURES_UNHEALTHY
    age = poll_age(state.last_receive, now)
    return QueueHealth(ok, running, age, state.failures, state.last_error)
