"""Previews for the owner: exactly the footage a pending request would share, cut from the
local store by the same code the delivery uses, so the owner decides on what will be sent.

* A clip request's preview is the store's own extraction of the request's camera and window
  (`ClipStore.extract`, what `agent.delivery.clip` uploads): same packets, same MP4. A snapshot
  request with a recorded moment (`at` in the footage held) gets the still the snapshot
  delivery would make (`nearest_still` on the keyframe interval around `at`); a snapshot of
  "now" has nothing to preview yet (`no_preview`, with a sentence the page shows).
* It is cut once per request, into `state_dir/previews/<jti>.mp4` (or `.jpg`), mode 0600 in a
  0700 directory: the store writes a hidden partial name and renames it when complete, and the
  preview is renamed into its final name only after that, so a name without a dot in front is
  always a whole file. Callers asking at the same time wait for the one cut (a lock per id).
* A preview larger than `max_bytes` (estimated from the segments before cutting, checked again
  after) is refused with a sentence, not cut.
* Only a pending request gets a preview made; one just approved or denied is still served while
  its file is kept. The sweep (every `SWEEP_S`) removes previews of final or forgotten requests
  and any older than `ttl`; `start` removes every preview left by an earlier run.
* `chunk` returns at most `MAX_CHUNK` bytes, base64-encoded, so each answer fits one line of
  the control protocol; the page reassembles them for the browser's range requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import av

from agent.control.protocol import MAX_PREVIEW_CHUNK
from agent.delivery.clip import estimate_clip_bytes
from agent.delivery.snapshot import nearest_still, newest_footage
from agent.fsutil import fsync_dir
from agent.link.owner_actions import OwnerActionError, find_request
from agent.link.requests_db import RequestRecord
from agent.link.service import RequestService
from agent.log import get_logger
from agent.store import ClipResult, ClipStore, NoFootage, StoreError
from agent.wire import EventState
from agent.wire.requests import ClipRequest, SnapshotRequest

log = get_logger(__name__)

_T = TypeVar("_T")

PREVIEW_DIR = "previews"
MAX_CHUNK = MAX_PREVIEW_CHUNK  # the protocol's most per `preview` answer
MAX_BYTES = 512 * 1024 * 1024
TTL_S = 30 * 60.0
SWEEP_S = 30.0
_AROUND = timedelta(microseconds=1)  # the snapshot delivery's cut around its moment
CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg"}


class StoreAccess(Protocol):
    """The daemon's store thread (`agent.daemon.app.StoreService`)."""

    async def run(self, function: Callable[[ClipStore], _T]) -> _T: ...


def _clock_text(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def _gap_notes(clip: ClipResult) -> list[str]:
    if not clip.gaps:
        return []
    spans = ", ".join(f"{_clock_text(g.start)} to {_clock_text(g.end)}" for g in clip.gaps)
    return [f"Part of this window is not recorded: {spans}. Only what is recorded is sent."]


class _Kept:
    """A preview on disk and what the page says about it."""

    def __init__(self, path: Path, notes: list[str], made: float) -> None:
        self.path = path
        self.notes = notes
        self.made = made

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.path.suffix]


