"""`rtcc-edge run`: the daemon composes the agent's subsystems and runs them until told to stop.

No logic lives here. The daemon builds components — each with a name, `start()` and `stop()` —
starts them in order, waits for SIGTERM/SIGINT, and stops them in reverse order:

    store        open the clip store, reconcile it with the files (report what was quarantined)
    retention    a retention pass every minute, and at once when a recorder hits a full disk
    state file   the recorders' state for `rtcc-edge status` in other processes
    recorders    one worker process per camera, supervised (agent.recorder)

Later subsystems plug in as further components, listed in `agent.daemon.components` (the
delivery and live handlers, then the link: MQTT session, request service, owner socket); each
factory gets the `Daemon` to find the store, the recorders' `StateBoard` and `LiveHub`, and
the `delivery` handlers the link dispatches requests to.

systemd: `ServiceNotifier` is the hook for the notify protocol (READY=1 once everything has
started, STATUS=..., WATCHDOG=1 while the loop is alive, STOPPING=1). Under systemd
(`$NOTIFY_SOCKET` set) it is `agent.daemon.notify.SystemdNotifier`, otherwise `NoNotifier`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from agent.config import AgentConfig, ConfigError, config_file_problems, load_config
from agent.control.reload import ReloadOutcome
from agent.daemon.notify import SystemdNotifier
from agent.daemon.signals import install_reload_handler, install_stop_handlers
from agent.link.delivery import DeliveryHandlers
from agent.log import get_logger
from agent.recorder import (
    LiveHub,
    RecorderSettings,
    StateBoard,
    StateFileWriter,
    Supervisor,
    state_file_path,
    wait_for_old_workers,
)
from agent.store import ClipStore, StoreError

log = get_logger(__name__)

DAEMON_LOCK = "daemon.lock"
RETENTION_INTERVAL = 60.0
COMPONENT_STOP_TIMEOUT = 30.0

_T = TypeVar("_T")


@runtime_checkable
class Component(Protocol):
    """Something the daemon starts and stops. `start` returns once it is running (a failure
    aborts the daemon's start); `stop` must not raise and should return within seconds."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ComponentFactory = Callable[["Daemon"], Component]


class ServiceNotifier(Protocol):
    """The systemd notify hook (sd_notify): READY=1, STATUS=…, WATCHDOG=1, STOPPING=1."""

    @property
    def watchdog_interval(self) -> float | None:
        """How often `watchdog()` must be called (None: no watchdog)."""
        ...

    def ready(self) -> None: ...

    def status(self, text: str) -> None: ...

    def watchdog(self) -> None: ...

    def stopping(self) -> None: ...


class NoNotifier:
    """Not under systemd (or not yet wired): every notification is dropped."""

    watchdog_interval: float | None = None

    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        pass


class DaemonError(Exception):
    """The daemon cannot start (message says why, for the owner)."""


class StoreService:
    """The daemon's own `ClipStore`, used from one dedicated thread (SQLite and file I/O stay
    off the event loop, on a single connection)."""

    name = "store"

    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._store: ClipStore | None = None

    @property
    def store(self) -> ClipStore:
        if self._store is None:
            raise RuntimeError("the store is not open")
        return self._store

    async def run(self, function: Callable[[ClipStore], _T]) -> _T:
        """Run `function(store)` on the store's thread."""
        store = self.store
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, store)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._store = await loop.run_in_executor(
                self._executor, ClipStore.from_config, self._config
            )
        except (StoreError, OSError) as exc:
            raise DaemonError(
                f"cannot open the clip store {self._config.store_path}: {exc}"
            ) from exc
        report = await self.run(ClipStore.reconcile)
        for name in report.recovered:
            log.warning("store_segment_recovered", segment=name)
        for item in report.quarantined:
            log.warning(
                "store_file_quarantined",
                original=item.original,
                moved_to=str(item.moved_to),
                reason=item.reason,
            )
        for name in report.missing:
            log.error("store_segment_missing", segment=name)
        for name in report.mismatched:
            log.error("store_segment_size_mismatch", segment=name)
        log.info(
            "store_opened",
            path=str(self._config.store_path),
            recovered=len(report.recovered),
            quarantined=len(report.quarantined),
            missing=len(report.missing),
            lost_bytes=report.lost_bytes,
        )

    async def stop(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, store.close)
        self._executor.shutdown(wait=True)


