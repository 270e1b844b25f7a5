"""Per-camera recorder state, shared with the rest of the agent, and the daemon's link state.

The supervisor is the only writer of the cameras' state; the link component the only writer of
`link` (whether the daemon reaches its RTCC). Readers in the daemon (status and registry
messages, the live tunnel) take a `snapshot()` or register a listener; readers in other
processes (`rtcc-edge store status`) read the JSON file the daemon keeps current with
`StateFileWriter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.fsutil import atomic_write
from agent.log import get_logger

log = get_logger(__name__)

STATE_FILE = "recorders.json"


class RecorderStatus(StrEnum):
    STARTING = "starting"  # worker process launched, nothing heard yet
    CONNECTING = "connecting"  # opening the camera's stream
    RECORDING = "recording"
    RECONNECTING = "reconnecting"  # lost or refused; retrying with backoff
    OFFLINE = "offline"  # reconnecting for longer than `offline_after`
    DISK_FULL = "disk_full"  # the store's disk is full; retrying as space returns
    STORE_ERROR = "store_error"  # the store refused writes for another reason (EIO, ...)
    FAILED = "failed"  # restart budget spent; retrying slowly
    STOPPED = "stopped"


# Statuses in which nothing from the camera reaches the disk.
_NOT_RECORDING = {
    RecorderStatus.RECONNECTING,
    RecorderStatus.OFFLINE,
    RecorderStatus.DISK_FULL,
    RecorderStatus.STORE_ERROR,
    RecorderStatus.FAILED,
}


class LinkState(StrEnum):
    """The daemon's connection to its RTCC's broker, as the owner reads it."""

    NOT_ENROLLED = "not_enrolled"  # no `rtcc.broker_url`: recording only, no requests
    CONNECTING = "connecting"  # enrolled; (re)connecting to the broker
    CONNECTED = "connected"


class LinkInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state: LinkState = LinkState.NOT_ENROLLED
    since: datetime | None = None
    broker: str | None = None


class CameraState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: str
    status: RecorderStatus
    since: datetime
    offline_since: datetime | None = None
    last_error: str | None = None
    restarts: int = 0
    last_exit: str | None = None
    segment: str | None = None
    bytes_written: int = 0
    last_frame: datetime | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    pid: int | None = None

    @property
    def online(self) -> bool:
        return self.status is RecorderStatus.RECORDING


StateListener = Callable[[CameraState], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


class StateBoard:
    """Current state of every configured camera's recorder."""

    def __init__(self, cameras: Iterable[str], *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        now = clock()
        self._states = {
            camera: CameraState(camera=camera, status=RecorderStatus.STOPPED, since=now)
            for camera in cameras
        }
        self._listeners: list[StateListener] = []
        self._link = LinkInfo(since=now)
        self._version = 0
        self._changed = asyncio.Event()

    def get(self, camera: str) -> CameraState:
        return self._states[camera]

    def snapshot(self) -> dict[str, CameraState]:
        return dict(self._states)

    def update(self, camera: str, **changes: Any) -> CameraState:
        """Apply `changes`; keep `since` and `offline_since` consistent with the status."""
        old = self._states[camera]
        status = changes.get("status", old.status)
        if status is not old.status:
            now = self._clock()
            changes["since"] = now
            if status is RecorderStatus.RECORDING:
                changes["offline_since"] = None
            elif status in _NOT_RECORDING and old.offline_since is None:
                changes["offline_since"] = now
        new = old.model_copy(update=changes)
        if new == old:
            return old
        self._states[camera] = new
        for listener in list(self._listeners):
            try:
                listener(new)
            except Exception:  # a listener's bug must not stop the recorders' bookkeeping
                log.exception("state_listener_failed", camera=camera)
        self._version += 1
        self._changed.set()
        return new

    def add_camera(self, camera: str) -> None:
        """A camera the configuration gained (on reload); stopped until its recorder starts."""
        if camera not in self._states:
            self._states[camera] = CameraState(
                camera=camera, status=RecorderStatus.STOPPED, since=self._clock()
            )
            self._version += 1
            self._changed.set()

    def remove_camera(self, camera: str) -> None:
        """A camera the configuration lost (on reload), once its recorder has stopped."""
        if self._states.pop(camera, None) is not None:
            self._version += 1
            self._changed.set()

    @property
    def link(self) -> LinkInfo:
        return self._link

    def set_link(self, state: LinkState, *, broker: str | None = None) -> None:
        """Record the link's state (its listeners are the state file's writer only)."""
        if state is self._link.state and broker == self._link.broker:
            return
        self._link = LinkInfo(state=state, since=self._clock(), broker=broker)
        self._version += 1
        self._changed.set()

    def add_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call `listener(state)` after every change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def version(self) -> int:
        """Bumped on every change; pass it to `wait_changed` to miss none."""
        return self._version

    async def wait_changed(self, seen: int) -> int:
        """Wait until some camera's state has changed since version `seen`; the new version."""
        while self._version == seen:
            self._changed.clear()
            await self._changed.wait()
        return self._version


class StateFile(BaseModel):
    """The state file other processes read: who wrote it, when, and every camera's state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    written_at: datetime
    cameras: dict[str, CameraState]
    link: LinkInfo = LinkInfo()

    def daemon_running(self) -> bool:
        """Whether the process that wrote this file still exists."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def write_state_file(path: Path, board: StateBoard) -> None:
    data = StateFile(
        pid=os.getpid(), written_at=utc_now(), cameras=board.snapshot(), link=board.link
    )
    # Rewritten every few seconds from the event loop: not worth an fsync (see agent.fsutil).
    atomic_write(path, data.model_dump_json(indent=1), mode=0o644, durable=False)


def state_file_path(state_dir: Path) -> Path:
    """Where the daemon keeps the recorders' state for other processes."""
    return state_dir / STATE_FILE


def read_state_file(path: Path) -> StateFile | None:
    """The last state the daemon wrote, or None if there is none (or it is unreadable)."""
    try:
        return StateFile.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, json.JSONDecodeError) as exc:
        log.warning("state_file_unreadable", path=str(path), error=str(exc))
        return None


class StateFileWriter:
    """Keeps `<state_dir>/recorders.json` current for other processes: within `interval` of a
    change of any camera's status, and every `refresh` seconds for the counters (bytes, last
    frame) that change all the time."""

    def __init__(
        self, board: StateBoard, path: Path, *, interval: float = 1.0, refresh: float = 10.0
    ) -> None:
        self.name = "recorder-state-file"
        self._board = board
        self._path = path
        self._interval = interval
        self._refresh = refresh
        self._task: asyncio.Task[None] | None = None
        self._written: tuple[dict[str, RecorderStatus], LinkState] = ({}, LinkState.NOT_ENROLLED)

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._write()

    def _statuses(self) -> tuple[dict[str, RecorderStatus], LinkState]:
        cameras = {camera: state.status for camera, state in self._board.snapshot().items()}
        return cameras, self._board.link.state

    def _write(self) -> None:
        self._written = self._statuses()
        try:
            write_state_file(self._path, self._board)
        except OSError as exc:
            log.warning("state_file_write_failed", path=str(self._path), error=str(exc))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        seen = self._board.version
        due = loop.time() + self._refresh
        while True:
            with contextlib.suppress(TimeoutError):
                seen = await asyncio.wait_for(
                    self._board.wait_changed(seen), max(0.0, due - loop.time())
                )
            if self._statuses() != self._written or loop.time() >= due:
                self._write()
                due = loop.time() + self._refresh
                await asyncio.sleep(self._interval)
