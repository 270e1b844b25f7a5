"""Simulated sites: the agent's real link code, many sites in one process.

Each `SimSite` is what `rtcc-edge run` puts on the network for one site, minus the cameras:

- its own state directory with a real device key, replay cache, request book, owner policy and
  hash-chained ledger (`agent.link.compose.Link`: the very `MqttSession` and `RequestService`
  the daemon runs), so requests are verified, judged, held, logged and answered with signed
  events exactly as a real site does;
- a signed retained registry and status, from the site's configuration (cameras listed with
  their place, heading and field of view, sharing, live, firmware);
- a real clip store: empty (holds only) or, with `footage_s`, filled with synthetic footage that
  keeps growing in real time (`sitesim.footage`), from which the agent's real `DeliveryService`
  cuts, signs and uploads clips and snapshots. Without footage, clip requests are accepted and
  held but not delivered (the agent's placeholder, which never pretends to complete).
- the owner's decisions through the agent's own owner boundary (`approve`, `deny`).

Live streams are not simulated (`live` cameras list live view; a stream request is accepted and
goes no further).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import AgentConfig
from agent.daemon.app import StoreService
from agent.delivery import DeliveryService
from agent.identity import DeviceKey, device_key_path
from agent.link import OwnerActions, RequestService
from agent.link.compose import Link
from agent.link.delivery import DeliveryHandlers
from agent.link.session import MqttSession
from agent.log import get_logger
from agent.store import ClipStore
from agent.wire.registry import SiteInfo
from sitesim.footage import CameraRecording, Footage
from sitesim.layout import SiteSpec

FOLLOW_INTERVAL_S = 1.0
log = get_logger(__name__)


@dataclass(frozen=True)
class Broker:
    """How the simulated sites reach the broker; `credentials(site)` gives a site's client
    certificate and key (issued by the RTCC's site CA, as enrollment would)."""

    url: str
    ca_file: Path
    credentials: Callable[[str], tuple[Path, Path]]
    urls: tuple[str, ...] = ()  # every node of a clustered broker (`rtcc.broker_urls`)


@dataclass(frozen=True)
class Rtcc:
    """What the sites trust: the RTCC's issuer and JWKS, where uploads and live video may go."""

    issuer: str
    jwks_file: Path
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    upload_ca: Path | None = None


def site_config(spec: SiteSpec, root: Path, broker: Broker, rtcc: Rtcc) -> AgentConfig:
    cert, key = broker.credentials(spec.id)
    cameras: list[dict[str, Any]] = []
    for camera in spec.cameras:
        location = None
        if camera.lat is not None and camera.lon is not None:
            location = {"lat": camera.lat, "lon": camera.lon, "heading": camera.heading,
                        "fov": camera.fov}  # fmt: skip
        cameras.append(
            {
                "id": camera.id,
                "name": camera.name,
                # Never dialled: simulated cameras have no recorder.
                "rtsp_url": f"rtsp://127.0.0.1:1/sitesim/{spec.id}/{camera.id}",
                "sharing": camera.sharing,
                "live": camera.live,
                "location": location,
            }
        )
    return AgentConfig.model_validate(
        {
            "state_dir": root / spec.id,
            "site": {"id": spec.id, "name": spec.name, "address": spec.address},
            "rtcc": {
                "broker_url": broker.url,
                "broker_urls": list(broker.urls),
                "ca_file": broker.ca_file,
                "cert_file": cert,
                "key_file": key,
                "issuer": rtcc.issuer,
                "jwks_file": rtcc.jwks_file,
            },
            "store": {"segment_seconds": 10, "min_free": 0},
            "cameras": cameras,
            "policy": {
                "allowed_upload_hosts": list(rtcc.allowed_hosts),
                "allowed_relay_hosts": list(rtcc.allowed_hosts),
                "max_clip_window": "2h",
            },
            "upload": {"ca_file": rtcc.upload_ca},
            "log": {"level": "warning"},
        }
    )


class SimSite:
    def __init__(
        self,
        spec: SiteSpec,
        config: AgentConfig,
        *,
        footage: Footage | None = None,
        footage_s: float = 0.0,
        recorder: ThreadPoolExecutor | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.key = DeviceKey.load_or_create(device_key_path(config.state_dir))
        self._footage = footage if footage_s > 0 else None
        self._footage_s = footage_s
        # The recordings' store connections live on one thread (SQLite objects stay on the
        # thread that made them): the simulation's recorder thread, or the site's own.
        self._recorder = recorder or ThreadPoolExecutor(1, thread_name_prefix="sitesim-rec")
        self._started = time.monotonic()
        self._holds: ClipStore | None = None
        self._store: StoreService | None = None
        self._delivery: DeliveryService | None = None
        self._recordings: list[CameraRecording] = []
        self._follow: asyncio.Task[None] | None = None
        self.link: Link | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def public_jwk(self) -> dict[str, str]:
        return dict(self.key.public_jwk)

    @property
    def session(self) -> MqttSession:
        assert self.link is not None, "start the site first"
        return self.link.session

    @property
    def service(self) -> RequestService:
        assert self.link is not None, "start the site first"
        return self.link.service

    async def start(self) -> None:
        config = self.config
        self._holds = await asyncio.to_thread(ClipStore.from_config, config)
        handlers = DeliveryHandlers()
        if self._footage is not None:
            await self._record(self._footage)
            self._store = StoreService(config)
            await self._store.start()
            # Uploads are recorded through each request's job, in the link's ledger.
            self._delivery = DeliveryService(config, store=self._store, device_key=self.key)
            handlers.clip, handlers.snapshot = self._delivery.clip, self._delivery.snapshot
        self.link = Link(
            config,
            device_key=self.key,
            holds=self._holds,
            registry=self._registry,
            status=self._status,
            handlers=handlers,
            outbox_path=config.state_dir / "outbox.db",
        )
        await self.link.service.start()
        if self._delivery is not None:
            await self._delivery.start()
        await self.link.session.start()

    async def _record(self, footage: Footage) -> None:
        def backfill() -> list[CameraRecording]:
            recordings = []
            store = ClipStore.from_config(self.config)
            for camera in self.spec.cameras:
                recording = CameraRecording(footage, store, camera.id)
                recording.backfill(self._footage_s)
                recordings.append(recording)
            return recordings

        loop = asyncio.get_running_loop()
        self._recordings = await loop.run_in_executor(self._recorder, backfill)
        self._follow = asyncio.create_task(self._keep_recording(), name=f"sitesim-{self.id}")

    async def _keep_recording(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_S)
            for recording in self._recordings:
                try:
                    await loop.run_in_executor(self._recorder, recording.catch_up)
                except Exception:  # a broken simulated camera must not stop the others
                    log.exception("sitesim_recording_failed", site=self.id)

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
        if self._delivery is not None:
            await self._delivery.stop()
        if self.link is not None:
            await self.link.session.stop()
            await self.link.service.close()
        loop = asyncio.get_running_loop()
        for recording in self._recordings:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._recorder, recording.close)
        if self._store is not None:
            await self._store.stop()
        if self._holds is not None:
            self._holds.close()

    # --- what the site says about itself ----------------------------------------------------

    def _footage_hours(self) -> float:
        if self._footage is None:
            return 0.0
        return round((self._footage_s + time.monotonic() - self._started) / 3600, 2)

    def _registry(self) -> dict[str, Any]:
        listings = []
        hours = self._footage_hours()
        for camera in self.spec.cameras:
            if camera.sharing == "private":
                continue
            location = None
            if camera.lat is not None and camera.lon is not None:
                location = {"lat": camera.lat, "lon": camera.lon, "heading": camera.heading,
                            "fov": camera.fov}  # fmt: skip
            listings.append(
                {
                    "id": camera.id,
                    "name": camera.name,
                    "location": location,
                    "sharing": camera.sharing,
                    "live": camera.live,
                    "verdict": "pass",
                    "online": True,
                    "footage_hours": hours,
                    "vendor": camera.vendor,
                    "model": camera.model,
                    "firmware": camera.firmware,
                }
            )
        site = SiteInfo(id=self.spec.id, name=self.spec.name, address=self.spec.address)
        return {"site": site.model_dump(), "cameras": listings}

    def _status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "cameras_online": len(self.spec.cameras),
            "cameras_total": len(self.spec.cameras),
            "clock": {"synchronized": True, "source": "sitesim"},
        }

    # --- the owner ---------------------------------------------------------------------------

    async def approve(self, request_id: str) -> None:
        await OwnerActions(self.service).approve(request_id, by="owner (sitesim)")

    async def deny(self, request_id: str, reason: str = "not our camera") -> None:
        await OwnerActions(self.service).deny(request_id, reason=reason, by="owner (sitesim)")


