"""The link as a daemon component: MQTT session + request service + owner control socket.

It is composed here, not in `agent.link`, because it needs what only the daemon has: the
recorders' state (which cameras are online), the store (footage held, holds), and the delivery
handlers other components register. Without `rtcc.broker_url` the site is not enrolled: the
component logs that, and the agent records without taking requests; the owner control socket
still answers `status` (the recorders' state, the footage held, the link: not enrolled).

The link's state (not enrolled / connecting / connected) is kept on the recorders' `StateBoard`,
so the state file other processes read (`rtcc-edge store status`) carries it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.camera_info import CameraFacts as CheckedFacts
from agent.camera_info import read_all_camera_facts
from agent.clock import clock_sync
from agent.control import ControlServer, ControlServerError
from agent.control.pictures import Pictures
from agent.control.preview import PREVIEW_DIR, Previews
from agent.daemon.app import DaemonError
from agent.identity import DeviceKey, device_key_path
from agent.ledger import LedgerError
from agent.link import MqttSession, RequestService
from agent.link.compose import Link
from agent.link.delivery import DeliveryHandlers
from agent.link.verify import JwksError
from agent.log import get_logger
from agent.notify.fanout import Notifiers
from agent.policy import CameraFacts
from agent.policy.state import OwnerStateError
from agent.recent import Recent
from agent.recorder import CameraState
from agent.recorder.overview import camera_overview
from agent.recorder.state import LinkState
from agent.store import ClipStore
from agent.store.model import CameraStatus
from agent.wire.registry import SiteInfo

if TYPE_CHECKING:
    from agent.daemon.app import Daemon

log = get_logger(__name__)

FOOTAGE_FRESH = 5.0  # seconds the overview may show the footage held as last summed

OUTBOX_FILE = "outbox.db"
PICTURES_TEMP = "picture-tmp"


class LinkComponent:
    """Started after the recorders (so their state is known) and stopped before them."""

    name = "link"

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._config = daemon.config
        self._started_at = time.monotonic()
        self._session: MqttSession | None = None
        self._service: RequestService | None = None
        self._control: ControlServer | None = None
        self._holds: ClipStore | None = None
        # Summing every segment of a month-old store takes the better part of a second and the
        # days held barely move in a few seconds: the owner's overview shows the last sum.
        self._footage = Recent(self._sum_footage, fresh_for=FOOTAGE_FRESH)
        self._checked: dict[str, CheckedFacts] = {}
        self._online: frozenset[str] = frozenset()
        self._remove_listener: Any = None
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def handlers(self) -> DeliveryHandlers:
        """Where delivery components register their handlers before the link starts."""
        return self._daemon.delivery

    @property
    def service(self) -> RequestService | None:
        return self._service

    @property
    def session(self) -> MqttSession | None:
        return self._session

    async def start(self) -> None:
        config = self._config
        if config.rtcc.broker_url is None:
            log.warning(
                "link_disabled", reason="rtcc.broker_url is not set (not enrolled): recording only"
            )
            self._daemon.board.set_link(LinkState.NOT_ENROLLED)
            control = ControlServer(
                config.control.socket,
                None,
                overview=self.overview,
                owner_group=config.control.owner_group,
                pictures=self._pictures(),
                state_dir=config.state_dir,
                reload=self._daemon.reload,
            )
            try:
                await control.start()
            except ControlServerError as exc:
                # Only `status` is served without enrollment: never a reason not to record.
                log.warning("control_unavailable", error=str(exc))
            else:
                self._control = control
            return
        key = DeviceKey.load_or_create(device_key_path(config.state_dir))
        # The daemon's store lives on its own thread; holds are placed from the event loop, so
        # the link keeps a connection of its own to the same index (SQLite WAL allows it).
        self._holds = ClipStore.from_config(config)
        try:
            link = Link(
                config,
                device_key=key,
                holds=self._holds,
                registry=self._registry,
                status=self._status,
                handlers=self.handlers,
                notifier=Notifiers.from_config(config, device_key=key),
                outbox_path=config.state_dir / OUTBOX_FILE,
            )
        except (JwksError, OwnerStateError, LedgerError, sqlite3.Error) as exc:
            # Each names its file: a sentence for the owner, not a traceback in a restart loop.
            self._holds.close()
            self._holds = None
            raise DaemonError(f"cannot take requests: {exc}") from exc
        self._session, self._service = link.session, link.service
        await self._refresh_footage()
        await link.service.start()
        self._control = ControlServer(
            config.control.socket,
            link.service,
            overview=self.overview,
            owner_group=config.control.owner_group,
            pictures=self._pictures(),
            state_dir=config.state_dir,
            previews=Previews(link.service, self._daemon.store, config.state_dir / PREVIEW_DIR),
            reload=self._daemon.reload,
        )
        await self._control.start()
        self._online = self._online_cameras()
        self._remove_listener = self._daemon.board.add_listener(self._on_camera_state)
        self._daemon.board.set_link(LinkState.CONNECTING, broker=self._broker())
        await link.session.start()
        self._watch_task = asyncio.create_task(self._watch_link(link.session), name="link-state")
        log.info("link_started", site=config.site.id, broker=config.rtcc.broker_url)

    async def stop(self) -> None:
        await self._footage.close()  # the store closes after the link: no sum may outlive it
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._control is not None:
            await self._control.close()
            self._control = None
        if self._session is not None:
            await self._session.stop()
            self._session = None
        if self._service is not None:
            await self._service.close()
            self._service = None
        if self._holds is not None:
            self._holds.close()
            self._holds = None

    # -- what the owner sees: the link and each camera's recording -----------------------------

    def _pictures(self) -> Pictures:
        """The Cameras page's pictures, from the daemon's store; the cameras as configured now
        (a reload may add or remove some)."""
        daemon = self._daemon
        return Pictures(
            daemon.store,
            daemon.config.state_dir / PICTURES_TEMP,
            cameras=lambda: [camera.id for camera in daemon.config.cameras],
        )

    def _broker(self) -> str | None:
        # host:port only: a broker URL may carry a password.
        session = self._session
        return f"{session.broker.host}:{session.broker.port}" if session is not None else None

    async def _watch_link(self, session: MqttSession) -> None:
        board, broker = self._daemon.board, self._broker()
        while True:
            await session.wait_connected()
            board.set_link(LinkState.CONNECTED, broker=broker)
            await session.wait_disconnected()
            board.set_link(LinkState.CONNECTING, broker=broker)

    async def overview(self) -> dict[str, Any]:
        """The control socket's `status` beyond requests: the daemon, its link, each camera."""
        await self._recent_footage()
        board = self._daemon.board
        rows = camera_overview(
            self._daemon.recorders.cameras,
            board.snapshot(),
            self._held(),
            bar=self._config.compat.min_retention,
        )
        checked = await asyncio.to_thread(read_all_camera_facts, self._config.state_dir)
        return {
            "site": self._config.site.id,
            "pid": os.getpid(),
            "timezone": self._config.site.timezone,
            "link": board.link.model_dump(mode="json"),
            "recorders": [row.model_dump(mode="json") for row in rows],
            "checks": {
                camera.id: _check_json(checked.get(camera.id)) for camera in self._config.cameras
            },
            "disk": self._disk(),
        }

    def _disk(self) -> dict[str, Any]:
        """The store's disk as the owner cares about it. A store at its budget is the normal
        rolling state; `filling` is the disk running out before the budget is reached (something
        else fills it), so footage would be deleted sooner than the budget promises."""
        store = self._config.store
        used = sum(s.bytes for s in self._held().values())
        try:
            fs = os.statvfs(self._config.store_path)
        except OSError:
            return {"readable": False, "used": used, "budget": int(store.max_bytes)}
        free, total = fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize
        return {
            "readable": True,
            "used": used,
            "budget": int(store.max_bytes),
            "free": free,
            "total": total,
            "min_free": int(store.min_free),
            "filling": free < 2 * int(store.min_free) and used < int(store.max_bytes),
        }

    # -- presence: what the registry and the status messages say ------------------------------

    def _online_cameras(self) -> frozenset[str]:
        return frozenset(c for c, s in self._daemon.board.snapshot().items() if s.online)

    def _on_camera_state(self, _state: CameraState) -> None:
        online = self._online_cameras()
        if online != self._online and self._session is not None:
            # A camera going on- or offline changes the registry the RTCC's map shows.
            self._online = online
            self._session.presence_changed()

    async def _sum_footage(self) -> dict[str, CameraStatus]:
        statuses = await self._daemon.store.run(ClipStore.status)
        return {s.camera: s for s in statuses}

    def _held(self) -> dict[str, CameraStatus]:
        """The footage each camera holds, as last summed (empty before the first sum)."""
        return self._footage.value or {}

    async def _refresh_footage(self) -> None:
        with contextlib.suppress(Exception):  # footage hours are a nicety, never a blocker
            await self._footage.refresh()

    async def _recent_footage(self) -> None:
        with contextlib.suppress(Exception):
            await self._footage.get()

    def _facts(self, camera: str) -> CameraFacts:
        state = self._daemon.board.snapshot().get(camera)
        footage = self._held().get(camera)
        checked = self._checked.get(camera)
        return CameraFacts(
            online=bool(state and state.online),
            footage_hours=round(footage.hours, 2) if footage else 0.0,
            verdict=checked.verdict if checked else "unknown",
            vendor=checked.vendor if checked else None,
            model=checked.model if checked else None,
            firmware=checked.firmware if checked else None,
        )

    async def _registry(self) -> dict[str, Any]:
        await self._refresh_footage()
        # Verdicts come from the owner's or technician's last `check`/`doctor` of each camera.
        self._checked = await asyncio.to_thread(read_all_camera_facts, self._config.state_dir)
        site = self._config.site
        listings = self._service.policy.listings(self._facts) if self._service else []
        return {
            "site": SiteInfo(
                id=site.id, name=site.name, address=site.address, contact=site.contact
            ).model_dump(),
            "cameras": [listing.model_dump(mode="json") for listing in listings],
        }

    async def _status(self) -> dict[str, Any]:
        states = self._daemon.board.snapshot()
        store_bytes = sum(s.bytes for s in self._held().values())
        try:
            fs = os.statvfs(self._config.store_path)
            disk_free = fs.f_bavail * fs.f_frsize
        except OSError:
            disk_free = 0
        sync = clock_sync()
        fields: dict[str, Any] = {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started_at, 1),
            "cameras_online": sum(1 for s in states.values() if s.online),
            "cameras_total": len(states),
            "store": {
                "bytes_used": store_bytes,
                "bytes_budget": int(self._config.store.max_bytes),
                "disk_free": disk_free,
            },
            "clock": {"synchronized": sync.synchronized, "source": sync.source},
        }
        if self._service is not None:
            paused_until = self._service.policy.paused_until
            if paused_until is not None:
                fields["paused_until"] = int(paused_until.timestamp())
            head = self._service.ledger_head
            fields["ledger_seq"] = head.seq
            fields["ledger_hash"] = head.hash
        return fields


def link_component(daemon: Daemon) -> LinkComponent:
    return LinkComponent(daemon)


def _check_json(facts: CheckedFacts | None) -> dict[str, Any]:
    """The last compatibility check of one camera for the owner: verdict and what to do."""
    if facts is None:
        return {"verdict": "unknown", "advice": [], "checked": None}
    return {
        "verdict": facts.verdict,
        "advice": list(facts.advice),
        "checked": facts.checked.isoformat() if facts.checked else None,
    }
