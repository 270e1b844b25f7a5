"""A value that is slow to compute and changes slowly (the footage each camera holds, summed over
every segment of the store): asked for, it is given at once while it is fresh enough, and
recomputed in the background once it is not, one computation at a time. Nothing runs while
nobody asks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(
        self,
        compute: Callable[[], Awaitable[T]],
        *,
        fresh_for: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._fresh_for = fresh_for
        self._clock = clock
        self._value: tuple[T] | None = None  # (value,) once computed: None may be a value
        self._at = 0.0  # when it was computed
        self._task: asyncio.Task[None] | None = None

    @property
    def value(self) -> T | None:
        """The last value computed (None before the first), without computing anything."""
        return self._value[0] if self._value is not None else None

    async def refresh(self) -> T:
        """Compute it now and wait for it."""
        value = await self._compute()
        self._value, self._at = (value,), self._clock()
        return value

    async def get(self) -> T:
        """The value: computed now the first time, then the last one computed, with a new
        computation started in the background when it is older than `fresh_for`."""
        if self._value is None:
            return await self.refresh()
        stale = self._clock() - self._at > self._fresh_for
        if stale and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._background())
        return self._value[0]

    async def _background(self) -> None:
        with contextlib.suppress(Exception):  # the next ask tries again; the old value stands
            await self.refresh()

    async def close(self) -> None:
        """Wait for a computation in progress (what it reads may close after this)."""
        if self._task is not None:
            await self._task
            self._task = None
