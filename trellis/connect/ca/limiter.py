"""Back-pressure on the signing path: CSRMaxPerSecond and CSRMaxConcurrent.

Rules (Consul's server-side CSR limits):
1. ``CSRMaxConcurrent`` > 0: at most that many signings at once; a request waits up
   to ``CONCURRENCY_WAIT`` for a slot, then is refused. ``CSRMaxPerSecond`` is then
   not applied (as Consul).
2. Otherwise ``CSRMaxPerSecond`` > 0: a token bucket refilled at that rate, holding at
   most ``max(1, rate)`` tokens; a request with no token is refused at once.
3. Both 0: no limit.
4. A refusal is ``RateLimited`` carrying how long until a retry can succeed
   (HTTP 429 with Retry-After at the edge).

The clock is passed in (monotonic seconds), so the bucket is tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from trellis.connect.ca.errors import RateLimited

CONCURRENCY_WAIT = 0.5  # seconds (Consul's csrSemaphoreWait)


class TokenBucket:
    """Pure arithmetic over an injected clock; not thread-safe (one event loop)."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self._clock = clock
        self._last = clock()

    def take(self) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class CSRLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._settings: tuple[float, int] = (0.0, 0)
        self._bucket: TokenBucket | None = None
        self._slots: asyncio.Semaphore | None = None

    def configure(self, per_second: float, concurrent: int) -> None:
        """Apply the CA configuration's limits (kept when unchanged)."""
        if (per_second, concurrent) == self._settings:
            return
        self._settings = (per_second, concurrent)
        self._slots = asyncio.Semaphore(concurrent) if concurrent > 0 else None
        self._bucket = TokenBucket(per_second, self._clock) if per_second > 0 and concurrent <= 0 else None

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a signing slot for the body; raises RateLimited when over the limit."""
        slots = self._slots
        if slots is not None:
            try:
                async with asyncio.timeout(CONCURRENCY_WAIT):
                    await slots.acquire()
            except TimeoutError:
                raise RateLimited(1.0, f"{self._settings[1]} signings already in progress "
                                       "(CSRMaxConcurrent)") from None
            try:
                yield
            finally:
                slots.release()
            return
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                raise RateLimited(wait, f"more than {self._settings[0]:g} signings per second (CSRMaxPerSecond)")
        yield
