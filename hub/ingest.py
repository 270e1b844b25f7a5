"""The MQTT event ingestion of `rtcc-hub serve`: every site's events, status and registry,
checked against the site's registered key, into the database.

One connection, kept up forever (jittered backoff, like the agent's; with a clustered broker
it moves on to the next node after each lost connection or failed attempt), with a persistent
session (`identifier`) so that events sent while the hub was down are delivered when it is
back. Several hub processes may ingest from one broker into one database: each needs its own
identifier, and events are stored once (`hub.events`).

Per message:

- registry / status → `hub.registry.record_presence` (the map, the fleet page);
- event → `hub.events.record_event`; the process that stored it first also registers and
  verifies a delivered clip or snapshot (`hub.evidence.receive`);
- anything that does not verify is logged and counted, never believed.

The same connection publishes what the console sends (`publish`), so the console needs no
second connection; when it is down, `publish` raises `HubConnectionError` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import structlog

from agent.link.backoff import Backoff
from agent.wire import EventState, Topics
from hub import evidence
from hub.core import Hub
from hub.events import record_event
from hub.mqtt import HubConnectionError, hub_client, retained
from hub.registry import recheck_sites, record_presence
from hub.state import BrokerConfig
from hub.trust import check_message
from hub.watch import watch_filters

log = structlog.get_logger(__name__)


class Ingestor:
    def __init__(
        self,
        hub: Hub,
        broker: BrokerConfig,
        *,
        identifier: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.hub = hub
        self.broker = broker
        self.identifier = identifier
        self._backoff = backoff or Backoff(initial=1.0, cap=30.0)
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._node = 0
        self._trusted_seen: object = None
        self._stopping = False
        self.counts: Counter[str] = Counter()
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hub-ingest")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [*self._tasks, *([self._task] if self._task else [])]
        # On Python 3.11 `asyncio.wait_for` (inside aiomqtt's connect and disconnect) can
        # swallow a cancellation that lands as its future completes; the loop would then go on
        # reconnecting and this stop wait forever. Cancel again until each task has ended.
        while pending := [task for task in tasks if not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        client = self._client
        if client is None or not self.connected:
            raise HubConnectionError(
                f"the hub is not connected to the broker ({self.last_error or 'connecting'})"
            )
        await client.publish(topic, payload, qos=qos)

    async def _run(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            nodes = self.broker.all_urls()
            url = nodes[self._node % len(nodes)]
            was_up = False
            try:
                async with hub_client(self.broker, identifier=self.identifier, url=url) as client:
                    self._client = client
                    await client.subscribe([(topic, 1) for topic in watch_filters()])
                    self._connected.set()
                    was_up = True
                    self.last_error = None
                    log.info("hub_ingest_connected", broker=url)
                    async for message in client.messages:
                        await self._handle(message)
            except (aiomqtt.MqttError, OSError, HubConnectionError) as exc:
                self.last_error = str(exc) or type(exc).__name__
            except Exception as exc:  # the ingestion must outlive any surprise
                log.exception("hub_ingest_error")
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._client = None
                self._connected.clear()
            if time.monotonic() - started > self._backoff.cap or (was_up and len(nodes) > 1):
                self._backoff.reset()  # it held, or a lost node with others to try
            self._node = (self._node + 1) % len(nodes)
            delay = self._backoff.next_delay()
            log.warning(
                "hub_ingest_reconnect",
                delay_s=round(delay, 2),
                error=self.last_error,
                lost=url,
                next=nodes[self._node],
            )
            await asyncio.sleep(delay)

    async def _recheck_if_trust_changed(self) -> None:
        trusted = self.hub.trusted()
        if trusted is self._trusted_seen:
            return
        first = self._trusted_seen is None
        self._trusted_seen = trusted
        if not first:
            changed = await recheck_sites(self.hub.db, trusted)
            if changed:
                self.hub.bus.publish("registry", *(f"site:{s}" for s in changed))

    async def _handle(self, message: aiomqtt.Message) -> None:
        await self._recheck_if_trust_changed()
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
        topic = message.topic.value
        received = datetime.now(UTC)
        checked = check_message(topic, payload, self.hub.trusted())
        token = payload.decode("ascii", "replace")
        self.counts[f"{checked.kind}:{checked.verdict.value}"] += 1
        if not checked.ok:
            log.warning(
                "hub_ingest_unverified",
                topic=topic,
                verdict=checked.verdict.value,
                reason=checked.reason,
            )
        if checked.kind in ("registry", "status"):
            change = await record_presence(
                self.hub.db, checked, token, received=received, retained=bool(message.retain)
            )
            if change is not None and change.changed:
                self.hub.bus.publish("registry", f"site:{change.site}")
            return
        recorded = await record_event(self.hub.db, checked, token, received=received)
        if recorded is None:
            return
        request = recorded.request
        topics = [f"request:{recorded.event.req}"]
        if request is not None:
            if request.incident_id is not None:
                topics.append(f"incident:{request.incident_id}")
            if request.cmd == "stream":
                topics.append("live")
            if request.case:
                topics.append(f"case:{request.case}")
        self.hub.bus.publish(*topics)
        event = recorded.event
        if (
            recorded.first
            and request is not None
            and event.state is EventState.COMPLETED
            and event.manifest is not None
            and request.cmd in ("clip", "snapshot")
        ):
            # Verification reads the whole clip: not on the path of the next message.
            self._spawn(evidence.receive(self.hub, request, event.manifest))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        async def guarded() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await coro
                except Exception:
                    log.exception("hub_ingest_task_failed")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def ingest_retained(hub: Hub, client: aiomqtt.Client, *, within: float = 15.0) -> int:
    """Read every site's retained registry and status once and store them (what a command
    needs when no `serve` keeps the map current). Returns how many messages were stored."""
    filters = [Topics.all_sites("registry"), Topics.all_sites("status")]
    messages = await retained(client, filters, within=within)
    trusted = hub.trusted()
    now = datetime.now(UTC)
    for message in messages:
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
        checked = check_message(message.topic.value, payload, trusted)
        await record_presence(
            hub.db, checked, payload.decode("ascii", "replace"), received=now, retained=True
        )
    return len(messages)
