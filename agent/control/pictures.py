"""A current picture of each camera for the owner's Cameras page, made by the daemon (which
holds the store) and given over the control socket (`picture`): the newest recorded frame, cut
from the store and encoded as a JPEG (the snapshot delivery's own `nearest_still`).

A picture is shown at once once made: it is made again, behind the one shown, when it is older
than `MAX_AGE` seconds and someone looks; nothing is decoded while nobody looks at the page.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import av

from agent.delivery.snapshot import nearest_still, newest_footage
from agent.log import get_logger
from agent.recent import Recent
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
        self._kept: dict[str, Recent[bytes | None]] = {}
        self._lock = asyncio.Lock()

    def known(self, camera: str) -> bool:
        return self._cameras is None or camera in set(self._cameras())

    async def latest(self, camera: str) -> bytes | None:
        """The newest frame of `camera` as a JPEG; None when the store holds none recently.
        A picture up to MAX_AGE old is given at once; an older one too, while the new one is
        cut behind it (16 cameras' 1080p frames take seconds to decode on a small machine:
        the Cameras page must not wait for them on every visit)."""
        kept = self._kept.get(camera)
        if kept is None:
            make = partial(self._one_at_a_time, camera)
            kept = self._kept[camera] = Recent(make, fresh_for=MAX_AGE)
        return await kept.get()

    async def _one_at_a_time(self, camera: str) -> bytes | None:
        async with self._lock:  # one decode at a time: a phone's reloads never pile up
            return await self._make(camera)

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
