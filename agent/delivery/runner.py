"""`DeliveryService`: runs each clip or snapshot delivery from acceptance to its final event.

One job per request, in a task of its own:

1. The job is persisted (`jobs.JobQueue`) before anything else, so a daemon restart resumes it:
   the request service starts every unfinished request again, and the job's row says what was
   already prepared. A request that expired meanwhile ends `failed` / `expired`.
2. The file is prepared (the clip cut from the store, or the snapshot decoded and encoded) in
   the temporary directory and described by a signed manifest (`manifest.py`); both are
   recorded in the row. A resumed job re-uses the prepared file if it still hashes as recorded,
   and prepares it again otherwise (the request's hold still protects its footage).
3. The file is uploaded (`upload.Uploader`: retries, bandwidth and concurrency caps), with
   `progress` events; then the manifest to `manifest_url` when the request gave one.
4. `completed` with the signed manifest — only after the server acknowledged the whole body —
   or `failed` with a code and a sentence. The request service guarantees exactly one final
   event and releases the request's hold when it ends.

The ledger gets one `upload` entry per object sent (or given up on): bytes, SHA-256, the target
host (never the URL: a presigned URL is a credential), seconds, and every attempt with its
status or error. Temporary files are removed in every outcome, except when the daemon stops:
then the job and its prepared file stay for the restart.

In the daemon it is a component that is built before the link starts (the link hands requests
to its `clip` and `snapshot` handlers), started **after** the link (jobs the link resumes at its
start wait until then) and stopped **before** it (so a job stopped mid-upload is kept, not
failed, while the link can still report); it records uploads in the request service's ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from agent.config import AgentConfig
from agent.delivery.bandwidth import TokenBucket
from agent.delivery.errors import DeliveryFailed
from agent.delivery.jobs import JOBS_FILE, JobQueue, JobRow
from agent.delivery.tls import outbound_tls_context
from agent.delivery.upload import (
    BACKOFF_BASE,
    STALL_TIMEOUT,
    Attempt,
    Uploader,
    UploadFailed,
    UploadResult,
)
from agent.identity import DeviceKey, device_key_path
from agent.ledger import LedgerError
from agent.link.job import Job
from agent.log import get_logger
from agent.recorder import LiveFeed
from agent.store import ClipStore
from agent.store.files import hash_file
from agent.wire import RejectCode
from agent.wire.requests import ClipRequest, SnapshotRequest

log = get_logger(__name__)

_T = TypeVar("_T")
DeliveryRequest = ClipRequest | SnapshotRequest
Kind_ = Literal["clip", "snapshot"]
MANIFEST_CONTENT_TYPE = "application/jose"
TEMP_DIR_NAME = "delivery"


class StoreAccess(Protocol):
    """The daemon's clip store, run on its own thread (`agent.daemon.StoreService`)."""

    async def run(self, function: Callable[[ClipStore], _T]) -> _T: ...


class LiveSource(Protocol):
    """The recorders' live fan-out (`agent.recorder.LiveHub`)."""

    def subscribe(self, camera: str) -> LiveFeed: ...


@dataclass(frozen=True)
class Prepared:
    """A file ready to go: its name in the temporary directory, hash, size and manifest."""

    file: str
    sha256: str
    bytes: int
    manifest: str


class Producer(Protocol):
    content_type: str

    async def prepare(self, request: Any, row: JobRow) -> Prepared:
        """Make the file in the temporary directory; DeliveryFailed if it cannot be made."""


