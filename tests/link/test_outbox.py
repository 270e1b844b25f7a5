"""The outbox on disk: events the broker has not acknowledged survive an agent restart."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from agent.identity import DeviceKey, verify_device_jws
from agent.link.outbox import Outbox
from agent.wire import Event, EventState, Topics
from tests.link.test_session import make_agent
from tests.support.broker import (
    MosquittoBroker,
    next_message,
    private_broker,  # noqa: F401 - pytest fixture
)


def event(seq: int, state: EventState = EventState.ACCEPTED) -> Event:
    extra = {"bytes_sent": seq, "bytes_total": 10} if state is EventState.PROGRESS else {}
    return Event(iss="site-1", iat=1_800_000_000, req="r", state=state, seq=seq, **extra)


async def test_pending_events_are_restored_in_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(10, path=path)
    for seq in (1, 2, 3):
        box.put(event(seq))
    box.done(await box.head())  # seq 1 acknowledged
    box.close()

    reopened = Outbox(10, path=path)
    assert len(reopened) == 2
    first = await reopened.head()
    assert first.seq == 2 and first == event(2)
    reopened.done(first)
    assert (await reopened.head()).seq == 3
    reopened.close()
    assert len(Outbox(10, path=path)) == 1


async def test_eviction_is_persisted_too(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(2, path=path)
    box.put(event(1))
    box.put(event(2, EventState.PROGRESS))
    evicted = box.put(event(3))
    assert evicted is not None and evicted.seq == 2  # progress goes first
    box.close()
    restored = Outbox(2, path=path)
    assert [(await restored.head()).seq, len(restored)] == [1, 2]


async def test_an_unreadable_row_is_dropped_not_blocking(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox(5, path=path).put(event(1))
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO outbox (event) VALUES ('{not json')")
    box = Outbox(5, path=path)
    box.put(event(2))
    assert len(box) == 2 and (await box.head()).seq == 1


async def test_events_queued_while_offline_survive_a_crash(
    private_broker: MosquittoBroker,  # noqa: F811
    tmp_path: Path,
) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    topics = Topics(site)
    key = DeviceKey.generate()
    path = tmp_path / "outbox.db"
    hub_id = f"hub-{uuid.uuid4().hex[:6]}"
    async with private_broker.client(identifier=hub_id, clean_session=False) as hub:
        await hub.subscribe(topics.evt, qos=1)

    first = make_agent(private_broker, site, key=key, outbox_path=path)
    await first.session.start()
    await first.session.wait_connected()
    private_broker.stop()
    await first.session.wait_disconnected()
    for seq in (1, 2):
        await first.session.emit(
            Event(iss=site, iat=1_800_000_000, req="r", state=EventState.ACCEPTED, seq=seq)
        )
    # The agent dies without a chance to send anything: its task is cancelled outright.
    task = first.session._task
    assert task is not None
    task.cancel()
    private_broker.start()

    second = make_agent(private_broker, site, key=key, outbox_path=path)
    async with second.session as session:
        await session.wait_connected()
        async with private_broker.client(identifier=hub_id, clean_session=False) as hub:
            seqs = []
            for _ in range(2):
                message = await next_message(hub)
                claims = verify_device_jws(bytes(message.payload).decode(), key.public_jwk)
                seqs.append(claims["seq"])
    assert seqs == [1, 2]