class RetentionLoop:
    """A retention pass every `interval` seconds, or sooner when `poke()`d."""

    name = "retention"

    def __init__(self, store: StoreService, *, interval: float = RETENTION_INTERVAL) -> None:
        self._store = store
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                report = await self._store.run(ClipStore.enforce_retention)
            except (StoreError, OSError) as exc:
                log.error("retention_failed", error=str(exc))
            else:
                if report.expired or report.over_budget:
                    log.info(
                        "retention_pass",
                        expired=len(report.expired),
                        freed=report.freed,
                        over_budget=report.over_budget,
                        held=report.held,
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()


class Daemon:
    """The composition of the agent's components for one configuration."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        recorder_settings: RecorderSettings | None = None,
        notifier: ServiceNotifier | None = None,
        extra_components: Sequence[ComponentFactory] = (),
        retention_interval: float = RETENTION_INTERVAL,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path  # read again on SIGHUP; None: reloading is refused
        self.notifier: ServiceNotifier = (
            notifier or SystemdNotifier.from_environment() or NoNotifier()
        )
        cameras = [c.id for c in config.cameras if c.enabled]
        # Delivery components (clips, snapshots, live) register their handlers here; the link
        # hands requests to them once started.
        self.delivery = DeliveryHandlers()
        self.board = StateBoard(cameras)
        self.live = LiveHub(cameras)
        self.store = StoreService(config)
        self.retention = RetentionLoop(self.store, interval=retention_interval)
        self.recorder_settings = recorder_settings or RecorderSettings()
        self.recorders = Supervisor(
            config.cameras,
            state_dir=config.state_dir,
            store_root=config.store_path,
            store_config=config.store,
            settings=self.recorder_settings,
            board=self.board,
            live=self.live,
            log_level=config.log.level,
            log_format=config.log.format,
            on_disk_full=lambda camera: self.retention.poke(),
        )
        self.components: list[Component] = [
            self.store,
            self.retention,
            # Before the recorders, so that it stops after them and writes their final state.
            StateFileWriter(self.board, state_file_path(config.state_dir)),
            self.recorders,
        ]
        self.components += [factory(self) for factory in extra_components]
        self._lock_fd: int | None = None
        self._reload_lock = asyncio.Lock()

    # -- the run ------------------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event | None = None) -> int:
        """Start everything, run until `stop` is set (by default: SIGTERM or SIGINT), stop
        everything. 0 after a clean stop; DaemonError if it could not start."""
        stop = stop or asyncio.Event()
        remove_handlers = install_stop_handlers(stop)
        reload = asyncio.Event()
        remove_reload = install_reload_handler(reload)  # from the start: SIGHUP never ends it
        reloader: asyncio.Task[None] | None = None
        started: list[Component] = []
        try:
            self._take_lock()
            await self._wait_for_old_workers()
            for component in self.components:
                log.info("component_starting", component=component.name)
                await component.start()
                started.append(component)
            self.notifier.ready()
            self.notifier.status(self._status_text())
            log.info("daemon_running", cameras=len(self.recorders.cameras), pid=os.getpid())
            reloader = asyncio.create_task(self._reload_loop(reload), name="reload")
            await self._wait(stop)
            return 0
        finally:
            if reloader is not None:
                reloader.cancel()
                await asyncio.gather(reloader, return_exceptions=True)
            self.notifier.stopping()
            for component in reversed(started):
                await self._stop(component)
            remove_handlers()
            remove_reload()
            self._release_lock()
            log.info("daemon_stopped")

    async def _wait(self, stop: asyncio.Event) -> None:
        """Until `stop`: keep the service manager's watchdog fed and its status line current."""
        changed = asyncio.Event()
        shown = self._status_text()

        def on_change(_: object) -> None:
            if self._status_text() != shown:
                changed.set()

        remove = self.board.add_listener(on_change)
        try:
            while not stop.is_set():
                stopping = asyncio.ensure_future(stop.wait())
                changing = asyncio.ensure_future(changed.wait())
                await asyncio.wait(
                    [stopping, changing],
                    timeout=self.notifier.watchdog_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stopping.cancel()
                changing.cancel()
                self.notifier.watchdog()
                if changed.is_set():
                    changed.clear()
                    shown = self._status_text()
                    self.notifier.status(shown)
        finally:
            remove()

    async def _reload_loop(self, reload: asyncio.Event) -> None:
        while True:
            await reload.wait()
            reload.clear()
            try:
                await self.reload()
            except Exception:  # a reload's failure must not end the daemon
                log.exception("config_reload_failed")

    async def reload(self) -> ReloadOutcome:
        """Read the configuration file again and apply its cameras (`Supervisor.apply`:
        unchanged recorders keep recording). A configuration that is not valid is refused
        with a sentence in the log (and in the outcome), and the one in use stays. SIGHUP and
        the control socket's `reload` come here; one reload at a time."""
        async with self._reload_lock:
            return await self._reload()

    async def _reload(self) -> ReloadOutcome:
        path = self.config_path
        if path is None:
            reason = "this daemon was not started from a file"
            log.warning("config_reload_refused", reason=reason)
            return ReloadOutcome(False, reason)
        try:
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            reason = f"the configuration {path} is not valid, so the one in use stays: {problems}"
            log.error("config_reload_refused", reason=reason)
            return ReloadOutcome(False, reason)
        errors = [p for p in config_file_problems(new) if p.severity == "error"]
        if errors:
            problems = "; ".join(f"{p.field}: {p.message}" for p in errors)
            reason = (
                f"the configuration {path} names files that cannot be used, so the one "
                f"in use stays: {problems}"
            )
            log.error("config_reload_refused", reason=reason)
            return ReloadOutcome(False, reason)
        self.notifier.status("reloading the configuration")
        result = await self.recorders.apply(new.cameras)
        others = [
            name
            for name in type(new).model_fields
            if name != "cameras" and getattr(new, name) != getattr(self.config, name)
        ]
        self.config = new
        log.info(
            "config_reloaded",
            kept=result.kept,
            restarted=result.restarted,
            added=result.added,
            removed=result.removed,
        )
        if others:
            log.warning(
                "config_reload_partial",
                reason="these settings take effect at the next restart "
                "(`sudo systemctl restart rtcc-edge`): " + ", ".join(others),
            )
        self.notifier.status(self._status_text())
        return ReloadOutcome(
            True,
            kept=result.kept,
            restarted=result.restarted,
            added=result.added,
            removed=result.removed,
            later=others,
            cameras=[
                camera.model_dump(mode="json", include={"id", "name", "enabled", "location"})
                for camera in new.cameras
            ],
        )

    def _status_text(self) -> str:
        states = self.board.snapshot().values()
        recording = sum(1 for s in states if s.online)
        return f"recording {recording} of {len(states)} cameras"

    async def _stop(self, component: Component) -> None:
        log.info("component_stopping", component=component.name)
        try:
            await asyncio.wait_for(component.stop(), COMPONENT_STOP_TIMEOUT)
        except TimeoutError:
            log.error("component_stop_timeout", component=component.name)
        except Exception:  # one component's failure must not keep the others running
            log.exception("component_stop_failed", component=component.name)

    # -- one daemon per state directory ----------------------------------------------------------

    def _take_lock(self) -> None:
        state_dir = self.config.state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(state_dir / DAEMON_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DaemonError(f"cannot use the state directory {state_dir}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonError(
                f"another rtcc-edge daemon is running with state directory {state_dir}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _wait_for_old_workers(self) -> None:
        # Recorders of a daemon that was killed close their segments and exit on their own
        # (within their SIGTERM deadline); reconciling before that would race them.
        timeout = self.recorder_settings.read_timeout + self.recorder_settings.stop_grace
        if not await asyncio.to_thread(
            wait_for_old_workers, self.config.state_dir, timeout=timeout
        ):
            raise DaemonError(
                f"recorder processes of an earlier daemon still hold "
                f"{Path(self.config.state_dir) / 'recorders.lock'}"
            )


async def run_daemon(config: AgentConfig, **options: Any) -> int:
    """Run the daemon for `config` until SIGTERM/SIGINT (the `rtcc-edge run` body), with the
    components of `agent.daemon.components` unless `extra_components` says otherwise."""
    from agent.daemon.components import default_components

    options.setdefault("extra_components", default_components())
    return await Daemon(config, **options).run()
