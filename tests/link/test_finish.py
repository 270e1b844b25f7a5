"""`run_to_end`: a state change and its event are one piece, even for a cancelled caller."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agent.link.finish import run_to_end


async def test_a_cancelled_caller_waits_for_the_piece_then_is_cancelled() -> None:
    in_thread = threading.Event()
    release = threading.Event()
    done: list[str] = []

    def blocking() -> None:
        in_thread.set()
        release.wait(10)

    async def piece() -> str:
        await asyncio.to_thread(blocking)
        done.append("announced")  # what would be lost if the cancellation cut here
        return "record"

    caller = asyncio.create_task(run_to_end(piece()))
    await asyncio.to_thread(in_thread.wait, 10)
    caller.cancel()
    await asyncio.sleep(0.05)
    assert not caller.done(), "the caller ended before its piece did"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert done == ["announced"]


async def test_without_cancellation_it_is_a_plain_await() -> None:
    async def piece() -> int:
        await asyncio.sleep(0)
        return 7

    assert await run_to_end(piece()) == 7


async def test_an_error_of_the_piece_reaches_the_caller() -> None:
    async def piece() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await run_to_end(piece())
