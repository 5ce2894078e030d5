"""What /healthz, /keyhunt status and the scheduler know about keyhunt's own health.

`SchedulerState` is written by the scheduler (bot.schedule) and read by the status command;
`assess` turns it and the store's poll history into the `Health` that /healthz serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


@dataclass
class SchedulerState:
    """What /keyhunt status and /healthz know about the in-process scheduler."""

    alive: Callable[[], bool] = lambda: False
    last_error: str | None = None


@dataclass(frozen=True)
class Health:
    ok: bool
    scheduler_alive: bool
    last_poll_age_seconds: float | None
    detail: str


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
    return Health(ok, alive, age, detail)
