"""Jittered exponential backoff for reconnecting to the broker.

"Equal jitter": the n-th delay is drawn uniformly from [d/2, d] with d = min(cap, initial *
factor**n). The random half keeps a city's worth of sites from reconnecting in lock-step after a
broker restart; the fixed half keeps a single site from hammering a broker that is down.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        *,
        initial: float = 1.0,
        cap: float = 60.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial <= cap:
            raise ValueError("backoff needs 0 < initial <= cap")
        if factor < 1:
            raise ValueError("backoff factor must be at least 1")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self._rng = rng or random.SystemRandom()
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays have been handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Compare exponents rather than computing factor**attempt: it overflows after a
        # few days of retrying.
        limit = self.cap / self.initial
        grown = 1.0
        for _ in range(self._attempt):
            grown *= self.factor
            if grown >= limit:
                return self.cap
        return min(self.cap, self.initial * grown)

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        self._attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0
