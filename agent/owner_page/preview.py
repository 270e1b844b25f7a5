"""The preview of a pending request on the Requests page: exactly the footage that would be
sent, played from the local store.

The daemon cuts it (`agent.control.preview`) and hands it out over the control socket in pieces
of at most 1 MiB (`preview` command); this module serves it to the browser at
`/requests/{jti}/preview.mp4` (a snapshot's still at `preview.jpg`) with HTTP range requests —
206, `Content-Range`, `Accept-Ranges` — which a `<video>` element needs to seek. The control
socket's path comes from the app (`CONTROL_SOCKET`); without it there is no preview, and the
page says so.

`describe` fills each pending request's `preview` for the template: the player or picture, and
the daemon's sentences (parts of the window not recorded, a preview too large to make). Asking
for it also makes the daemon cut the preview, so the video starts at once when played.
"""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.control.async_client import AsyncControlClient
from agent.control.client import ControlError, DaemonNotRunning
from agent.control.protocol import MAX_PREVIEW_CHUNK
from agent.log import get_logger
from agent.owner_page.auth import signed_in

log = get_logger(__name__)

CONTROL_SOCKET = web.AppKey("rtcc_control_socket", Path)
PIECE = MAX_PREVIEW_CHUNK  # the most the daemon gives per answer
CUT_TIMEOUT = 120.0  # the first piece waits for the cut: a long window takes a while
# The Requests page waits this long in all for its previews to be cut; what is not ready by
# then is cut on (the daemon goes on) and the video element's request waits for it.
DESCRIBE_BUDGET = 20.0
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_JTI = re.compile(r"^[0-9a-fA-F-]{4,64}$")

EXACT = "This is exactly the footage that would be sent if you approve."
EXACT_STILL = "This is exactly the picture that would be sent if you approve."
NO_PREVIEW = "There is no preview of this request."
STILL_CUTTING = "The preview is still being made: it plays as soon as it is ready."


def routes(app: web.Application) -> None:
    app.router.add_get("/requests/{jti}/preview.mp4", signed_in(preview))
    app.router.add_get("/requests/{jti}/preview.jpg", signed_in(preview))


def _client(request: web.Request, *, timeout: float = CUT_TIMEOUT) -> AsyncControlClient | None:
    path = request.app.get(CONTROL_SOCKET)
    return AsyncControlClient(path, timeout=timeout) if path is not None else None


async def _piece(
    client: AsyncControlClient, jti: str, offset: int, length: int
) -> tuple[dict[str, Any], bytes]:
    answer = await client.call("preview", id=jti, offset=offset, length=length)
    return answer, base64.b64decode(answer["data"], validate=True)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[first, last] of one `bytes=` range, or None when the header asks for no usable range
    (then the whole file is sent, as RFC 9110 allows). ValueError: not satisfiable."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges, or another unit: the whole file answers them all
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0:
            raise ValueError("an empty suffix range")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise ValueError("the range is outside the file")
    return first, min(last, size - 1)


async def preview(request: web.Request) -> web.StreamResponse:
    jti = request.match_info["jti"]
    client = _client(request)
    if client is None or not _JTI.match(jti):
        raise web.HTTPNotFound(text=NO_PREVIEW + "\n")
    try:
        head, _ = await _piece(client, jti, 0, 0)
    except DaemonNotRunning as exc:
        raise web.HTTPServiceUnavailable(text=str(exc) + "\n") from None
    except ControlError as exc:
        raise web.HTTPNotFound(text=exc.message + "\n") from None
    size, content_type = int(head["size"]), str(head["content_type"])
    status, first, last = 200, 0, size - 1
    header = request.headers.get("Range")
    if header is not None and size > 0:
        try:
            wanted = _byte_range(header, size)
        except ValueError:
            raise web.HTTPRequestRangeNotSatisfiable(
                headers={"Content-Range": f"bytes */{size}"}
            ) from None
        if wanted is not None:
            status, (first, last) = 206, wanted
    response = web.StreamResponse(status=status)
    response.content_type = content_type
    response.content_length = last - first + 1 if size else 0
    response.headers["Accept-Ranges"] = "bytes"
    if status == 206:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    offset = first
    try:
        while offset <= last:
            try:
                _, data = await _piece(client, jti, offset, min(PIECE, last - offset + 1))
            except (ControlError, DaemonNotRunning) as exc:
                # Headers are gone already: end the body short, the browser sees it incomplete.
                log.warning("owner_page_preview_cut_short", request=jti, error=str(exc))
                break
            if not data:
                break
            await response.write(data)
            offset += len(data)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the video element dropped this range for another: nothing went wrong
    return response


async def describe(request: web.Request, rows: list[dict[str, Any]]) -> None:
    """Give each pending request's row its `preview`: what the Requests page shows for it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DESCRIBE_BUDGET
    for row in rows:
        kind = row.get("kind")
        if kind not in ("clip", "snapshot"):
            row["preview"] = None
            continue
        shown: dict[str, Any] = {"video": "", "image": "", "picture": "", "notes": []}
        row["preview"] = shown
        client = _client(request, timeout=max(0.5, deadline - loop.time()))
        if client is None:
            shown["notes"] = [NO_PREVIEW]
            continue
        try:
            answer, _ = await _piece(client, row["jti"], 0, 0)
        except DaemonNotRunning as exc:
            shown["notes"] = [str(exc)]
            continue
        except ControlError as exc:
            if exc.code == "timeout" and kind == "clip":
                shown["video"] = f"/requests/{row['jti']}/preview.mp4"
                shown["notes"] = [EXACT, STILL_CUTTING]
                continue
            if exc.code == "no_preview" and kind == "snapshot" and row.get("camera"):
                shown["picture"] = f"/cameras/{row['camera']}/picture.jpg"
            shown["notes"] = [exc.message]
            continue
        if answer["content_type"] == "video/mp4":
            shown["video"] = f"/requests/{row['jti']}/preview.mp4"
            shown["notes"] = [EXACT, *answer["notes"]]
        else:
            shown["image"] = f"/requests/{row['jti']}/preview.jpg"
            shown["notes"] = [EXACT_STILL, *answer["notes"]]