class Simulation:
    """Many sites in one process: start them (a few at a time), stop them all."""

    def __init__(
        self,
        specs: Sequence[SiteSpec],
        root: Path,
        broker: Broker,
        rtcc: Rtcc,
        *,
        footage_s: float = 0.0,
    ) -> None:
        self.root = root
        footage = Footage.make() if footage_s > 0 else None
        self._recorder = ThreadPoolExecutor(1, thread_name_prefix="sitesim-rec")
        self.sites = [
            SimSite(spec, site_config(spec, root, broker, rtcc), footage=footage,
                    footage_s=footage_s, recorder=self._recorder)
            for spec in specs
        ]  # fmt: skip

    def site(self, site_id: str) -> SimSite:
        return next(site for site in self.sites if site.id == site_id)

    async def start(self, *, concurrency: int = 20) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(site: SimSite) -> None:
            async with gate:
                await site.start()

        await asyncio.gather(*(one(site) for site in self.sites))

    async def wait_connected(self, *, within: float = 60.0) -> None:
        async with asyncio.timeout(within):
            await asyncio.gather(*(site.session.wait_connected() for site in self.sites))

    async def stop(self) -> None:
        await asyncio.gather(*(site.stop() for site in self.sites), return_exceptions=True)
        self._recorder.shutdown(wait=False)

    async def __aenter__(self) -> Simulation:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
