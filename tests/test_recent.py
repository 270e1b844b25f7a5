"""`Recent`: the overview's footage figures are served at once while fresh enough, recomputed in
the background once stale (one computation at a time), and never computed while nobody asks."""

from __future__ import annotations

import asyncio

from agent.recent import Recent


class Sums:
    """A slow computation the test releases by hand, counting how often it runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.runs += 1
        await self.release.wait()
        return self.runs


async def test_fresh_then_stale_while_recomputing() -> None:
    now = [100.0]
    sums = Sums()
    recent = Recent(sums, fresh_for=5.0, clock=lambda: now[0])
    sums.release.set()
    assert await recent.get() == 1  # the first ask waits for the value
    now[0] += 4
    assert await recent.get() == 1 and sums.runs == 1  # fresh: no computation
    sums.release.clear()
    now[0] += 2  # stale: the old value at once, a new one computed behind it
    assert await recent.get() == 1
    assert await recent.get() == 1
    await asyncio.sleep(0)
    assert sums.runs == 2  # one computation for both asks
    sums.release.set()
    await recent.close()
    assert await recent.get() == 2


async def test_a_failed_recomputation_keeps_the_last_value() -> None:
    now = [0.0]
    calls = []

    async def compute() -> str:
        calls.append(now[0])
        if len(calls) > 1:
            raise OSError("the store is busy")
        return "first"

    recent = Recent(compute, fresh_for=1.0, clock=lambda: now[0])
    assert await recent.get() == "first"
    now[0] = 10.0
    assert await recent.get() == "first"
    await recent.close()
    assert await recent.get() == "first"
    await recent.close()
    assert len(calls) == 3  # tried again when asked again


async def test_none_is_a_value_too() -> None:
    """A camera with no recent footage has no picture: that answer is kept like any other."""
    calls = []

    async def compute() -> bytes | None:
        calls.append(1)
        return None

    recent: Recent[bytes | None] = Recent(compute, fresh_for=60.0)
    assert await recent.get() is None and await recent.get() is None
    assert len(calls) == 1
