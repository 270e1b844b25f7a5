"""A site as the daemon composes its link with delivery, without MQTT: the daemon's own store
component, the request service, and `DeliveryService` as its clip and snapshot handlers.

    async with delivering_site(config) as site:
        await site.service.handle(make_request("clip", ...))
        done = await site.sink.wait_for(jti, "completed")

Order matters and is the daemon's: delivery starts before the request service (whose `start()`
resumes unfinished deliveries) and stops before it closes (unfinished jobs stay persisted).
Footage comes from `record_footage`: stamped test media fed through the store's real writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent.config import AgentConfig, StoreConfig, UploadConfig
from agent.daemon import StoreService
from agent.delivery import DeliveryService, LiveSource
from agent.identity import DeviceKey
from agent.ledger import Entry, read_entries
from agent.link import DeliveryHandlers, RequestService
from agent.link.service import LEDGER_DIR
from agent.store import ClipStore
from agent.wire import Event
from agent.wire.codes import FINAL_STATES
from camsim.sei import FrameStamp
from tests.support.link_service import PolicyPublisher, RecordingSink, site_config
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source

_T = TypeVar("_T")
CAMERA = "front-door"
LATENCY_US = 20_000  # receipt time = capture time + this, in the recorded footage


def delivery_config(
    state_dir: Path, *, ca_file: Path | None = None, temp_dir: Path | None = None, **upload: Any
) -> AgentConfig:
    """The link tests' site (`tests.support.link_service.site_config`), recording into
    10 s segments, trusting `ca_file` for uploads."""
    base = site_config(state_dir)
    return base.model_copy(
        update={
            "store": StoreConfig(segment_seconds=10, min_free=0),
            "upload": UploadConfig(ca_file=ca_file, temp_dir=temp_dir, **upload),
        }
    )


class SiteStore(Protocol):
    """What the site needs of the daemon's store component (`agent.daemon.StoreService`)."""

    @property
    def store(self) -> ClipStore: ...

    async def run(self, function: Callable[[ClipStore], _T]) -> _T: ...


@dataclass
class DeliverySite:
    config: AgentConfig
    key: DeviceKey
    store: SiteStore
    delivery: DeliveryService
    service: RequestService
    sink: RecordingSink

    def ledger(self, kind: str | None = None) -> list[Entry]:
        entries = read_entries(Path(self.config.state_dir) / LEDGER_DIR)
        return [e for e in entries if kind is None or e.kind == kind]

    def uploads(self, jti: str) -> list[dict[str, Any]]:
        return [e.data for e in self.ledger("upload") if e.data["jti"] == jti]

    def temp_files(self) -> list[str]:
        return sorted(p.name for p in self.delivery.temp_dir.iterdir())


@contextlib.asynccontextmanager
async def delivering_site(
    config: AgentConfig,
    *,
    live: LiveSource | None = None,
    backoff_base: float = 0.05,
    stall_timeout: float = 10.0,
    store: SiteStore | None = None,
) -> AsyncIterator[DeliverySite]:
    own_store = StoreService(config) if store is None else None
    store_service: SiteStore = own_store or store  # type: ignore[assignment]
    if own_store is not None:
        await own_store.start()
    key = DeviceKey.load_or_create(Path(config.state_dir) / "device.key")
    delivery = DeliveryService(
        config,
        store=store_service,
        device_key=key,
        live=live,
        backoff_base=backoff_base,
        stall_timeout=stall_timeout,
    )
    sink, publisher = RecordingSink(), PolicyPublisher()
    service = RequestService.open(
        config,
        device_key=key,
        holds=store_service.store,
        sink=sink,
        publisher=publisher,
        handlers=DeliveryHandlers(clip=delivery.clip, snapshot=delivery.snapshot),
    )
    publisher.service = service
    try:
        await delivery.start()
        await service.start()
        yield DeliverySite(config, key, store_service, delivery, service, sink)
    finally:
        await delivery.stop()
        await service.close()
        if own_store is not None:
            await own_store.stop()


def footage_spec(start: datetime, seconds: float, **fields: Any) -> MediaSpec:
    return MediaSpec(start_us=int(start.timestamp() * 1_000_000), seconds=seconds, gop=15, **fields)


def record_footage(config: AgentConfig, media_dir: Path, spec: MediaSpec) -> FrameStamp:
    """Feed `spec` (encoded once per media dir) into the store as `CAMERA`'s recording."""
    path = encode_stamped(media_dir, spec)
    with (
        ClipStore.from_config(config) as store,
        stamped_source(path) as source,
        store.open_writer(CAMERA, source.stream) as writer,
    ):
        last = feed(writer, source, latency_us=LATENCY_US)
    assert last is not None
    return last


def wall(spec: MediaSpec, frame: int) -> datetime:
    """Agent wall-clock time of `frame` of the recorded footage."""
    return datetime.fromtimestamp((spec.capture_us(frame) + LATENCY_US) / 1e6, UTC)


def recent(seconds_ago: float) -> datetime:
    """A whole second some time ago (footage times line up with frames)."""
    return datetime.fromtimestamp(int(time.time() - seconds_ago), UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def final_event(site: DeliverySite, jti: str, *, within: float = 60) -> Event:
    """The request's one final event; checks that seq has no hole and nothing follows it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        finals = [e for e in site.sink.of(jti) if e.state in FINAL_STATES]
        if finals:
            await asyncio.sleep(0.2)  # anything after the final event would show up now
            events = site.sink.of(jti)
            first = events[0].seq  # 1, or where a site before a restart left off
            assert [e.seq for e in events] == list(range(first, first + len(events)))
            assert len([e for e in events if e.state in FINAL_STATES]) == 1, site.sink.states(jti)
            assert events[-1].state in FINAL_STATES
            while jti in site.delivery.running():  # its clean-up, after the final report
                assert time.monotonic() < deadline, "the delivery task did not end"
                await asyncio.sleep(0.02)
            return finals[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no final event for {jti}: {site.sink.states(jti)}")


def signed_manifest(event: Event) -> str:
    """The compact JWS of the manifest a completed event carries."""
    assert event.manifest is not None, f"no manifest in {event}"
    return event.manifest


def assert_clean(site: DeliverySite, jti: str) -> None:
    """The request's hold is released, its temporary files gone, its job row removed."""
    holds = [h for h in site.store.store.holds() if jti in h.id]
    assert holds == []
    assert site.temp_files() == []
    assert site.delivery.jobs.get(jti) is None
