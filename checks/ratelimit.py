"""A per-target client-side rate limiter: CloudTrail allows LookupEvents 2/s per account+region."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart. Thread-safe; one instance per target.

    A strict spacing (no bursts) keeps every one-second window at or under `rate` calls,
    including botocore's own retries, which go through the same gate (see cloudtrail.py).
    """

    def __init__(
        self,
        rate_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = 0.0

    def acquire(self) -> float:
        """Block until a call may go out; returns the seconds waited.

        The slot is granted only when the clock has reached it, never booked ahead: a sleep
        that returns late then pushes the next call back instead of letting it bunch up.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                if now >= self._next_free:
                    self._next_free = now + self.interval
                    return waited
                wait = self._next_free - now
            self._sleep(wait)
            waited += wait
