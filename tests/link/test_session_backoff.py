"""Reconnect backoff and the event outbox: the session's two pieces of pure logic."""

from __future__ import annotations

import random
from typing import TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.link import Backoff
from agent.link.outbox import Outbox
from agent.wire import Event, EventState


def test_backoff_doubles_with_jitter_and_is_capped_at_60_seconds() -> None:
    backoff = Backoff(rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(60.0, 2.0**n) for n in range(12)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 60.0
    assert delays[-1] >= 30.0  # reached the cap's range and stays there
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next_delay() <= 1.0


def test_backoff_jitter_spreads_sites_apart() -> None:
    firsts = {round(Backoff(rng=random.Random(seed)).next_delay(), 6) for seed in range(50)}
    assert len(firsts) > 40


@given(
    initial=st.floats(0.001, 10),
    cap=st.floats(10, 3600),
    factor=st.floats(1, 10),
    attempts=st.integers(0, 5000),
)
def test_backoff_never_exceeds_its_cap(
    initial: float, cap: float, factor: float, attempts: int
) -> None:
    backoff = Backoff(initial=initial, cap=cap, factor=factor, rng=random.Random(attempts))
    for _ in range(attempts % 50):
        backoff.next_delay()
    backoff._attempt = attempts  # days of retrying must not overflow
    delay = backoff.next_delay()
    assert 0 < delay <= cap


class BackoffOptions(TypedDict, total=False):
    initial: float
    cap: float
    factor: float


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial": 0}, "initial"),
        ({"initial": 5, "cap": 1}, "initial"),
        ({"factor": 0.5}, "factor"),
    ],
)
def test_backoff_rejects_nonsense(options: BackoffOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**options)


def event(seq: int, state: EventState = EventState.ACCEPTED) -> Event:
    extra = {"bytes_sent": seq, "bytes_total": 100} if state is EventState.PROGRESS else {}
    return Event(iss="site-1", iat=1, req="r", state=state, seq=seq, **extra)


async def test_outbox_keeps_order_until_acknowledged() -> None:
    outbox = Outbox(10)
    first, second = event(1), event(2)
    outbox.put(first)
    outbox.put(second)
    assert await outbox.head() is first
    assert await outbox.head() is first  # still there until done
    outbox.done(first)
    assert await outbox.head() is second and len(outbox) == 1


async def test_full_outbox_drops_oldest_progress_first_then_oldest() -> None:
    outbox = Outbox(3)
    accepted = event(1)
    progress = event(2, EventState.PROGRESS)
    cancelled = event(3, EventState.CANCELLED)
    for item in (accepted, progress, cancelled):
        assert outbox.put(item) is None
    assert outbox.put(event(4)) is progress
    assert outbox.put(event(5)) is accepted
    assert outbox.dropped == 2 and len(outbox) == 3
    assert await outbox.head() is cancelled


def test_outbox_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Outbox(0)