class Previews:
    def __init__(
        self,
        service: RequestService,
        store: StoreAccess,
        cache_dir: Path,
        *,
        max_bytes: int = MAX_BYTES,
        ttl: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.store = store
        self.cache_dir = cache_dir
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.clock = clock
        self._kept: dict[str, _Kept] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Remove every preview of an earlier run (nothing says what it showed) and sweep."""
        await asyncio.to_thread(self._empty_dir)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="preview-sweep")

    def _empty_dir(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.cache_dir)
        self.cache_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        self.cache_dir.chmod(0o700)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await asyncio.to_thread(self._empty_dir)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self.sweep()
            except Exception:
                log.exception("preview_sweep_failed")

    async def sweep(self) -> None:
        """Remove previews of requests that are final or gone, and those older than the TTL."""
        now = self.clock()
        for jti, kept in list(self._kept.items()):
            record = self.service.book.get(jti)
            if record is None or record.final or now - kept.made > self.ttl:
                async with self._lock(jti):
                    if self._kept.get(jti) is kept:
                        del self._kept[jti]
                        self._locks.pop(jti, None)
                        await asyncio.to_thread(kept.path.unlink, missing_ok=True)
                        log.info("preview_removed", request=jti)

    # -- the command --------------------------------------------------------------------------

    def _lock(self, jti: str) -> asyncio.Lock:
        return self._locks.setdefault(jti, asyncio.Lock())

    def _record(self, request_id: str) -> RequestRecord:
        return find_request(self.service.book, request_id)

    async def chunk(self, request_id: str, offset: int, length: int) -> dict[str, Any]:
        """`length` bytes (at most MAX_CHUNK) of the preview from `offset`, base64-encoded, with
        its total size, content type and the sentences the owner should read beside it."""
        record = self._record(request_id)
        kept = await self._preview(record)
        length = max(0, min(length, MAX_CHUNK))
        data = await asyncio.to_thread(_read, kept.path, offset, length)
        size = kept.path.stat().st_size
        return {
            "id": record.jti,
            "size": size,
            "offset": offset,
            "data": base64.b64encode(data).decode("ascii"),
            "content_type": kept.content_type,
            "notes": kept.notes,
        }

    async def _preview(self, record: RequestRecord) -> _Kept:
        async with self._lock(record.jti):
            kept = self._kept.get(record.jti)
            if kept is not None and kept.path.exists():
                return kept
            if record.state is not EventState.PENDING_APPROVAL:
                raise OwnerActionError(
                    "not_pending",
                    "This request is no longer waiting for you, so there is no preview of it.",
                )
            request = record.request()
            if isinstance(request, ClipRequest):
                kept = await self._cut_clip(record.jti, request)
            elif isinstance(request, SnapshotRequest):
                kept = await self._cut_still(record.jti, request)
            else:
                raise OwnerActionError("no_preview", "This request shares no recorded footage.")
            self._kept[record.jti] = kept
            return kept

    def _paths(self, jti: str, suffix: str) -> tuple[Path, Path]:
        # The request id is a UUID checked by the wire models; the hidden name is the work file.
        final = self.cache_dir / f"{jti}{suffix}"
        return final, self.cache_dir / f".{jti}.{secrets.token_hex(4)}{suffix}"

    async def _space_check(self, needed: int, window: str) -> None:
        if needed > self.max_bytes:
            raise OwnerActionError(
                "too_large",
                f"The footage of {window} is about {needed // 1_000_000:,} MB, more than a "
                f"preview may take ({self.max_bytes // 1_000_000:,} MB). You can still approve "
                "or deny it.",
            )
        stat = await asyncio.to_thread(os.statvfs, self.cache_dir)
        if needed * 1.05 + MAX_CHUNK > stat.f_bavail * stat.f_frsize:
            raise OwnerActionError(
                "no_space", "There is not enough free disk space to make a preview of this request."
            )

    async def _cut_clip(self, jti: str, request: ClipRequest) -> _Kept:
        camera, start, end = request.camera, request.start, request.end
        window = f"{_clock_text(start)} to {_clock_text(end)}"
        needed = await self.store.run(lambda store: estimate_clip_bytes(store, camera, start, end))
        if needed == 0:
            raise OwnerActionError(
                "no_footage",
                f"Nothing of camera {camera} is recorded from {window}: there is nothing to send.",
            )
        await self._space_check(needed, window)
        final, work = self._paths(jti, ".mp4")
        try:
            clip = await self.store.run(lambda store: store.extract(camera, start, end, work))
            if clip.bytes > self.max_bytes:
                raise OwnerActionError(
                    "too_large",
                    f"The footage of {window} is {clip.bytes // 1_000_000:,} MB, more than a "
                    f"preview may take ({self.max_bytes // 1_000_000:,} MB).",
                )
            await asyncio.to_thread(_publish, work, final)
        except NoFootage as exc:
            raise OwnerActionError(
                "no_footage",
                f"Nothing of camera {camera} is recorded from {window}: there is nothing to send.",
            ) from exc
        except (OSError, StoreError) as exc:
            raise OwnerActionError("internal", f"The preview could not be made: {exc}") from exc
        finally:
            await asyncio.to_thread(work.unlink, missing_ok=True)
        log.info("preview_made", request=jti, bytes=clip.bytes, gaps=len(clip.gaps))
        notes = _gap_notes(clip)
        if end > datetime.now(UTC):
            notes.append(
                f"This window ends later ({_clock_text(end)}): the preview shows what is "
                "recorded so far; what is sent also holds what is recorded until then."
            )
        return _Kept(final, notes, self.clock())

    async def _cut_still(self, jti: str, request: SnapshotRequest) -> _Kept:
        camera, at = request.camera, request.at
        later = (
            "The snapshot will be the camera's picture at the moment it is sent; "
            "this is the camera's picture now."
        )
        if at is None:
            raise OwnerActionError("no_preview", later)
        newest = await self.store.run(lambda store: newest_footage(store, camera, at))
        if newest is None or at > newest:
            raise OwnerActionError("no_preview", later)
        final, work = self._paths(jti, ".jpg")
        cut = work.with_suffix(".cut.mp4")
        moment = min(at, newest - _AROUND)
        try:
            clip = await self.store.run(
                lambda store: store.extract(camera, moment, moment + _AROUND, cut)
            )
            still = await asyncio.to_thread(nearest_still, cut, clip.first_frame, at)
            await asyncio.to_thread(_write_new, work, still.jpeg)
            await asyncio.to_thread(_publish, work, final)
        except NoFootage as exc:
            raise OwnerActionError(
                "no_footage", f"Nothing of camera {camera} is recorded at {_clock_text(at)}."
            ) from exc
        except (OSError, StoreError, av.FFmpegError, ValueError) as exc:
            raise OwnerActionError("internal", f"The preview could not be made: {exc}") from exc
        finally:
            await asyncio.to_thread(cut.unlink, missing_ok=True)
            await asyncio.to_thread(work.unlink, missing_ok=True)
        return _Kept(final, [], self.clock())


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _publish(work: Path, final: Path) -> None:
    """Give the complete work file its final name, owner-only (the atomic writer's steps)."""
    work.chmod(0o600)
    with work.open("rb") as handle:
        os.fsync(handle.fileno())
    work.replace(final)
    fsync_dir(final.parent)


def _read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(length)
