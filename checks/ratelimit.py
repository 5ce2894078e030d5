"""A per-target client-side rate limiter: CloudTrail allows LookupEvents 2/s per account+region."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class Slot:
    """One granted call; `RateLimiter.answered` stamps it when its answer (or failure) is in."""

    __slots__ = ("answered_at",)

    def __init__(self) -> None:
        self.answered_at: float | None = None


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart. Thread-safe; one instance per target.

    A strict spacing (no bursts) keeps every one-second window at or under `rate` calls,
    including botocore's own retries, which go through the same gate (see cloudtrail.py).

    With `window_seconds`, it also holds a call until the call `rate` grants before it was
    answered at least that long ago. A spacing alone is kept on this clock, not CloudTrail's:
    a call granted on time can leave (and arrive) late when its thread is descheduled, and
    the next one then lands in the same second as the one before it. An answer comes after
    its request arrived, so counting from the answer holds at CloudTrail's end whatever the
    delays on the way: it costs the latency once per `rate` calls (0.6 s a call instead of
    0.5 at 200 ms), not a fixed margin guessed in advance. Callers then pass each slot
    `acquire` returns to `answered`.
    """

    def __init__(
        self,
        rate_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window_seconds: float | None = None,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = 0.0
        self._window = window_seconds
        # the last floor(rate) grants, oldest first (at least one)
        self._recent: deque[Slot] = deque(maxlen=max(1, math.floor(rate_per_second)))

    def acquire(self) -> Slot:
        """Block until a call may go out; returns its slot.

        The slot is granted only when the clock has reached it, never booked ahead: a sleep
        that returns late then pushes the next call back instead of letting it bunch up.
        """
        while True:
            with self._lock:
                now = self._clock()
                wait = max(0.0, self._next_free - now, self._window_wait(now))
                if wait == 0.0:
                    self._next_free = now + self.interval
                    slot = Slot()
                    self._recent.append(slot)
                    return slot
            self._sleep(wait)

    def answered(self, slot: Slot) -> None:
        with self._lock:
            slot.answered_at = self._clock()

    def _window_wait(self, now: float) -> float:
        if self._window is None or len(self._recent) < (self._recent.maxlen or 1):
            return 0.0
        oldest = self._recent[0].answered_at
        if oldest is None:  # still in flight (another thread's call): look again shortly
            return self.interval / 4
        return max(0.0, oldest + self._window - now)
