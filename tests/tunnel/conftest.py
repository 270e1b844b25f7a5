"""A site with live view, for the tunnel tests: real camsim cameras recorded by real recorder
workers into a real clip store, the real request service (ledger, policy) with the tunnel as its
`stream` handler, and the hub's real relay over HTTPS on loopback. Only MQTT is left out (the
service's events go to a `RecordingSink`); tests/e2e/test_live.py runs the whole chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.ledger import read_entries
from agent.link import DeliveryHandlers
from agent.media import fmp4
from agent.recorder import LiveHub, RecorderSettings, RecorderStatus, Supervisor
from agent.store import ClipResult, ClipStore
from agent.tunnel import LiveSources, TunnelManager, TunnelSettings
from agent.wire import Event
from camsim.sei import FrameStamp, stamps_in_file
from hub.relay_sessions import MintedSession
from tests.support.camsim import CamsimRun, camera, run_camsim  # noqa: F401
from tests.support.ffprobe import ffprobe
from tests.support.link_service import Site, running_service
from tests.support.relay import RunningRelay, running_relay
from tests.support.rtcc import ISSUER, RTCC, SITE, jti_of, make_request

FPS = 15
GOP = 15
CAMERA = "front-door"

FAST = RecorderSettings(
    watchdog_seconds=4.0,
    open_timeout=3.0,
    read_timeout=8.0,
    reconnect_initial=0.3,
    reconnect_cap=1.5,
    restart_initial=0.2,
    restart_cap=1.0,
    offline_after=3.0,
    stop_grace=8.0,
)
QUICK = TunnelSettings(max_queue_bytes=2 * 1024 * 1024, first_video_timeout=10, stall_timeout=4)


def live_camera(persona: str = "generic", **fields: Any) -> dict[str, Any]:
    """A camsim camera at 320x240, 15 fps, a keyframe a second (sub stream 176x144)."""
    streams = {
        "main": {"width": 320, "height": 240, "fps": FPS, "gop": GOP, "bitrate": 400_000},
        "sub": {"width": 176, "height": 144, "fps": FPS, "gop": GOP, "bitrate": 150_000},
    }
    return camera(persona, **{**streams, **fields})


def site_config(
    state_dir: Path, cams: CamsimRun, *, onvif: bool = False, **policy: Any
) -> AgentConfig:
    """The camera by its RTSP URL, or (`onvif`) by its ONVIF address only."""
    state_dir.mkdir(parents=True, exist_ok=True)
    jwks = RTCC.write_jwks(state_dir / "rtcc-jwks.json")
    cam = cams[0]
    where = {"onvif_url": cam.onvif_url} if onvif else {"rtsp_url": cam.rtsp_url("main")}
    return AgentConfig(
        state_dir=state_dir,
        site={"id": SITE, "name": "Corner Grocery"},
        rtcc={"issuer": ISSUER, "jwks_file": str(jwks), "clock_leeway": "30s"},
        store={"segment_seconds": 10, "fragment_seconds": 1.0, "min_free": 0},
        cameras=[
            {
                "id": CAMERA,
                "name": "Front door",
                **where,
                "username": cam.username,
                "secret": cam.password,
                "sharing": "integrated",
                "live": True,
                "location": {"lat": 35.0844, "lon": -106.6504},
            }
        ],
        policy={"allowed_relay_hosts": ["127.0.0.1", "localhost"], **policy},
        control={"socket": str(state_dir / "control.sock")},
    )


@dataclass
class LiveSite:
    config: AgentConfig
    cams: CamsimRun
    supervisor: Supervisor
    store: ClipStore
    site: Site
    manager: TunnelManager
    relay: RunningRelay
    minted: MintedSession | None = None  # the relay session of the last request_stream

    @property
    def events(self) -> Any:
        return self.site.sink

    async def request_stream(
        self,
        *,
        max_seconds: int = 30,
        url: str | None = None,
        token: str | None = None,
        **claims: Any,
    ) -> str:
        """Mint a relay session, send a signed stream request for it; the request id."""
        minted = self.minted = self.relay.mint(camera=CAMERA)
        relay = {"url": url or minted.ingest_url, "token": token or minted.publisher_token}
        payload = make_request("stream", relay=relay, max_seconds=max_seconds, **claims)
        jti = jti_of(payload)
        await self.site.service.handle(payload)
        return jti

    async def wait_for(self, jti: str, state: str, *, within: float = 30.0) -> Event:
        return await self.site.sink.wait_for(jti, state, within=within)

    def ledger(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in read_entries(self.config.state_dir / "ledger") if e.kind == kind]

    def largest_fragment(self, start: datetime, end: datetime) -> int:
        """The largest fragment recorded in [start, end]: the very fragments the fan-out offers."""
        largest = 0
        for row in self.store.segments(CAMERA, start, end):
            with self.store.layout.segment(row.path).open("rb") as handle:
                scan = fmp4.scan_file(handle)
            largest = max([largest, *(fragment.size for fragment in scan.fragments)])
        return largest

    async def check_recording(self, start: datetime, end: datetime, dest: Path) -> ClipResult:
        """The recording over [start, end]: no gap in the index, every frame in the export."""
        result = await asyncio.to_thread(self.store.extract, CAMERA, start, end, dest)
        assert result.gaps == (), result.gaps
        await asyncio.to_thread(ffprobe, dest)
        stamps: list[FrameStamp] = await asyncio.to_thread(stamps_in_file, str(dest))
        numbers = [s.frame_number for s in stamps]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "frames lost"
        assert stamps[-1].capture_time - stamps[0].capture_time >= (end - start).total_seconds() - 2
        return result


async def wait_until(predicate: Callable[[], bool], within: float, *, what: str) -> None:
    """A functional timeout, not a timing assertion."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def live_site(
    tmp_path: Path,
    cams: CamsimRun,
    *,
    settings: TunnelSettings = QUICK,
    ca_files: list[Path] | None = None,
    onvif: bool = False,
    **policy: Any,
) -> AsyncIterator[LiveSite]:
    config = site_config(tmp_path / "state", cams, onvif=onvif, **policy)
    ids = [c.id for c in config.cameras]
    live = LiveHub(ids)
    supervisor = Supervisor(
        config.cameras,
        state_dir=config.state_dir,
        store_root=config.store_path,
        store_config=config.store,
        settings=FAST,
        live=live,
        log_format="console",
    )
    store = ClipStore.from_config(config)
    async with running_relay(tmp_path / "hub") as relay:
        manager = TunnelManager(
            LiveSources(live, config.cameras, state_dir=config.state_dir, log_format="console"),
            allowed_relay_hosts=config.policy.allowed_relay_hosts,
            ca_files=[relay.ca_file] if ca_files is None else ca_files,
            settings=settings,
        )
        await supervisor.start()
        try:
            async with running_service(config, handlers=DeliveryHandlers(stream=manager)) as site:
                await wait_until(
                    lambda: supervisor.state(CAMERA).status is RecorderStatus.RECORDING,
                    60,
                    what="recording",
                )
                yield LiveSite(config, cams, supervisor, store, site, manager, relay)
                await manager.close()
        finally:
            await supervisor.stop()
            store.close()


@pytest.fixture
def cams(run_camsim: Callable[..., CamsimRun]) -> CamsimRun:  # noqa: F811
    return run_camsim(live_camera())
