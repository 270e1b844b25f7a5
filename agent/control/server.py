"""The daemon's side of the owner control socket.

The socket (`control.socket`) is created under a temporary name, given its mode and group,
and only then renamed into place, so it is never reachable with looser permissions: mode 0660
and group `rtcc-edge` when that group exists, otherwise 0600 (its owner — root, or the daemon's
user — only). A live socket already at the path means another daemon runs: that is an error; a
stale one (nothing listening) is replaced. Each connection may send several requests; the
peer's uid (SO_PEERCRED) is recorded in the ledger as who approved, denied or changed what, and
decides who may act as the owner (`agent.control.auth`): owner commands from anyone else are
refused with `not_owner`. What each command does — the owner's choice recorded in the owner
directory the daemon cannot write (`agent.policy.state`) before anything acts on it, its ledger
entry, the live sessions it ends — is the owner's library, `agent.link.owner_actions`; this
module only frames the lines, checks who asks and maps errors to codes.

Live sessions in progress (`LiveControl`, the tunnel's manager — given, or found as the request
service's `stream` handler) are listed by `status` and ended through the owner's actions. No
command waits behind a session: ending one only tells it to stop (its close and ledger entry
follow on their own), and each connection is served by its own task, so a slow command on one
connection never holds up `status` on another.

The owner's page, a process of its own, reads everything it shows through this socket too:
`picture` (made here by `agent.control.pictures.Pictures`, from the store only the daemon
holds) and `activity` (the ledger's check and report, `agent.control.activity`, from the state
directory only the daemon reads). Both are the owner's (`OWNER_READS`): footage and the record.

The daemon of a site that is not enrolled has no request service (`service` None) but still
answers `status` (the recorders and the link, from `overview`) and `picture`; every other
command is refused as `not_enrolled`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import grp
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.control import activity
from agent.control import reload as reloading
from agent.control.auth import (
    DEFAULT_OWNER_GROUP,
    OWNER_COMMANDS,
    OWNER_READS,
    Peer,
    by_label,
    owner_refusal,
    peer_of,
)
from agent.control.pictures import Pictures
from agent.control.preview import Previews
from agent.control.protocol import (
    MAX_LINE,
    ApproveArgs,
    DenyArgs,
    OwnerArgs,
    PauseArgs,
    PictureArgs,
    PreviewArgs,
    ProtocolError,
    RequestsArgs,
    SealArgs,
    SharingSetArgs,
    encode_error,
    encode_ok,
    parse_request,
)
from agent.control.seal import seal
from agent.ledger import entries
from agent.link.owner_actions import (
    LiveControl,
    OwnerActionError,
    OwnerActions,
    sharing_json,
)
from agent.link.service import RequestService
from agent.log import get_logger
from agent.policy import NotOwnerError, PolicyError

log = get_logger(__name__)

DEFAULT_GROUP = "rtcc-edge"
_IDLE_TIMEOUT_S = 300.0

Overview = Callable[[], Awaitable[dict[str, Any]]]


class ControlServerError(Exception):
    """The control socket cannot be set up (another daemon, bad directory)."""


def _listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class ControlServer:
    def __init__(
        self,
        path: Path,
        service: RequestService | None,
        *,
        group: str | None = DEFAULT_GROUP,
        live: LiveControl | None = None,
        overview: Overview | None = None,
        owner_group: str | None = DEFAULT_OWNER_GROUP,
        service_uid: int | None = None,
        pictures: Pictures | None = None,
        state_dir: Path | None = None,
        previews: Previews | None = None,
        reload: reloading.Reloader | None = None,
    ) -> None:
        """`service_uid`: the uid never allowed to act as the owner (default: this process's).
        `pictures`: where `picture` comes from (None: no pictures); `state_dir`: whose ledger
        `activity` and `requests` read (default: the service's), and whose secret key `seal`
        encrypts with; `reload`: the daemon's reload (`seal` and `reload` work whether the site
        is enrolled or not)."""
        self.path = path
        self.pictures = pictures
        if state_dir is None and service is not None:
            state_dir = service.ledger.directory.parent  # <state_dir>/ledger
        self.state_dir = state_dir
        self.service = service
        self.group = group
        self.owner_group = owner_group
        self.service_uid = os.geteuid() if service_uid is None else service_uid
        self.owner = OwnerActions(service, live=live) if service is not None else None
        self.overview = overview
        self.previews = previews
        self.reload = reload
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as exc:
            raise ControlServerError(f"cannot create {directory}: {exc.strerror}") from exc
        if self.path.exists() and _listening(self.path):
            raise ControlServerError(f"another rtcc-edge daemon is listening on {self.path}")
        temporary = directory / f".ctl-{secrets.token_hex(4)}"
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(temporary), limit=MAX_LINE
            )
            gid = self._group_id()
            if gid is None:
                temporary.chmod(0o600)
            else:
                os.chown(temporary, -1, gid)
                temporary.chmod(0o660)
            temporary.replace(self.path)
        except OSError as exc:
            await self.close()
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise ControlServerError(f"cannot create {self.path}: {exc}") from exc
        if self.previews is not None:
            # Only now: a second daemon refused above must not empty the first one's previews.
            await self.previews.start()
        log.info(
            "control_listening", path=str(self.path), group=self.group if gid is not None else None
        )

    def _group_id(self) -> int | None:
        if self.group is None:
            return None
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            return None

    async def close(self) -> None:
        if self.previews is not None:
            await self.previews.close()
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_of(writer.get_extra_info("socket"))
        by = peer.label if peer is not None else "unknown"
        try:
            while True:
                try:
                    async with asyncio.timeout(_IDLE_TIMEOUT_S):
                        line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode_error("bad_request", f"request over {MAX_LINE} bytes"))
                    await writer.drain()
                    return
                if not line:
                    return
                writer.write(await self.respond(line, by=by, peer=peer))
                await writer.drain()
        except (TimeoutError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def respond(self, line: bytes, *, by: str, peer: Peer | None) -> bytes:
        """One response line for one request line from `peer`; never raises."""
        try:
            cmd, args = parse_request(line)
            if cmd in OWNER_COMMANDS or cmd in OWNER_READS:
                refusal = owner_refusal(
                    peer, owner_group=self.owner_group, service_uid=self.service_uid
                )
                if refusal is not None:
                    log.warning("control_not_owner", cmd=cmd, by=by)
                    await self._ledger_refusal(cmd, args, by=by)
                    return encode_error("not_owner", refusal)
            if isinstance(args, OwnerArgs):
                by = by_label(by, args.via)
            return encode_ok(await self._dispatch(cmd, args, by=by))
        except ProtocolError as exc:
            return encode_error(exc.code, exc.message)
        except OwnerActionError as exc:
            return encode_error(exc.code, exc.message)
        except NotOwnerError as exc:
            return encode_error("not_owner", str(exc))
        except PolicyError as exc:
            return encode_error("not_allowed", str(exc))
        except Exception as exc:
            log.exception("control_command_failed")
            return encode_error("internal", f"the daemon could not do that: {exc}")

    async def _ledger_refusal(self, cmd: str, args: Any, *, by: str) -> None:
        """A refused owner's command is in the record too: who tried what, on which request or
        camera (only the names it gave: nothing is looked up for someone who may not ask)."""
        if self.service is None:
            return  # not enrolled: no ledger yet, and no request to concern
        request = getattr(args, "id", None)
        camera = getattr(args, "camera", None)
        entry = entries.OwnerRefused(
            cmd=cmd,
            by=by,
            request=request[:128] if isinstance(request, str) else None,
            camera=camera if isinstance(camera, str) else None,
        )
        try:
            await self.service.ledger.append_async(entry)
        except Exception:
            log.exception("control_refusal_not_ledgered", cmd=cmd)

    async def _dispatch(self, cmd: str, args: Any, *, by: str) -> Any:
        owner = self.owner
        if cmd == "status":
            recording = await self.overview() if self.overview is not None else {}
            if owner is None:
                return {"enrolled": False, **recording, "live": []}
            return {"enrolled": True, **owner.status(), **recording, "live": owner.live_sessions()}
        if cmd == "picture":
            assert isinstance(args, PictureArgs)
            return await self._picture(args.camera)
        if cmd == "seal":
            assert isinstance(args, SealArgs)
            if self.state_dir is None:
                raise OwnerActionError("unavailable", "this daemon keeps no camera passwords")
            return await seal(self.state_dir, args.text)
        if cmd == "reload":
            return await reloading.reload(self.reload)
        if owner is None:
            raise OwnerActionError(
                "not_enrolled",
                "this site is not enrolled with an RTCC, so there are no requests or sharing "
                "to manage yet; enroll it with `rtcc-edge enroll`",
            )
        if cmd == "requests":
            assert isinstance(args, RequestsArgs)
            records = owner.requests(include_final=args.all, limit=args.limit)
            rows = [{**r.summary(), "updated": r.updated.isoformat()} for r in records]
            if args.sent and self.state_dir is not None:
                ids = {row["id"] for row in rows}
                sent = await asyncio.to_thread(activity.bytes_by_request, self.state_dir, ids)
                for row in rows:
                    row["bytes_sent"] = sent.get(row["id"], 0)
            return rows
        if cmd == "approve":
            assert isinstance(args, ApproveArgs)
            return (await owner.approve(args.id, by=by)).summary()
        if cmd == "deny":
            assert isinstance(args, DenyArgs)
            return (await owner.deny(args.id, reason=args.reason, by=by)).summary()
        if cmd == "sharing":
            return [sharing_json(s) for s in owner.sharing()]
        if cmd == "sharing_set":
            assert isinstance(args, SharingSetArgs)
            changed = await owner.set_sharing(args.camera, args.mode, live=args.live, by=by)
            return sharing_json(changed)
        if cmd == "pause":
            assert isinstance(args, PauseArgs)
            duration = None if args.seconds is None else timedelta(seconds=args.seconds)
            paused = await owner.pause(duration=duration, by=by)
            return {
                "paused": True,
                "until": paused.until.isoformat() if paused.until else None,
                "live_stopped": paused.live_stopped,
            }
        if cmd == "resume":
            return {"was_paused": await owner.resume(by=by)}
        if cmd == "live_stop":
            assert isinstance(args, ApproveArgs)
            return await owner.stop_live(args.id, by=by)
        if cmd == "activity":
            if self.state_dir is None:
                raise OwnerActionError("not_found", "this daemon keeps no record to show")
            return await asyncio.to_thread(activity.activity, self.state_dir)
        if cmd == "preview":
            assert isinstance(args, PreviewArgs)
            if self.previews is None:
                raise OwnerActionError("no_preview", "This daemon does not make previews.")
            return await self.previews.chunk(args.id, args.offset, args.length)
        raise ProtocolError("unknown_command", f"unknown command {cmd!r}")

    async def _picture(self, camera: str) -> dict[str, Any]:
        pictures = self.pictures
        if pictures is None:
            return {"jpeg": None}
        if not pictures.known(camera):
            raise OwnerActionError("not_found", f"there is no camera {camera!r}")
        jpeg = await pictures.latest(camera)
        return {"jpeg": base64.b64encode(jpeg).decode() if jpeg is not None else None}
