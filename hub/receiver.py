"""The upload receiver of `rtcc-hub serve`: `PUT /upload/{case}/{request id}/{name}`.

Sites PUT clips, snapshots and manifests here, to URLs the hub minted for each request
(`hub.presign`: HMAC-signed, expiring, in the manner of S3 presigned URLs; `rtcc-hub request`
mints them). Answers, in the order they are checked:

- 400 a path segment outside the safe alphabet (nothing else is looked at);
- 403 a missing, wrong or expired signature (`{"error": "forbidden", "message": ...}`);
- 411 no `Content-Length` (as S3: the size is known before the first byte);
- 413 more than `max_bytes` announced, or more bytes than announced;
- 507 the hub's disk filled up (the site retries later);
- 200 `{"sha256": ..., "bytes": ...}` (and an `ETag`) once the whole body is on disk under
  `<home>/cases/<case>/<request id>/<name>` (`hub.storage`).

A body that breaks off leaves nothing: the object exists only once complete.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

import aiohttp
import structlog
from aiohttp import web

from hub.presign import PresignError, UploadSigner, load_upload_key, upload_path
from hub.server import ServerContext
from hub.state import HubHome
from hub.storage import CaseStore, IncompleteUpload, TooLarge

log = structlog.get_logger(__name__)

ROUTE = "/upload/{case}/{req}/{name}"
MAX_OBJECT_BYTES = 8 * 1024**3
_CHUNK = 256 * 1024


def setup(app: web.Application, context: ServerContext) -> None:
    add_routes(app, context.home)


def add_routes(
    app: web.Application,
    home: HubHome,
    *,
    max_bytes: int = MAX_OBJECT_BYTES,
    clock: Callable[[], float] = time.time,
) -> None:
    receiver = Receiver(home, max_bytes=max_bytes, clock=clock)
    app.router.add_put(ROUTE, receiver.put)


def _refuse(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class Receiver:
    def __init__(
        self, home: HubHome, *, max_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.signer = UploadSigner(load_upload_key(home))
        self.store = CaseStore(home)
        self.max_bytes = max_bytes
        self._clock = clock

    async def put(self, request: web.Request) -> web.Response:
        case, req, name = (request.match_info[k] for k in ("case", "req", "name"))
        try:
            path = upload_path(case, req, name)
        except ValueError as exc:
            return _refuse(400, "bad_path", str(exc))
        query = request.rel_url.query
        try:
            self.signer.check(
                "PUT", path, query.get("expires"), query.get("sig"), now=self._clock()
            )
        except PresignError as exc:
            log.warning("upload_refused", path=path, reason=str(exc), peer=request.remote)
            return _refuse(403, "forbidden", str(exc))
        length = request.content_length
        if length is None:
            return _refuse(411, "length_required", "send Content-Length")
        if length > self.max_bytes:
            message = f"{length} bytes is more than this receiver takes ({self.max_bytes})"
            return _refuse(413, "too_large", message)
        started = time.monotonic()
        try:
            stored = await self.store.receive(
                case, req, name, request.content.iter_chunked(_CHUNK), length=length
            )
        except TooLarge as exc:
            return _refuse(413, "too_large", str(exc))
        except IncompleteUpload as exc:
            log.warning("upload_incomplete", path=path, reason=str(exc))
            return _refuse(400, "incomplete", str(exc))
        except (ConnectionError, aiohttp.ClientPayloadError) as exc:
            log.warning("upload_interrupted", path=path, error=f"{type(exc).__name__}: {exc}")
            return _refuse(400, "incomplete", "the body broke off")
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                log.error("upload_disk_full", path=path)
                return _refuse(507, "insufficient_storage", "the receiver's disk is full")
            log.error("upload_store_failed", path=path, error=str(exc))
            return _refuse(500, "store_failed", "the upload could not be stored")
        log.info(
            "upload_stored",
            path=path,
            bytes=stored.bytes,
            sha256=stored.sha256,
            seconds=round(time.monotonic() - started, 3),
            peer=request.remote,
        )
        return web.json_response(
            {"sha256": stored.sha256, "bytes": stored.bytes},
            headers={"ETag": f'"{stored.sha256}"'},
        )