class DeliveryService:
    name = "delivery"

    def __init__(
        self,
        config: AgentConfig,
        *,
        store: StoreAccess,
        device_key: DeviceKey | None = None,
        live: LiveSource | None = None,
        clock: Callable[[], float] = time.time,
        backoff_base: float | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        # Imported here: the handlers import this module for `Prepared` and the protocols.
        from agent.delivery.clip import ClipDelivery
        from agent.delivery.snapshot import SnapshotDelivery

        self.config = config
        self.store = store
        self._device_key = device_key
        self.live = live
        self.clock = clock
        self.temp_dir = Path(config.upload.temp_dir or Path(config.state_dir) / TEMP_DIR_NAME)
        self._backoff_base = BACKOFF_BASE if backoff_base is None else backoff_base
        self._stall_timeout = STALL_TIMEOUT if stall_timeout is None else stall_timeout
        self.clip = ClipDelivery(self)
        self.snapshot = SnapshotDelivery(self)
        self._jobs: JobQueue | None = None
        self._uploader: Uploader | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiting: list[tuple[Kind_, DeliveryRequest, Job, Producer]] = []
        self._cleanups: set[asyncio.Future[None]] = set()
        self._stopping = False

    @property
    def device_key(self) -> DeviceKey:
        if self._device_key is None:
            raise RuntimeError("the delivery service is not started")
        return self._device_key

    @property
    def jobs(self) -> JobQueue:
        if self._jobs is None:
            raise RuntimeError("the delivery service is not started")
        return self._jobs

    @property
    def uploader(self) -> Uploader:
        if self._uploader is None:
            raise RuntimeError("the delivery service is not started")
        return self._uploader

    def temp_path(self, name: str) -> Path:
        return self.temp_dir / name

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        upload = self.config.upload
        tls = outbound_tls_context(upload.ca_file)
        if self._device_key is None:
            path = device_key_path(Path(self.config.state_dir))
            self._device_key = await asyncio.to_thread(DeviceKey.load_or_create, path)
        await asyncio.to_thread(self.temp_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        self._jobs = await asyncio.to_thread(JobQueue, Path(self.config.state_dir) / JOBS_FILE)
        await asyncio.to_thread(self._sweep)
        bandwidth = TokenBucket.from_mbps(upload.bandwidth_mbps) if upload.bandwidth_mbps else None
        self._uploader = Uploader(
            allowed_hosts=self.config.policy.allowed_upload_hosts,
            tls=tls,
            bandwidth=bandwidth,
            concurrency=upload.concurrency,
            clock=self.clock,
            backoff_base=self._backoff_base,
            stall_timeout=self._stall_timeout,
        )
        await self._uploader.start()
        self._stopping = False
        pending = len(await asyncio.to_thread(self._jobs.all))
        log.info("delivery_started", pending=pending, temp_dir=str(self.temp_dir))
        waiting, self._waiting = self._waiting, []
        for item in waiting:
            self.launch(*item)

    async def stop(self) -> None:
        """Stop every job where it is; unfinished jobs stay persisted for the next start."""
        self._stopping = True
        self._waiting.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        if self._uploader is not None:
            await self._uploader.close()
            self._uploader = None
        if self._jobs is not None:
            jobs, self._jobs = self._jobs, None
            await asyncio.to_thread(jobs.close)

    def _sweep(self) -> None:
        """Forget jobs whose request expired (none can be resumed), and remove temporary files
        no job refers to (left by a crash, or by a cancelled cut)."""
        assert self._jobs is not None
        for row in self._jobs.expired(self.clock()):
            log.info("delivery_job_expired", request=row.jti, kind=row.kind)
            self._jobs.finish(row.jti)
        wanted = {row.file for row in self._jobs.all() if row.file}
        for entry in os.scandir(self.temp_dir):
            if entry.is_file(follow_symlinks=False) and entry.name not in wanted:
                Path(entry.path).unlink(missing_ok=True)
                log.info("delivery_temp_removed", file=entry.name)

    # -- jobs -----------------------------------------------------------------------------

    def launch(self, kind: Kind_, request: DeliveryRequest, job: Job, producer: Producer) -> None:
        """Start delivering `request` in a task (the handler's `start` returns at once).

        Before the service has started, the job waits for `start()`; while it stops, the job is
        left for the next start (the request stays accepted; the restart resumes it)."""
        jti = job.request_id
        if self._stopping:
            log.info("delivery_deferred", request=jti, reason="the delivery service is stopping")
            return
        if self._jobs is None:
            self._waiting.append((kind, request, job, producer))
            return
        if jti in self._tasks:
            log.info("delivery_already_running", request=jti)
            return
        task = asyncio.create_task(self._run(kind, request, job, producer), name=f"deliver-{jti}")
        self._tasks[jti] = task
        task.add_done_callback(lambda _t: self._tasks.pop(jti, None))

    async def cancel(self, request_id: str) -> None:
        """Abort the job now (the request is already marked cancelled)."""
        self._waiting = [item for item in self._waiting if item[2].request_id != request_id]
        task = self._tasks.get(request_id)
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        log.info("delivery_cancelled", request=request_id)

    def running(self) -> list[str]:
        return sorted(self._tasks)

    async def _run(
        self, kind: Kind_, request: DeliveryRequest, job: Job, producer: Producer
    ) -> None:
        jti = job.request_id
        keep = False
        prepared: Prepared | None = None
        try:
            if job.is_final:
                return
            if self.clock() >= request.exp:
                raise DeliveryFailed(
                    RejectCode.EXPIRED, "the request expired before it could be delivered"
                )
            row = await asyncio.to_thread(
                self.jobs.begin, jti, kind, request.camera, expires=request.exp
            )
            if row.starts > 1:
                log.info("delivery_resumed", request=jti, kind=kind, starts=row.starts)
            prepared = await self._reuse(row)
            if prepared is None:
                prepared = await producer.prepare(request, row)
                await asyncio.to_thread(
                    self.jobs.prepared,
                    jti,
                    file=prepared.file,
                    sha256=prepared.sha256,
                    size=prepared.bytes,
                    manifest=prepared.manifest,
                )
            deadline = min(
                row.created + self.config.upload.retry_budget.total_seconds(), float(request.exp)
            )
            await self._honour_retry_after(row, deadline)
            await self._send(
                kind,
                request,
                job,
                self.temp_path(prepared.file),
                content_type=producer.content_type,
                sha256=prepared.sha256,
                deadline=deadline,
            )
            manifest_url = request.upload.manifest_url
            if manifest_url is not None:
                body = prepared.manifest.encode("ascii")
                await self._send(
                    "manifest",
                    request,
                    job,
                    body,
                    content_type=MANIFEST_CONTENT_TYPE,
                    sha256=_sha256(body),
                    deadline=deadline,
                    url=manifest_url,
                )
            # Shielded: a daemon stopping now must not cut the final report in half.
            await _final_report(jti, job.completed(manifest=prepared.manifest))
            log.info("delivery_completed", request=jti, kind=kind, bytes=prepared.bytes)
        except DeliveryFailed as exc:
            log.warning("delivery_failed", request=jti, code=exc.code.value, error=exc.message)
            await _final_report(jti, job.failed(exc.code, exc.message))
        except UploadFailed as exc:
            log.warning("upload_failed", request=jti, error=exc.message, status=exc.status)
            await _final_report(jti, job.failed(RejectCode.UPLOAD_FAILED, exc.message))
        except asyncio.CancelledError:
            # Stopping: keep the job for the restart, unless its request has ended anyway.
            keep = self._stopping and not job.is_final
            raise
        except Exception:
            log.exception("delivery_crashed", request=jti, kind=kind)
            message = f"the {kind} could not be delivered"
            await _final_report(jti, job.failed(RejectCode.INTERNAL, message))
        finally:
            if not keep:
                # Shielded and awaited by `stop()`: the files and the row go in every outcome.
                cleanup = asyncio.ensure_future(self._discard(jti, prepared))
                self._cleanups.add(cleanup)
                cleanup.add_done_callback(self._cleanups.discard)
                await asyncio.shield(cleanup)

    async def _discard(self, jti: str, prepared: Prepared | None) -> None:
        def remove() -> None:
            row = self.jobs.get(jti)
            names = {n for n in (row.file if row else None, prepared and prepared.file) if n}
            for name in names:
                self.temp_path(name).unlink(missing_ok=True)
            self.jobs.finish(jti)

        try:
            await asyncio.to_thread(remove)
        except Exception:
            log.exception("delivery_cleanup_failed", request=jti)

    async def _reuse(self, row: JobRow) -> Prepared | None:
        """The file a previous start prepared, if it is still there and unchanged."""
        if not row.prepared:
            return None
        assert row.file is not None and row.sha256 is not None and row.manifest is not None
        path = self.temp_path(row.file)
        try:
            sha256, size = await asyncio.to_thread(hash_file, path)
        except OSError:
            sha256, size = "", -1
        if (sha256, size) != (row.sha256, row.bytes):
            log.warning("delivery_prepared_file_lost", request=row.jti, file=row.file)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            await asyncio.to_thread(self.jobs.unprepared, row.jti)
            return None
        return Prepared(row.file, row.sha256, size, row.manifest)

    async def _honour_retry_after(self, row: JobRow, deadline: float) -> None:
        """Wait out a `Retry-After` the server gave before a restart (kept in the job's row)."""
        not_before = row.not_before
        if not_before is None:
            return
        wait = not_before - self.clock()
        if wait <= 0:
            return
        if not_before > deadline:
            raise UploadFailed(
                f"the upload server asked not to be tried again for {wait:.0f} s, "
                f"past the retry budget ({max(0.0, deadline - self.clock()):.0f} s left)"
            )
        log.info("delivery_waits_retry_after", request=row.jti, seconds=round(wait, 1))
        await asyncio.sleep(wait)

    async def _send(
        self,
        what: str,
        request: DeliveryRequest,
        job: Job,
        body: Path | bytes,
        *,
        content_type: str,
        sha256: str,
        deadline: float,
        url: str | None = None,
    ) -> UploadResult:
        """Send one object, its ledger entry written first: `upload_started` must be durable
        before a byte leaves (DeliveryFailed, nothing sent, if it cannot be written), and the
        `upload` entry after counts the bytes that actually left, also when it failed."""
        target = url or request.upload.url
        jti = job.request_id
        size = len(body) if isinstance(body, bytes) else _file_size(body)
        try:
            await job.sending(what, host=_hostname(target), size=size, sha256=sha256)
        except LedgerError as exc:
            raise DeliveryFailed(
                RejectCode.INTERNAL,
                f"the site cannot write its ledger, so nothing was sent ({exc})",
            ) from exc
        attempts: list[Attempt] = []  # every attempt as it ends, a cancelled one too

        async def starting(_number: int) -> None:
            await asyncio.to_thread(self.jobs.attempted, jti)

        async def deferred(not_before: float) -> None:
            await asyncio.to_thread(self.jobs.defer, jti, not_before)

        try:
            result = await self.uploader.put(
                target,
                body,
                content_type=content_type,
                headers=request.upload.headers,
                deadline=deadline,
                progress=job.progress if url is None else None,
                on_start=starting,
                on_retry_after=deferred,
                sent_log=attempts,
            )
        except UploadFailed as exc:
            await self._record(
                what, request, job, target, sha256, size, exc.attempts, outcome=exc.message
            )
            raise
        except asyncio.CancelledError:
            # Cancelled (by the RTCC, or the daemon stopping): what went out is still counted.
            await asyncio.shield(
                self._record(
                    what, request, job, target, sha256, size, tuple(attempts), outcome="cancelled"
                )
            )
            raise
        await self._record(what, request, job, target, sha256, size, result.attempts, result=result)
        return result

    async def _record(
        self,
        what: str,
        request: DeliveryRequest,
        job: Job,
        url: str,
        sha256: str,
        size: int,
        attempts: tuple[Attempt, ...],
        *,
        result: UploadResult | None = None,
        outcome: str = "uploaded",
    ) -> None:
        # The queue's lock may be held by a write in a worker thread (its commit fsyncs).
        job_row = await asyncio.to_thread(self.jobs.get, request.jti)
        data: dict[str, Any] = {
            "object": what,
            "outcome": "uploaded" if result is not None else "failed",
            "message": None if result is not None else outcome,
            # What left the site, every attempt counted (a cut transfer too), not the size of
            # the object: the transparency report sums this.
            "bytes": sum(a.bytes_sent for a in attempts),
            "size": size,
            "sha256": sha256,
            "host": _hostname(url),
            "seconds": round(result.seconds, 3) if result is not None else None,
            "attempts": len(attempts),
            "attempts_total": job_row.attempts if job_row is not None else len(attempts),
            "tries": [a.to_json() for a in attempts],
        }
        try:
            await job.sent(data)
        except Exception:
            log.exception("upload_not_recorded", request=request.jti)

    def requested_moment(self, request: SnapshotRequest, row: JobRow) -> datetime:
        """The moment a snapshot shows: `at`, or when the job first started ("now")."""
        if request.at is not None:
            return request.at
        return datetime.fromtimestamp(row.created, UTC)

    def free_bytes(self) -> int:
        """Bytes free for an unprivileged writer in the temporary directory."""
        stat = os.statvfs(self.temp_dir)
        return stat.f_bavail * stat.f_frsize


async def _final_report(jti: str, report: Coroutine[Any, Any, None]) -> None:
    """Shielded: a daemon stopping now must not cut the final report in half. A report the
    ledger cannot take leaves the request as it was (resumed after a restart): logged."""
    try:
        await asyncio.shield(report)
    except LedgerError as exc:
        log.error("final_report_not_recorded", request=jti, error=str(exc))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _hostname(url: str) -> str:
    return urlsplit(url).hostname or "?"
