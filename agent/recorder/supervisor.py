"""The recorders' supervisor: one worker process per camera, watched from the daemon's loop.

Workers are forked by multiprocessing's *forkserver*: a fresh, single-threaded interpreter that
has already imported PyAV and the segment writer (`set_forkserver_preload`), so each worker
costs a few MB of private memory instead of a whole interpreter, and the asyncio daemon itself
is never forked. A crash or a hang inside libav takes down one worker; the supervisor restarts
it with backoff, within a restart budget (then it keeps retrying, slowly, as `failed`). Every
restart is logged with its cause (exit code or signal, watchdog, protocol error).

The watchdog: a worker reports at least once a second while packets arrive or while it waits;
silence for `watchdog_seconds` (a hung libav call or a hung disk) gets the worker killed and
restarted. A stalled or unreachable camera is not a crash: the worker deals with it (its reads
time out after `read_timeout`, well inside the watchdog's window) and never exits for it, so the
restart budget counts only workers that died or hung. A camera known only by its ONVIF address
that does not answer is a camera fault too: retried with the workers' backoff, not `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import multiprocessing
import multiprocessing.forkserver
import os
import random
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from agent.config import CameraConfig, StoreConfig
from agent.log import get_logger
from agent.media.source import SourceError, StreamSource, resolve_source
from agent.recorder.ipc import (
    InitSegment,
    LiveRequest,
    MediaFragment,
    StatusReport,
    StopRequest,
    encode_control,
    read_worker_message,
)
from agent.recorder.live import LiveHub
from agent.recorder.state import CameraState, RecorderStatus, StateBoard
from agent.recorder.worker import Backoff, WorkerSpec, worker_main

log = get_logger(__name__)

RECORDERS_LOCK = "recorders.lock"
_WORKER_MODULE = "agent.recorder.worker"


@dataclass(frozen=True)
class RecorderSettings:
    """Tuning of the recorders (defaults suit real cameras; tests shorten them)."""

    watchdog_seconds: float = 10.0  # no packet nor heartbeat for this long: kill, restart
    open_timeout: float = 5.0  # RTSP connect + DESCRIBE/SETUP/PLAY
    # No video for this long (at open or while streaming): the camera is stalled. libav's
    # socket timeout, so a worker blocked in a read still heartbeats well inside the watchdog's
    # window (it is capped at half of it).
    read_timeout: float = 5.0
    reconnect_initial: float = 1.0  # worker's backoff after losing the camera...
    reconnect_cap: float = 10.0  # ...at most this (it asks the camera in between, see probe.py)
    restart_initial: float = 0.5  # supervisor's backoff after a worker died
    restart_cap: float = 30.0
    restart_budget: int = 5  # restarts allowed per `restart_window`...
    restart_window: float = 600.0
    failed_retry: float = 300.0  # ...then one attempt this often
    offline_after: float = 30.0  # reconnecting this long shows as `offline`
    stop_grace: float = 10.0  # a stopping worker gets this long before SIGKILL
    status_interval: float = 2.0  # the heartbeat: five of them fit in the watchdog's window
    # A worker that has caught up with its camera lets packets gather this long before reading
    # them in one go (never past a fragment's due time): a third less CPU per camera.
    read_batch: float = 0.5


class RestartBudget:
    """At most `limit` restarts in any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    def record(self, now: float) -> None:
        self._trim(now)
        self._times.append(now)

    def recent(self, now: float) -> int:
        self._trim(now)
        return len(self._times)

    def exhausted(self, now: float) -> bool:
        return self.recent(now) >= self.limit


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


_PHASE_STATUS = {
    "connecting": RecorderStatus.CONNECTING,
    "recording": RecorderStatus.RECORDING,
    "reconnecting": RecorderStatus.RECONNECTING,
    "disk_full": RecorderStatus.DISK_FULL,
    "store_error": RecorderStatus.STORE_ERROR,
}


_RETRYING = (RecorderStatus.RECONNECTING, RecorderStatus.OFFLINE)


def worker_context() -> ForkServerContext:
    """The forkserver context every recorder worker is started from (PyAV preloaded)."""
    ctx = multiprocessing.get_context("forkserver")
    # "__main__" first: the server imports the main script once, so each worker does not.
    ctx.set_forkserver_preload(["__main__", _WORKER_MODULE])
    return ctx


