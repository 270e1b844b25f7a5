"""Each camera's clock offset, measured while the daemon runs, for the clip manifests.

A manifest states the camera's clock offset (camera clock minus agent clock) so that a reader
can relate the time burned into the picture to the agent's timestamps. An offset measured once
by `rtcc-edge check`, weeks ago, says little about a camera whose clock drifts or was reset by
a power cut. So the daemon measures it again:

- every `interval` (ten minutes by default), and
- each time the camera's recorder starts recording again (a reconnect often follows a reboot,
  which is when a camera without NTP loses its time),

with ONVIF GetSystemDateAndTime (unauthenticated, as most cameras answer it; with the camera's
credentials when it insists), at the middle of the round trip. Each measurement goes into
`<state_dir>/camera-info.json` (`clock_offset_s`, `clock_measured`), where delivery reads it for
the manifest, which then says when the offset was measured. A camera known only by its RTSP URL
has no ONVIF service to ask: its offset stays whatever `check` measured, dated by the check.
A failed measurement is logged and the last good one kept (with its older date).

This module only watches the recorders' state board; it changes nothing in the recorders.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from agent.camera_info import remember_clock_offset
from agent.config import CameraConfig
from agent.log import get_logger
from agent.onvif import AuthFailed, ClockReading, OnvifError, system_date_and_time
from agent.recorder import StateBoard
from agent.recorder.state import CameraState
from agent.secretbox import SecretError, reveal

log = get_logger(__name__)

DEFAULT_INTERVAL = 600.0
CALL_TIMEOUT = 5.0
# Two triggers this close together (the daemon's start and the first recording) measure once.
MIN_SPACING = 5.0


class ClockWatch:
    """The daemon component measuring the clock offset of every camera with an `onvif_url`."""

    name = "clock_watch"

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        *,
        state_dir: Path,
        board: StateBoard | None = None,
        interval: float = DEFAULT_INTERVAL,
        within: float = CALL_TIMEOUT,
        min_spacing: float = MIN_SPACING,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cameras = {c.id: c for c in cameras if c.enabled and c.onvif_url is not None}
        self._state_dir = Path(state_dir)
        self._board = board
        self._interval = interval
        self._within = within
        self._min_spacing = min_spacing
        self._clock = clock
        self._wake = {camera: asyncio.Event() for camera in self._cameras}
        self._recording: dict[str, bool] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._remove_listener: Callable[[], None] | None = None
        self.measured = {camera: 0 for camera in self._cameras}  # how many, for tests

    async def start(self) -> None:
        if self._board is not None:
            self._recording = {c: s.online for c, s in self._board.snapshot().items()}
            self._remove_listener = self._board.add_listener(self._on_state)
        for camera in self._cameras:
            self._tasks.append(asyncio.create_task(self._watch(camera), name=f"clock-{camera}"))

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _on_state(self, state: CameraState) -> None:
        was = self._recording.get(state.camera, False)
        now = state.online
        self._recording[state.camera] = now
        if now and not was and state.camera in self._wake:
            self._wake[state.camera].set()  # (re)connected: the camera may have rebooted

    async def _watch(self, camera: str) -> None:
        last: float | None = None
        while True:
            if last is None or time.monotonic() - last >= self._min_spacing:
                last = time.monotonic()
                await self._measure_and_record(camera)
            wake = self._wake[camera]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._interval)
            wake.clear()

    async def _measure_and_record(self, camera: str) -> None:
        config = self._cameras[camera]
        try:
            reading = await self.measure(config)
        except OnvifError as exc:
            log.warning("camera_clock_unmeasured", camera=camera, error=str(exc))
            return
        except Exception:  # the watch must outlive any surprise from a camera's answer
            log.exception("camera_clock_failed", camera=camera)
            return
        if reading.offset is None:
            log.warning("camera_clock_unmeasured", camera=camera, error="no UTC time given")
            return
        measured = datetime.fromtimestamp(self._clock(), UTC)
        self.measured[camera] += 1
        try:
            await asyncio.to_thread(
                remember_clock_offset, self._state_dir, camera, reading.offset, measured=measured
            )
        except OSError as exc:
            log.error("camera_clock_not_saved", camera=camera, error=str(exc))
            return
        log.info(
            "camera_clock_measured",
            camera=camera,
            offset_s=round(reading.offset, 3),
            round_trip_s=round(reading.round_trip, 3),
            ntp=reading.ntp,
        )

    async def measure(self, camera: CameraConfig) -> ClockReading:
        """One GetSystemDateAndTime of `camera` (OnvifError if it cannot be had)."""
        assert camera.onvif_url is not None
        async with aiohttp.ClientSession() as session:
            try:
                return await system_date_and_time(session, camera.onvif_url, within=self._within)
            except AuthFailed:
                pass  # this camera tells the time to logged-in clients only
        return await self._with_credentials(camera)

    async def _with_credentials(self, camera: CameraConfig) -> ClockReading:
        # Imported here: the ONVIF library (zeep) costs memory the usual camera never needs.
        from agent.onvif import OnvifCamera

        assert camera.onvif_url is not None
        secret = camera.secret.get_secret_value() if camera.secret is not None else None
        try:
            password = reveal(secret, self._state_dir) or ""
        except SecretError as exc:
            raise AuthFailed(f"cannot decrypt the camera's password: {exc}") from exc
        async with OnvifCamera.from_url(
            camera.onvif_url,
            username=camera.username or "",
            password=password,
            timeout=self._within,
        ) as device:
            if device.clock is None or device.clock.offset is None:
                raise AuthFailed(device.clock_error or "the camera did not tell its time")
            return device.clock
