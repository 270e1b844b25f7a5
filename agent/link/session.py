"""The site's MQTT session with the RTCC's broker (DESIGN §4.1).

One long-lived object the daemon starts next to the recorders. It

- connects over TLS (client certificate or username/password) with the site id as a fixed
  client id and a persistent session (MQTT 3.1.1, clean session off), so requests published
  while the site was offline are delivered when it comes back;
- sets as its will a status JWT with `online: false`, signed at each connect;
- subscribes (QoS 1) to the site's `req` topic and hands every payload, in order, to
  `on_request`; an exception there is logged and counted, never fatal. Acknowledgements are
  manual: a request is acknowledged to the broker only once `on_request` returned (the request
  service returns after the request's ledger entry is durable). When it returns False (no entry
  could be written) the message stays unacknowledged and the session reconnects, so that the
  broker, holding it in the site's persistent session, delivers it again. Requests that arrive
  while the inbox is full go to `on_busy` (refused as `busy`, with their ledger entry) before
  they are acknowledged: none is acknowledged and dropped;
- given `on_trust`, also subscribes to the RTCC's retained trust set (`rtcc/v1/trust`) and hands
  each one to it (in the same order as requests, so a revocation applies to every request
  received after it);
- on connect publishes the retained `status` (online) and `registry`, again whenever
  `presence_changed()` is called, and every `refresh_interval` (60 s) otherwise to refresh `iat`;
- publishes events handed to `emit()` as JWS signed by the device key, in order, from a bounded
  outbox that holds them while the broker is away — on disk when given `outbox_path`, so they
  survive a restart (see `agent.link.outbox` for what a full outbox drops);
- reconnects forever with jittered exponential backoff capped at 60 s; given several brokers
  (the nodes of a cluster, `rtcc.broker_urls`) it moves on to the next node after each lost
  connection or failed attempt, so losing the node a site is on costs one short, jittered
  delay: the cluster holds the persistent session, so queued requests follow the site.

Nothing here blocks the event loop: `emit()` only queues, the TLS files are read in a worker
thread, and the recorders never wait for the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt

from agent import __version__
from agent.config import ID_PATTERN, RtccConfig
from agent.identity import DeviceKey
from agent.link.backoff import Backoff
from agent.link.outbox import Outbox
from agent.link.presence import (
    RegistryProvider,
    StatusProvider,
    bare_registry,
    basic_status,
    call_provider,
    registry_claims,
    status_claims,
)
from agent.link.tls import client_tls_context
from agent.log import get_logger
from agent.wire import TRUST_TOPIC, CameraListing, Event, Topics

log = get_logger(__name__)

# Returns False when the payload could not be recorded (leave it unacknowledged); anything
# else acknowledges it.
RequestHandler = Callable[[bytes], Awaitable[bool | None]]

DEFAULT_PORTS = {"mqtts": 8883, "mqtt": 1883}
TCP_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how this site proves who it is."""

    host: str
    port: int
    tls: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
    ) -> BrokerSettings:
        """`mqtts://host[:8883]` (TLS) or `mqtt://host[:1883]` (plaintext, loopback only)."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"broker URL must look like mqtts://host:8883, not {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            tls=parts.scheme == "mqtts",
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            username=username,
            password=password,
            keepalive=keepalive,
        )

    @classmethod
    def from_config(cls, rtcc: RtccConfig) -> BrokerSettings:
        """The first node (see `all_from_config` for a cluster)."""
        return cls.all_from_config(rtcc)[0]

    @classmethod
    def all_from_config(cls, rtcc: RtccConfig) -> list[BrokerSettings]:
        """One entry per broker node, `rtcc.broker_url` first."""
        if rtcc.broker_url is None:
            raise ValueError("rtcc.broker_url is not set: the agent is not enrolled")
        return [cls._from_rtcc(url, rtcc) for url in rtcc.all_broker_urls()]

    @classmethod
    def _from_rtcc(cls, url: str, rtcc: RtccConfig) -> BrokerSettings:
        return cls.from_url(
            url,
            ca_file=rtcc.ca_file,
            cert_file=rtcc.cert_file,
            key_file=rtcc.key_file,
            username=rtcc.username,
            password=rtcc.password.get_secret_value() if rtcc.password else None,
            keepalive=max(5, int(rtcc.keepalive.total_seconds())),
        )


@dataclass
class SessionStats:
    connects: int = 0
    connect_failures: int = 0
    requests: int = 0
    requests_dropped: int = 0
    requests_busy: int = 0
    requests_unrecorded: int = 0
    handler_errors: int = 0
    events_sent: int = 0
    presence_published: int = 0


@dataclass(frozen=True)
class _Received:
    client: aiomqtt.Client
    message: aiomqtt.Message


class _ConnectionEnded(Exception):
    """The broker connection ended without an error of its own (the broker closed it)."""


class MqttSession:
    def __init__(
        self,
        *,
        site_id: str,
        broker: BrokerSettings | Sequence[BrokerSettings],
        device_key: DeviceKey,
        on_request: RequestHandler,
        on_busy: RequestHandler | None = None,
        on_trust: RequestHandler | None = None,
        status: StatusProvider | None = None,
        registry: RegistryProvider | None = None,
        outbox_size: int = 1000,
        outbox_path: Path | None = None,
        inbox_size: int = 1000,
        refresh_interval: float = 60.0,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        setup_timeout: float = 5.0,
        drain_timeout: float = 5.0,
        first_node: int | None = None,
    ) -> None:
        if not re.fullmatch(ID_PATTERN, site_id):
            raise ValueError(f"site id {site_id!r} does not match {ID_PATTERN}")
        self.site_id = site_id
        self.brokers = [broker] if isinstance(broker, BrokerSettings) else list(broker)
        if not self.brokers:
            raise ValueError("a session needs at least one broker")
        # Sites start on different nodes (by their id, so a site keeps its node across
        # restarts): a city's sites spread over the cluster, and one node's loss moves only
        # its share of them.
        spread = zlib.crc32(site_id.encode()) if first_node is None else first_node
        self._node = spread % len(self.brokers)
        self.topics = Topics(site_id)
        self.stats = SessionStats()
        self._key = device_key
        self._on_request = on_request
        self._on_busy = on_busy
        self._on_trust = on_trust
        self._status = status or basic_status()
        self._registry = registry or bare_registry(site_id)
        self._refresh_interval = refresh_interval
        self._backoff = backoff or Backoff()
        self._timeout = timeout
        self._setup_timeout = setup_timeout
        self._failing_over = False  # the next attempt follows a lost node, others remain
        self._drain_timeout = drain_timeout
        self._outbox = Outbox(outbox_size, path=outbox_path)
        # Received requests wait here, outside any one connection, with the client that
        # received them (the one that can acknowledge them). None is acknowledged yet.
        self._inbox: asyncio.Queue[_Received] = asyncio.Queue(maxsize=inbox_size)
        # What arrives while the inbox is full: refused as busy (bounded by the broker, which
        # sends a client at most its in-flight window of unacknowledged messages).
        self._overflow: asyncio.Queue[_Received] = asyncio.Queue()
        self._client: aiomqtt.Client | None = None
        self._redeliver = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._task: asyncio.Task[None] | None = None

    # --- what the daemon calls -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def broker(self) -> BrokerSettings:
        """The node the session is connected to, or tries next."""
        return self.brokers[self._node]

    @property
    def outbox_size(self) -> int:
        """Events waiting for the broker."""
        return len(self._outbox)

    @property
    def events_dropped(self) -> int:
        return self._outbox.dropped

    async def emit(self, event: Event) -> None:
        """Queue `event` for signing and publishing; returns at once, connected or not."""
        if event.iss != self.site_id:
            raise ValueError(f"event iss {event.iss!r} is not this site ({self.site_id!r})")
        evicted = self._outbox.put(event)
        if evicted is not None:
            log.error(
                "event_dropped",
                reason="outbox full",
                capacity=self._outbox.capacity,
                req=evicted.req,
                seq=evicted.seq,
                state=evicted.state.value,
            )

    def presence_changed(self) -> None:
        """Status or registry facts changed: publish both again soon."""
        self._changed.set()

    async def wait_connected(self) -> None:
        """Until connected, subscribed, and the online status and registry are published."""
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        await self._down.wait()

    async def start(self) -> None:
        """Run the session in a background task (`stop()` ends it)."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"mqtt-session-{self.site_id}")

    async def stop(self) -> None:
        """End gracefully: send what the outbox holds (for up to `drain_timeout`), publish
        `online: false`, disconnect (so no will), and finish handling received requests.
        Returns once done if the session was started with `start()`; a caller running `run()`
        itself awaits that instead."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> MqttSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Connect, serve, and reconnect forever, until `stop()` (or cancellation, after
        which the broker publishes the will when it notices the connection is gone)."""
        consumer = asyncio.create_task(self._consume_requests(), name="mqtt-requests")
        busy = asyncio.create_task(self._consume_overflow(), name="mqtt-busy")
        try:
            while not self._stopping.is_set():
                connected_at: list[float] = []
                try:
                    await self._connection(connected_at)
                except (aiomqtt.MqttError, OSError, _ConnectionEnded) as exc:
                    error = str(exc) or type(exc).__name__
                except Exception as exc:  # the link must outlive any surprise
                    log.exception("mqtt_session_error")
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    break  # returns normally only when stopping
                if not connected_at:
                    self.stats.connect_failures += 1
                elif (
                    len(self.brokers) > 1 or time.monotonic() - connected_at[0] >= self._backoff.cap
                ):
                    # A connection that held, or a node lost with others left to try: start
                    # small again (still jittered, so a node's sites do not all arrive at once
                    # on the next one).
                    self._backoff.reset()
                self._failing_over = bool(connected_at) and len(self.brokers) > 1
                if self._stopping.is_set():
                    break
                lost = self.broker
                self._node = (self._node + 1) % len(self.brokers)
                delay = self._backoff.next_delay()
                log.warning(
                    "mqtt_reconnect_wait",
                    delay_s=round(delay, 3),
                    attempt=self._backoff.attempt,
                    host=lost.host,
                    port=lost.port,
                    next_host=self.broker.host,
                    next_port=self.broker.port,
                    error=error,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
            await self._finish_requests()
        finally:
            for task in (consumer, busy):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._up.clear()
            self._down.set()

    # --- one connection --------------------------------------------------------------------

    async def _connection(self, connected_at: list[float]) -> None:
        broker = self.broker
        tls_context = None
        if broker.tls:
            tls_context = await asyncio.to_thread(
                client_tls_context,
                ca_file=broker.ca_file,
                cert_file=broker.cert_file,
                key_file=broker.key_file,
            )
        will = aiomqtt.Will(
            topic=self.topics.status, payload=self._offline_status(), qos=1, retain=True
        )
        receiver: list[aiomqtt.Client] = []
        client = aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=self.site_id,
            clean_session=False,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=will,
            tls_context=tls_context,
            username=broker.username,
            password=broker.password,
            keepalive=broker.keepalive,
            # Right after a lost node, a short wait while setting up (CONNACK, SUBACK, the
            # retained presence): a NATS node whose peer just died can hold a new session's
            # QoS 1 subscription until JetStream has re-elected (seen: over 10 s on 2.9.10),
            # while another answers at once. Not on a first or plain reconnect: under a
            # city's connection storm a short wait would only add churn.
            timeout=self._setup_timeout if self._failing_over else self._timeout,
            queue_type=self._forwarding_queue(receiver),
            # Without it Nagle's algorithm meets the peer's delayed ACK and a request's
            # answer waits ~40 ms per hop; an MQTT message is one small write anyway.
            socket_options=[TCP_NODELAY],
        )
        receiver.append(client)
        # aiomqtt 2.5 does not pass paho's manual_ack through; set it on paho's client before
        # connecting: each request is acknowledged once it is recorded (see `_acknowledge`).
        client._client.manual_ack_set(True)
        log.info("mqtt_connecting", host=broker.host, port=broker.port)
        async with client:
            self._client = client
            self._redeliver.clear()
            connected_at.append(time.monotonic())
            self.stats.connects += 1
            await client.subscribe(self.topics.req, qos=1)
            if self._on_trust is not None:
                await client.subscribe(TRUST_TOPIC, qos=1)
            await self._publish_presence(client)
            client.timeout = self._timeout
            self._down.clear()
            self._up.set()
            log.info("mqtt_connected", host=broker.host, port=broker.port)
            try:
                await self._serve(client)
            finally:
                self._client = None
                self._up.clear()
                self._down.set()

    async def _serve(self, client: aiomqtt.Client) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        tasks = {
            asyncio.create_task(self._watch(client)),
            asyncio.create_task(self._send_events(client)),
            asyncio.create_task(self._refresh_presence(client)),
            asyncio.create_task(self._redeliver.wait()),
            stopping,
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task is stopping or task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                raise error
        if stopping in done:
            await self._goodbye(client)
            return
        if self._redeliver.is_set():
            raise _ConnectionEnded(
                "a request could not be recorded: reconnecting so that the broker sends it again"
            )
        raise _ConnectionEnded("connection closed")

    async def _watch(self, client: aiomqtt.Client) -> None:
        # Messages go to the inbox (see _forwarding_queue), so this never yields; it raises
        # MqttError the moment the connection is lost, which ends the connection's tasks.
        async for _ in client.messages:
            pass

    async def _send_events(self, client: aiomqtt.Client) -> None:
        while True:
            event = await self._outbox.head()
            await self._publish_event(client, event)

    async def _publish_event(self, client: aiomqtt.Client, event: Event) -> None:
        token = self._key.sign(event.model_dump(mode="json", exclude_none=True))
        await client.publish(self.topics.evt, token, qos=1)
        self._outbox.done(event)
        self.stats.events_sent += 1

    async def _refresh_presence(self, client: aiomqtt.Client) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._refresh_interval)
            await self._publish_presence(client)

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        try:
            async with asyncio.timeout(self._drain_timeout):
                while len(self._outbox):
                    await self._publish_event(client, await self._outbox.head())
        except TimeoutError:
            log.warning("events_not_sent", count=len(self._outbox), reason="stopping")
        try:
            await client.publish(self.topics.status, self._offline_status(), qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            log.warning("offline_status_not_sent", error=str(exc))
        log.info("mqtt_disconnecting", reason="stopping")

    # --- presence --------------------------------------------------------------------------

    def _offline_status(self) -> str:
        claims = status_claims(
            self.site_id, {"version": __version__}, online=False, now=time.time()
        )
        return self._key.sign(claims.model_dump(mode="json", exclude_none=True))

    async def _publish_presence(self, client: aiomqtt.Client) -> None:
        self._changed.clear()
        now = time.time()
        try:
            status = status_claims(
                self.site_id, await call_provider(self._status), online=True, now=now
            )
        except Exception:  # a provider bug must not take the link down
            log.exception("status_provider_failed")
            status = status_claims(self.site_id, {"version": __version__}, online=True, now=now)
        await client.publish(
            self.topics.status,
            self._key.sign(status.model_dump(mode="json", exclude_none=True)),
            qos=1,
            retain=True,
        )
        try:
            registry = registry_claims(self.site_id, await call_provider(self._registry), now=now)
        except Exception:  # keep the last good retained registry instead
            log.exception("registry_provider_failed")
        else:
            await client.publish(
                self.topics.registry,
                self._key.sign(registry.model_dump(mode="json", exclude_none=True)),
                qos=1,
                retain=True,
            )
        self.stats.presence_published += 1

    # --- requests --------------------------------------------------------------------------

    def _forwarding_queue(
        self, receiver: list[aiomqtt.Client]
    ) -> type[asyncio.Queue[aiomqtt.Message]]:
        """The queue class aiomqtt files received messages into: it passes each straight on
        to the session's inbox (aiomqtt calls `put_nowait` from paho's message callback), or
        to the busy queue when the inbox is full, with the client that received it."""
        session = self

        class ForwardToInbox(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                received = _Received(receiver[0], item)
                try:
                    session._inbox.put_nowait(received)
                except asyncio.QueueFull:
                    session.stats.requests_busy += 1
                    session._overflow.put_nowait(received)

        return ForwardToInbox

    async def _consume_requests(self) -> None:
        while True:
            received = await self._inbox.get()
            try:
                await self._handle(received, self._on_request)
            finally:
                self._inbox.task_done()

    async def _consume_overflow(self) -> None:
        while True:
            received = await self._overflow.get()
            if self._on_busy is None:
                # Nobody to refuse it: leave it unacknowledged, for the broker to send again.
                self.stats.requests_dropped += 1
                log.error(
                    "request_not_taken", reason="inbox full", topic=received.message.topic.value
                )
                continue
            log.warning("request_busy", reason="inbox full")
            await self._handle(received, self._on_busy)

    async def _handle(self, received: _Received, handler: RequestHandler) -> None:
        message = received.message
        if message.topic.value == TRUST_TOPIC and self._on_trust is not None:
            try:
                await self._on_trust(bytes(message.payload))
            except Exception:
                log.exception("trust_set_handler_failed")
            self._acknowledge(received)
            return
        if message.topic.value != self.topics.req:
            log.warning("unexpected_topic", topic=message.topic.value)
            self._acknowledge(received)
            return
        payload = bytes(message.payload)
        self.stats.requests += 1
        try:
            recorded = await handler(payload)
        except Exception:  # one bad request must not stop the next, nor come back forever
            self.stats.handler_errors += 1
            log.exception("request_handler_failed", bytes=len(payload))
            recorded = None
        if recorded is False:
            self.stats.requests_unrecorded += 1
            log.error("request_not_acknowledged", bytes=len(payload), reason="not recorded")
            self._redeliver.set()
            return
        self._acknowledge(received)

    def _acknowledge(self, received: _Received) -> None:
        """PUBACK, on the connection that delivered it (after a reconnect the broker sends
        unacknowledged messages again, and the copy is recorded as a replay)."""
        if received.client is not self._client:
            return
        try:
            received.client._client.ack(received.message.mid, received.message.qos)
        except Exception:  # the connection went away meanwhile: the broker sends it again
            log.warning("request_ack_failed", exc_info=True)

    async def _finish_requests(self) -> None:
        """On a graceful stop, let requests already received be handled (bounded)."""
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._inbox.join()
        except TimeoutError:
            log.warning("requests_not_handled", count=self._inbox.qsize(), reason="stopping")


class SessionPublisher:
    """`agent.link.ports.Publisher` over a session: what the registry lists comes from the
    same provider the session publishes, and a re-publish asks the session to send both
    retained messages again (coalesced, from its own task)."""

    def __init__(self, session: MqttSession, registry: RegistryProvider) -> None:
        self._session = session
        self._registry = registry

    async def cameras(self) -> list[CameraListing]:
        claims = await call_provider(self._registry)
        return [CameraListing.model_validate(camera) for camera in claims.get("cameras", [])]

    async def publish_registry(self) -> None:
        self._session.presence_changed()

    async def publish_status(self) -> None:
        self._session.presence_changed()
