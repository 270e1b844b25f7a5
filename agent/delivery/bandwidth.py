"""The site-wide upload bandwidth cap: one token bucket that every upload draws from.

Tokens are bytes; they accrue at the cap's rate up to `burst`. A taker that needs more than
there are waits, holding the bucket, until the deficit has been earned, so concurrent uploads
share the cap in turn (first come, first served) and together never exceed it on average.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

DEFAULT_BURST_SECONDS = 0.25


class TokenBucket:
    def __init__(
        self,
        bytes_per_second: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError("the rate must be positive")
        self.rate = float(bytes_per_second)
        self.burst = burst if burst is not None else max(1, int(self.rate * DEFAULT_BURST_SECONDS))
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    @classmethod
    def from_mbps(cls, mbps: float) -> TokenBucket:
        return cls(mbps * 1_000_000 / 8)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, nbytes: int) -> None:
        """Return once `nbytes` may be sent."""
        async with self._lock:
            self._refill()
            self._tokens -= nbytes
            if self._tokens < 0:
                await self._sleep(-self._tokens / self.rate)
                self._refill()
