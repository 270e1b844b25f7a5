"""A current picture of each camera for the owner's Cameras page, made by the daemon (which
holds the store) and given over the control socket (`picture`): the newest recorded frame, cut
from the store and encoded as a JPEG (the snapshot delivery's own `nearest_still`).

A picture is kept for `MAX_AGE` seconds, so a page reloaded on a phone costs nothing more; and
nothing is decoded while nobody looks at the page.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import av

from agent.delivery.snapshot import nearest_still, newest_footage
from agent.log import get_logger
from agent.store import ClipStore, StoreError

log = get_logger(__name__)

MAX_AGE = 10.0
WINDOW = timedelta(seconds=2)  # cut this much before the newest frame: one keyframe at least

_T = TypeVar("_T")


class StoreRunner(Protocol):
    """How to use the store: the daemon's store thread (`agent.daemon.app.StoreService`)."""

    async def run(self, function: Callable[[ClipStore], _T]) -> _T: ...


class Pictures:
    def __init__(
        self,
        store: StoreRunner,
        temp_dir: Path,
        *,
        cameras: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        """`cameras`: the camera ids there may be pictures of (default: any the store has)."""
        self._store = store
        self._temp_dir = temp_dir
        self._cameras = cameras
        self._kept: dict[str, tuple[float, bytes | None]] = {}
        self._lock = asyncio.Lock()

    def known(self, camera: str) -> bool:
        return self._cameras is None or camera in set(self._cameras())

    async def latest(self, camera: str) -> bytes | None:
        """The newest frame of `camera` as a JPEG; None when the store holds none recently."""
        async with self._lock:  # one decode at a time: a phone's reloads never pile up
            kept = self._kept.get(camera)
            if kept is not None and time.monotonic() - kept[0] < MAX_AGE:
                return kept[1]
            picture = await self._make(camera)
            self._kept[camera] = (time.monotonic(), picture)
            return picture

    async def _make(self, camera: str) -> bytes | None:
        now = datetime.now(UTC)
        newest = await self._store.run(lambda store: newest_footage(store, camera, now))
        if newest is None:
            return None
        self._temp_dir.mkdir(parents=True, exist_ok=True)
        path = self._temp_dir / f"picture-{uuid.uuid4().hex}.mp4"
        try:
            clip = await self._store.run(
                lambda store: store.extract(camera, newest - WINDOW, newest, path)
            )
            still = await asyncio.to_thread(nearest_still, path, clip.first_frame, newest)
        except (OSError, StoreError, av.FFmpegError, ValueError) as exc:
            log.warning("picture_failed", camera=camera, error=str(exc))
            return None
        finally:
            path.unlink(missing_ok=True)
        return still.jpeg
