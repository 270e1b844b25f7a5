"""A request service on a temporary state directory, for tests that need one without MQTT.

    config = site_config(tmp_path)                  # three cameras, the RTCC JWKS written
    async with running_service(config) as site:     # RequestService + what it talks to
        await site.service.handle(make_request(cmd="clip"))
        event = await site.sink.wait_for(jti, "accepted")
        await site.owner.pause(duration=None, by="owner")  # the owner's actions

Holds go to a real `agent.store.ClipStore` under `<state_dir>/store` (`Site.active_holds()`
lists them); `Site.owner` is the owner's library (`agent.link.owner_actions`) on the service;
`RecordingSink` keeps every event the service emits (the MQTT session's place);
`PolicyPublisher` lists cameras from the service's own policy and counts re-publications.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import tomlkit

from agent.config import AgentConfig
from agent.identity import DeviceKey
from agent.link import DeliveryHandlers, OwnerActions, PendingNotifier, RequestService
from agent.policy import CameraFacts
from agent.store import ClipStore
from agent.wire import CameraListing, Event
from tests.support.rtcc import ISSUER, RELAY_HOST, RTCC, SITE, UPLOAD_HOST, RtccTestKey

CAMERAS: list[dict[str, Any]] = [
    {
        "id": "front-door",
        "name": "Front door",
        "rtsp_url": "rtsp://127.0.0.1:8554/front",
        "sharing": "integrated",
        "live": True,
        "location": {"lat": 35.0844, "lon": -106.6504, "heading": 270, "fov": 90},
    },
    {
        "id": "parking-lot",
        "name": "Parking lot",
        "rtsp_url": "rtsp://127.0.0.1:8554/lot",
        "sharing": "registry",
        "location": {"lat": 35.0846, "lon": -106.6509},
    },
    {
        "id": "side-door",
        "name": "Side door",
        "rtsp_url": "rtsp://127.0.0.1:8554/side",
        "sharing": "integrated",
        "live": False,
        "location": {"lat": 35.0845, "lon": -106.6506},
    },
    {
        "id": "stockroom",
        "name": "Stockroom",
        "rtsp_url": "rtsp://127.0.0.1:8554/stock",
        "sharing": "private",
    },
]


def site_config(
    state_dir: Path,
    *,
    key: RtccTestKey = RTCC,
    socket_path: Path | None = None,
    owner_dir: Path | None = None,
    **policy: Any,
) -> AgentConfig:
    """A site `SITE` trusting `key` (JWKS written into `state_dir`), with the CAMERAS above;
    the owner's choices in `owner_dir` (default `<state_dir>/owner`)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    jwks = key.write_jwks(state_dir / "rtcc-jwks.json")
    settings: dict[str, Any] = {
        "allowed_upload_hosts": [UPLOAD_HOST, "127.0.0.1"],
        "allowed_relay_hosts": [RELAY_HOST, "127.0.0.1"],
        **policy,
    }
    return AgentConfig(
        state_dir=state_dir,
        site={"id": SITE, "name": "Corner Grocery"},
        rtcc={"issuer": ISSUER, "jwks_file": str(jwks), "clock_leeway": "30s"},
        cameras=CAMERAS,
        policy=settings,
        control={
            "socket": str(socket_path or state_dir / "control.sock"),
            "owner_dir": str(owner_dir or state_dir / "owner"),
        },
    )


def write_site_config(config: AgentConfig, path: Path) -> Path:
    """`config` (made by `site_config`) as a TOML file the CLI can load."""
    document = {
        "state_dir": str(config.state_dir),
        "site": {"id": config.site.id, "name": config.site.name},
        "rtcc": {
            "issuer": config.rtcc.issuer,
            "jwks_file": str(config.rtcc.jwks_file),
            "clock_leeway": "30s",
        },
        "policy": {
            "allowed_upload_hosts": list(config.policy.allowed_upload_hosts),
            "allowed_relay_hosts": list(config.policy.allowed_relay_hosts),
        },
        "control": {"socket": str(config.control.socket), "owner_dir": str(config.owner_dir)},
        "cameras": CAMERAS,
    }
    path.write_text(tomlkit.dumps(document))
    return path


@dataclass
class RecordingSink:
    events: list[Event] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def emit(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, jti: str) -> list[Event]:
        return [event for event in self.events if event.req == jti]

    def states(self, jti: str) -> list[str]:
        return [event.state.value for event in self.of(jti)]

    async def wait_for(self, jti: str, state: str, *, within: float = 20.0) -> Event:
        """The first event of `jti` in `state` (waits for it; TimeoutError names what was seen)."""
        deadline = time.monotonic() + within
        while True:
            for event in self.of(jti):
                if event.state.value == state:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {state} event for {jti}; saw {self.states(jti)}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


class PolicyPublisher:
    """Lists the cameras from the service's policy; counts what was re-published."""

    def __init__(self) -> None:
        self.service: RequestService | None = None
        self.registry_published = 0
        self.status_published = 0
        self.status_changed = asyncio.Event()

    async def cameras(self) -> list[CameraListing]:
        assert self.service is not None
        return self.service.policy.listings(lambda _camera: CameraFacts(online=True))

    async def publish_registry(self) -> None:
        self.registry_published += 1

    async def publish_status(self) -> None:
        self.status_published += 1
        self.status_changed.set()


@dataclass
class Site:
    config: AgentConfig
    service: RequestService
    sink: RecordingSink
    store: ClipStore
    publisher: PolicyPublisher
    owner: OwnerActions

    def active_holds(self) -> dict[str, tuple[str, datetime, datetime]]:
        """The clip store's holds: id → (camera, start, end)."""
        return {hold.id: (hold.camera, hold.start, hold.end) for hold in self.store.holds()}


class FakeClock:
    """Wall-clock seconds that a test can move forward (timers still run on real time)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by.total_seconds()


@contextlib.asynccontextmanager
async def running_service(
    config: AgentConfig,
    *,
    clock: Callable[[], float] = time.time,
    handlers: DeliveryHandlers | None = None,
    notifier: PendingNotifier | None = None,
    holds: Any = None,
    sink: Any = None,
) -> AsyncIterator[Site]:
    """Open and start a service on `config.state_dir`; closed (not deleted) on exit."""
    state = Path(config.state_dir)
    key = DeviceKey.load_or_create(state / "device.key")
    store = ClipStore.from_config(config)
    publisher = PolicyPublisher()
    recording = RecordingSink()
    service = RequestService.open(
        config,
        device_key=key,
        holds=holds if holds is not None else store,
        sink=sink if sink is not None else recording,
        publisher=publisher,
        handlers=handlers,
        notifier=notifier,
        clock=clock,
    )
    publisher.service = service
    try:
        await service.start()
        yield Site(config, service, recording, store, publisher, OwnerActions(service))
    finally:
        await service.close()
        store.close()
