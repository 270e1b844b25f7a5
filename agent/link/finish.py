"""Run a coroutine to its end even when the task awaiting it is cancelled.

The request service writes the request book in a worker thread (its commit fsyncs; the event
loop must not wait for it). Awaiting that thread is a point where the caller can be cancelled —
a delivery whose transfer is cut while it reports progress — after the book took the new state
but before its event was emitted, leaving a hole in the request's `seq` at the RTCC. A state
change and its event therefore run as one piece: `run_to_end` lets it finish (under the lock its
caller holds), then re-raises the cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """`await coro`, except that a cancellation of the caller waits for `coro` to finish and is
    raised afterwards (its result is then lost to the caller, its effects are not)."""
    task = asyncio.ensure_future(coro)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise  # the piece itself was cancelled (or the loop is closing)
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