def wait_for_old_workers(state_dir: Path, *, timeout: float) -> bool:
    """Wait until no worker of an earlier daemon still runs (each holds the recorders lock
    shared while alive); True if none does. Call before reconciling the store."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / RECORDERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
    finally:
        os.close(fd)


class _CameraRecorder:
    """Runs and re-runs one camera's worker."""

    def __init__(self, supervisor: Supervisor, camera: CameraConfig) -> None:
        self.sup = supervisor
        self.camera = camera
        self.id = camera.id
        self.budget = RestartBudget(
            supervisor.settings.restart_budget, supervisor.settings.restart_window
        )
        self.stopping = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.process: BaseProcess | None = None
        self.launches = 0
        self.bytes_base = 0  # bytes written by earlier workers of this camera
        self.last_report: StatusReport | None = None
        self.reported_bytes = 0  # by the current worker
        self.last_progress = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    @property
    def board(self) -> StateBoard:
        return self.sup.board

    def update(self, **changes: Any) -> CameraState:
        return self.board.update(self.id, **changes)

    async def run(self) -> None:
        settings = self.sup.settings
        unreachable = Backoff(settings.reconnect_initial, settings.reconnect_cap)
        while not self.stopping.is_set():
            try:
                source = await resolve_source(self.camera, state_dir=self.sup.state_dir)
            except SourceError as exc:
                log.error("recorder_source_failed", camera=self.id, error=str(exc))
                if exc.camera_fault:  # the camera did not answer: retry as for a lost stream
                    status = RecorderStatus.RECONNECTING
                    if self._offline_long_enough():
                        status = RecorderStatus.OFFLINE
                    self.update(status=status, last_error=str(exc), pid=None)
                    await self._sleep(unreachable.next())
                else:
                    self.update(status=RecorderStatus.FAILED, last_error=str(exc), pid=None)
                    await self._sleep(settings.failed_retry)
                continue
            unreachable.reset()
            cause = await self._run_worker(source)
            if self.stopping.is_set():
                break
            now = time.monotonic()
            self.budget.record(now)
            recent = self.budget.recent(now)
            state = self.board.get(self.id)
            if self.budget.exhausted(now):
                delay = settings.failed_retry
                status = RecorderStatus.FAILED
            else:
                ceiling = min(settings.restart_cap, settings.restart_initial * 2 ** (recent - 1))
                delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not crypto)
                status = RecorderStatus.RECONNECTING
            log.warning(
                "recorder_restart",
                camera=self.id,
                cause=cause,
                restarts=state.restarts + 1,
                recent=recent,
                delay=round(delay, 2),
                failed=status is RecorderStatus.FAILED,
            )
            self.update(
                status=status, last_exit=cause, restarts=state.restarts + 1, pid=None, segment=None
            )
            await self._sleep(delay)
        self.update(status=RecorderStatus.STOPPED, pid=None, segment=None)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _spec(self, source: StreamSource) -> WorkerSpec:
        sup, settings = self.sup, self.sup.settings
        return WorkerSpec(
            camera=self.id,
            source=source,
            store_root=sup.store_root,
            store=sup.store_config,
            lock_path=sup.state_dir / RECORDERS_LOCK,
            open_timeout=settings.open_timeout,
            # A read blocked longer than the watchdog's window would look like a hung worker.
            read_timeout=min(settings.read_timeout, settings.watchdog_seconds / 2),
            reconnect_initial=settings.reconnect_initial,
            reconnect_cap=settings.reconnect_cap,
            status_interval=settings.status_interval,
            read_batch=settings.read_batch,
            log_level=sup.log_level,
            log_format=sup.log_format,
        )

    async def _run_worker(self, source: StreamSource) -> str:
        """Start a worker, watch it until it exits; the cause of its end, for the log."""
        loop = asyncio.get_running_loop()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.launches += 1
        process = self.sup.context.Process(
            target=worker_main,
            args=(self._spec(source), child_sock),
            name=f"rtcc-edge recorder {self.id}",
        )
        try:
            await asyncio.to_thread(process.start)
        except OSError as exc:
            parent_sock.close()
            return f"could not start a worker: {exc}"
        finally:
            child_sock.close()
        self.process = process
        self.last_report = None
        self.last_progress = time.monotonic()
        self.update(status=RecorderStatus.STARTING, pid=process.pid)
        log.info("recorder_started", camera=self.id, pid=process.pid, url=source.display_url)
        reader, writer = await asyncio.open_unix_connection(sock=parent_sock)
        self.writer = writer
        if self.sup.live.wanted(self.id):
            writer.write(encode_control(LiveRequest(wanted=True)))
        exited: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(process.sentinel, on_exit)
        messages = asyncio.create_task(self._read(reader), name=f"recorder-ipc-{self.id}")
        stop_wait = asyncio.create_task(self.stopping.wait())
        cause: str | None = None
        closed_at: float | None = None  # when the worker closed its socket
        try:
            while not exited.done():
                waiting: list[asyncio.Future[Any]] = [exited, stop_wait]
                if not messages.done():
                    waiting.append(messages)
                await asyncio.wait(waiting, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    break
                if stop_wait.done():
                    await self._stop_worker(process, writer, exited)
                    break
                now = time.monotonic()
                if messages.done() and cause is None:
                    error = messages.exception()
                    if error is not None:
                        cause = f"protocol error: {error}"
                        self._kill(process)
                        continue
                    # A worker closes its socket only on its way out: give it time to exit.
                    closed_at = closed_at or now
                    if now - closed_at > self.sup.settings.stop_grace:
                        cause = "worker closed its socket but did not exit"
                        self._kill(process)
                    continue
                silent = now - self.last_progress
                if cause is None and silent > self.sup.settings.watchdog_seconds:
                    phase = self.last_report.phase if self.last_report else "starting"
                    cause = f"watchdog: no packet or heartbeat for {silent:.0f} s ({phase})"
                    log.warning("recorder_watchdog", camera=self.id, phase=phase, silent=silent)
                    self._kill(process)
                self._promote_offline()
        finally:
            loop.remove_reader(process.sentinel)
            stop_wait.cancel()
            messages.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await messages
            writer.close()
            self.writer = None
            self.process = None
            self.sup.live.interrupt(self.id)
            self.bytes_base += self.reported_bytes
            self.reported_bytes = 0
        await asyncio.to_thread(process.join, 5)
        exit_text = describe_exit(process.exitcode)
        clean = self.stopping.is_set() and process.exitcode == 0
        (log.info if clean else log.warning)(
            "recorder_exited", camera=self.id, pid=process.pid, exit=exit_text, cause=cause
        )
        process.close()
        return f"{cause} ({exit_text})" if cause else exit_text

    @staticmethod
    def _kill(process: BaseProcess) -> None:
        # is_alive() collects an exit already reported, so a reused pid is never signalled.
        if process.is_alive():
            process.kill()

    async def _stop_worker(
        self, process: BaseProcess, writer: asyncio.StreamWriter, exited: asyncio.Future[None]
    ) -> None:
        with contextlib.suppress(OSError):
            writer.write(encode_control(StopRequest()))
        try:
            await asyncio.wait_for(asyncio.shield(exited), self.sup.settings.stop_grace)
        except TimeoutError:
            log.warning("recorder_stop_timeout", camera=self.id, pid=process.pid)
            self._kill(process)
            await exited

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            message = await read_worker_message(reader)
            if message is None:
                return
            self.last_progress = time.monotonic()
            if isinstance(message, StatusReport):
                self._on_status(message)
            elif isinstance(message, InitSegment):
                self.sup.live.publish_init(
                    self.id, message.data, session=self.launches * 1_000_000 + message.epoch
                )
            elif isinstance(message, MediaFragment):
                self.sup.live.publish_fragment(
                    self.id,
                    message.data,
                    keyframe=message.keyframe,
                    wall_us=message.wall_us,
                    duration_us=message.duration_us,
                )

    def _on_status(self, report: StatusReport) -> None:
        previous = self.last_report
        self.last_report = report
        self.reported_bytes = report.bytes_written
        status = _PHASE_STATUS.get(report.phase)
        changes: dict[str, Any] = {
            "segment": report.segment,
            "bytes_written": self.bytes_base + report.bytes_written,
            "codec": report.codec,
            "width": report.width,
            "height": report.height,
        }
        if report.last_frame_us is not None:
            changes["last_frame"] = datetime.fromtimestamp(report.last_frame_us / 1e6, UTC)
        if report.error:
            changes["last_error"] = report.error
        current = self.board.get(self.id).status
        if status is RecorderStatus.CONNECTING and current in _RETRYING:
            status = None  # each retry of a lost camera is part of `reconnecting`/`offline`
        elif status is RecorderStatus.RECONNECTING and self._offline_long_enough():
            status = RecorderStatus.OFFLINE
        if status is not None:
            changes["status"] = status
        self.update(**changes)
        if previous is None or previous.phase != report.phase:
            log.info("recorder_phase", camera=self.id, phase=report.phase, error=report.error)
            if report.phase == "disk_full" and self.sup.on_disk_full is not None:
                self.sup.on_disk_full(self.id)

    def _offline_long_enough(self) -> bool:
        since = self.board.get(self.id).offline_since
        limit = timedelta(seconds=self.sup.settings.offline_after)
        return since is not None and datetime.now(UTC) - since >= limit

    def _promote_offline(self) -> None:
        """`reconnecting` for longer than `offline_after` shows as `offline`."""
        reconnecting = self.board.get(self.id).status is RecorderStatus.RECONNECTING
        if reconnecting and self._offline_long_enough():
            self.update(status=RecorderStatus.OFFLINE)

    def set_live(self, wanted: bool) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(encode_control(LiveRequest(wanted=wanted)))


# What a recorder's worker is made from: a change to any of these restarts it on reload.
RECORDING_FIELDS = ("onvif_url", "username", "rtsp_url", "stream", "channel", "enabled")


def recording_key(camera: CameraConfig) -> tuple[object, ...]:
    secret = camera.secret.get_secret_value() if camera.secret is not None else None
    return (*(getattr(camera, name) for name in RECORDING_FIELDS), secret)


@dataclass
class Reload:
    """What `Supervisor.apply` did, camera ids by outcome."""

    kept: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class Supervisor:
    """Starts, watches, restarts and stops the recorder workers of the configured cameras."""

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        *,
        state_dir: Path,
        store_root: Path,
        store_config: StoreConfig,
        settings: RecorderSettings | None = None,
        board: StateBoard | None = None,
        live: LiveHub | None = None,
        log_level: str = "info",
        log_format: str = "auto",
        on_disk_full: Callable[[str], None] | None = None,
    ) -> None:
        self.name = "recorders"
        enabled = [camera for camera in cameras if camera.enabled]
        ids = [camera.id for camera in enabled]
        self.state_dir = state_dir
        self.store_root = store_root
        self.store_config = store_config
        self.settings = settings or RecorderSettings()
        self.board = board or StateBoard(ids)
        self.live = live or LiveHub(ids)
        self.live.on_demand = self._on_live_demand
        self.log_level = log_level
        self.log_format = log_format
        self.on_disk_full = on_disk_full
        self.context = worker_context()
        self._recorders = {camera.id: _CameraRecorder(self, camera) for camera in enabled}
        self._started = False

    @property
    def cameras(self) -> list[str]:
        return list(self._recorders)

    def state(self, camera: str) -> CameraState:
        return self.board.get(camera)

    def worker_pid(self, camera: str) -> int | None:
        process = self._recorders[camera].process
        return process.pid if process is not None else None

    def _on_live_demand(self, camera: str, wanted: bool) -> None:
        recorder = self._recorders.get(camera)
        if recorder is not None:
            recorder.set_live(wanted)

    async def start(self) -> None:
        self._started = True
        if not self._recorders:
            log.info("recorders_none_configured")
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        await self._fork_server()
        for recorder in self._recorders.values():
            self._launch(recorder)

    async def _fork_server(self) -> None:
        # Start the fork server (a fresh interpreter importing PyAV) off the event loop.
        await asyncio.to_thread(multiprocessing.forkserver.ensure_running)

    async def apply(self, cameras: Sequence[CameraConfig]) -> Reload:
        """Adopt a new configuration's cameras (on reload) without a gap where nothing changed:
        a camera whose recording settings are the same keeps its worker (its other settings,
        name or sharing, are taken as they are); a changed one restarts, a removed one stops,
        an added one starts."""
        wanted = {camera.id: camera for camera in cameras if camera.enabled}
        result = Reload()
        for camera_id in [c for c in self._recorders if c not in wanted]:
            await self._stop_recorder(camera_id)
            self.board.remove_camera(camera_id)
            self.live.remove_camera(camera_id)
            result.removed.append(camera_id)
        for camera_id, camera in wanted.items():
            recorder = self._recorders.get(camera_id)
            if recorder is not None and recording_key(recorder.camera) == recording_key(camera):
                recorder.camera = camera
                result.kept.append(camera_id)
                continue
            if recorder is not None:
                await self._stop_recorder(camera_id)
                result.restarted.append(camera_id)
            else:
                self.board.add_camera(camera_id)
                self.live.add_camera(camera_id)
                result.added.append(camera_id)
            self._recorders[camera_id] = _CameraRecorder(self, camera)
            if self._started:
                self.state_dir.mkdir(parents=True, exist_ok=True)
                await self._fork_server()  # at once if it runs; the first camera starts it
                self._launch(self._recorders[camera_id])
        return result

    async def _stop_recorder(self, camera_id: str) -> None:
        recorder = self._recorders.pop(camera_id)
        recorder.stopping.set()
        if recorder.task is not None:
            await asyncio.gather(recorder.task, return_exceptions=True)

    def _launch(self, recorder: _CameraRecorder) -> None:
        recorder.task = asyncio.create_task(recorder.run(), name=f"recorder-{recorder.id}")

    async def stop(self) -> None:
        """Ask every worker to close its segment and exit; kill those that do not in time."""
        for recorder in self._recorders.values():
            recorder.stopping.set()
        tasks = [r.task for r in self._recorders.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.live.close()
