"""The owner control protocol: JSON lines over a Unix socket, one response per request.

Request:  `{"v": 1, "cmd": "approve", "args": {"id": "3f2a…"}}`
Response: `{"v": 1, "ok": true, "result": …}` or
          `{"v": 1, "ok": false, "error": {"code": "not_pending", "message": "…"}}`

Commands and their arguments: `status` {}, `requests` {`all`: bool, `limit`: int},
`approve` {`id`}, `deny` {`id`, `reason`}, `sharing` {}, `sharing_set` {`camera`, `mode`,
`live`: bool or null}, `pause` {`seconds`: number or null for "until resumed"}, `resume` {},
`live_stop` {`id`} (end a live session in progress; `status` lists them under `live`),
`picture` {`camera`} → {`jpeg`: base64 JPEG of its newest recorded frame, or null},
`activity` {} → {`check`: {`ok`, `words`}, `report`: the figures of `audit report --json` or
null with `report_error`},
`preview` {`id`, `offset`, `length`} (a piece of the footage a pending request would share,
base64-encoded, at most 1 MiB; `agent.control.preview`),
`seal` {`text`} and `reload` {} (`agent.control.seal`, `agent.control.reload`: the owner's page
stores camera passwords and applies configuration changes through them).
`id` is a request id or an unambiguous prefix of at least 4 characters. `requests` with
`sent: true` adds each request's `bytes_sent` (from the ledger's uploads).

The commands that change something take an optional `via: "page"`: the owner's page says so,
and the ledger names who acted "… through the owner's page" (who acted is still the caller's
uid, from the socket).

Parsing is strict: duplicate members (`{"cmd": "status", "cmd": "pause"}`: which one did the
caller mean?), NaN, text that is not valid Unicode and any type coercion (`"v": "1"`,
`"all": "yes"`, `"limit": 5.0`) are refused as `bad_request` / `bad_arguments`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import SafeId, SharingMode
from agent.control.auth import Via
from agent.wire.strict_json import loads_strict

VERSION = 1
MAX_LINE = 64 * 1024
MAX_PAUSE_SECONDS = 366 * 86400
MAX_PREVIEW_CHUNK = 1024 * 1024

Command = Literal[
    "status",
    "requests",
    "approve",
    "deny",
    "sharing",
    "sharing_set",
    "pause",
    "resume",
    "live_stop",
    "picture",
    "activity",
    "preview",
    "seal",
    "reload",
]


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoArgs(_Args):
    pass


class OwnerArgs(_Args):
    """A change the owner makes; `via` only adds words to who the ledger names."""

    via: Via | None = None


class RequestsArgs(_Args):
    all: bool = False
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    sent: bool = False


class ApproveArgs(OwnerArgs):
    id: Annotated[str, Field(min_length=1, max_length=128)]


class DenyArgs(ApproveArgs):
    reason: Annotated[str, Field(max_length=1000)] = ""


class SharingSetArgs(OwnerArgs):
    camera: Annotated[str, Field(min_length=1, max_length=64)]
    mode: SharingMode
    live: bool | None = None


class PauseArgs(OwnerArgs):
    seconds: Annotated[float, Field(gt=0, le=MAX_PAUSE_SECONDS)] | None = None


class PictureArgs(_Args):
    camera: SafeId


class PreviewArgs(ApproveArgs):
    offset: Annotated[int, Field(ge=0)] = 0
    length: Annotated[int, Field(ge=0, le=MAX_PREVIEW_CHUNK)] = MAX_PREVIEW_CHUNK


class SealArgs(_Args):
    text: Annotated[str, Field(max_length=1024)]


ARGS: dict[str, type[_Args]] = {
    "status": NoArgs,
    "requests": RequestsArgs,
    "approve": ApproveArgs,
    "deny": DenyArgs,
    "sharing": NoArgs,
    "sharing_set": SharingSetArgs,
    "pause": PauseArgs,
    "resume": OwnerArgs,
    "live_stop": ApproveArgs,
    "picture": PictureArgs,
    "activity": NoArgs,
    "preview": PreviewArgs,
    "seal": SealArgs,
    "reload": NoArgs,
}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: int
    cmd: str
    args: dict[str, Any] = Field(default_factory=dict)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "request"
    return f"{where}: {first['msg']}"


def parse_request(line: bytes) -> tuple[str, _Args]:
    """The command and its validated arguments; ProtocolError says what is wrong."""
    try:
        loads_strict(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_request", f"not a JSON request: {exc}") from exc
    try:
        # Validated from the JSON text, so that strict mode still reads "integrated" as a
        # SharingMode while refusing "1" as an int.
        envelope = Envelope.model_validate_json(line)
    except ValidationError as exc:
        raise ProtocolError("bad_request", _first_error(exc)) from exc
    if envelope.v != VERSION:
        raise ProtocolError(
            "unsupported_version", f"protocol version {envelope.v} is not {VERSION}"
        )
    model = ARGS.get(envelope.cmd)
    if model is None:
        raise ProtocolError("unknown_command", f"unknown command {envelope.cmd[:40]!r}")
    try:
        return envelope.cmd, model.model_validate_json(json.dumps(envelope.args))
    except ValidationError as exc:
        raise ProtocolError("bad_arguments", _first_error(exc)) from exc


def encode_request(cmd: str, args: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, "cmd": cmd, "args": args}).encode() + b"\n"


def encode_ok(result: Any) -> bytes:
    return json.dumps({"v": VERSION, "ok": True, "result": result}, default=str).encode() + b"\n"


def encode_error(code: str, message: str) -> bytes:
    error = {"code": code, "message": message}
    return json.dumps({"v": VERSION, "ok": False, "error": error}).encode() + b"\n"
