"""Request claims (RTCC → site, DESIGN §4.2), validated per `cmd` with unknown claims forbidden.

Verification of the signature, issuer, audience and lifetime happens in `agent.link`; these
models only say what a well-formed claim set of each command looks like.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

# Payloads larger than this are refused before any parsing (DESIGN §6, issue 5).
MAX_REQUEST_BYTES = 16 * 1024

COMMANDS = ("clip", "snapshot", "stream", "cancel", "inventory")

# Claims are JSON: "5" is not 5 and true is not 1; a token that needs coercing is malformed.
StrictInt = Annotated[int, Field(strict=True)]
_UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[str, Field(strict=True, pattern=_UUID_PATTERN)]
ShortText = Annotated[str, Field(strict=True, min_length=1, max_length=128)]


def _date_time_text(value: object) -> object:
    # pydantic would read a number as Unix seconds; the protocol says RFC 3339 text.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2026-05-01T14:03:00Z")
    return value


# RFC 3339 text with an offset, never a number.
DateTimeText = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
# Header names S3 and friends sign; values are sent as given, never interpreted.
_FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade"}


MAX_URL = 4096
# What `_check_url` and the validators below enforce beyond the JSON Schema keywords, stated as
# `x-rules` in the schema so docs/asyncapi.json and docs/protocol.md (generated from these
# models by `agent.wire.constraints`) say it too.
_URL_RULES = ["no user:password@ in the URL", "must name a host"]
_HEADER_RULES = [
    "names: 1-128 characters of letters, digits, - and _",
    "not Host, Content-Length, Transfer-Encoding, Connection or Upgrade (the agent sets them)",
    "values without CR, LF or NUL",
]


def _rules(*rules: str, schemes: tuple[str, ...] = ()) -> dict[str, Any]:
    listed = [f"scheme {' or '.join(schemes)}", *rules] if schemes else list(rules)
    return {"x-rules": listed}


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    if len(value) > MAX_URL:
        raise ValueError("URL longer than 4096 characters")
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"URL scheme must be one of {', '.join(schemes)}")
    if not parts.hostname:
        raise ValueError("URL has no host")
    if parts.username or parts.password:
        raise ValueError("URL must not carry credentials")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UploadTarget(_Model):
    url: str = Field(
        strict=True,
        max_length=MAX_URL,
        description="HTTPS PUT target, e.g. an S3 presigned URL",
        json_schema_extra=_rules(*_URL_RULES, schemes=("https", "http")),
    )
    headers: dict[str, Annotated[str, Field(strict=True, max_length=2048)]] = Field(
        default_factory=dict, max_length=32, json_schema_extra=_rules(*_HEADER_RULES)
    )
    manifest_url: str | None = Field(
        None,
        strict=True,
        max_length=MAX_URL,
        description="HTTPS PUT target for the signed manifest",
        json_schema_extra=_rules(*_URL_RULES, schemes=("https", "http")),
    )

    @field_validator("url", "manifest_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, ("https", "http"))

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not name or len(name) > 128 or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"bad header name {name!r}")
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ValueError(f"header {name!r} is set by the agent")
            if any(c in header_value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a control character")
        return value


class RelayTarget(_Model):
    url: str = Field(
        strict=True,
        max_length=MAX_URL,
        description="WSS endpoint to stream to",
        json_schema_extra=_rules(*_URL_RULES, schemes=("wss", "ws")),
    )
    token: Annotated[str, Field(strict=True, min_length=16, max_length=2048)]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("wss", "ws"))


class RequestBase(_Model):
    iss: Annotated[str, Field(strict=True, min_length=1, max_length=256)]
    aud: Annotated[str, Field(strict=True, min_length=1, max_length=64)]
    iat: StrictInt
    exp: StrictInt
    nbf: StrictInt | None = None
    jti: Uuid
    requester: Annotated[str, Field(strict=True, max_length=128)] | None = None
    reason: Annotated[str, Field(strict=True, max_length=1000)] | None = None

    @property
    def lifetime(self) -> int:
        return self.exp - self.iat


class FootageRequest(RequestBase):
    case: ShortText
    camera: Annotated[str, Field(strict=True, min_length=1, max_length=64)]


class ClipRequest(FootageRequest):
    model_config = ConfigDict(json_schema_extra=_rules("end after start"))

    cmd: Literal["clip"]
    start: DateTimeText
    end: DateTimeText
    upload: UploadTarget

    @model_validator(mode="after")
    def _window(self) -> ClipRequest:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class SnapshotRequest(FootageRequest):
    cmd: Literal["snapshot"]
    at: DateTimeText | None = Field(None, description="Default: now")
    upload: UploadTarget


class StreamRequest(FootageRequest):
    cmd: Literal["stream"]
    relay: RelayTarget
    max_seconds: Annotated[int, Field(strict=True, ge=1, le=3600)]
    profile: Literal["main", "sub"] = "main"


class CancelRequest(RequestBase):
    cmd: Literal["cancel"]
    target: Uuid


class InventoryRequest(RequestBase):
    cmd: Literal["inventory"]


Request = Annotated[
    ClipRequest | SnapshotRequest | StreamRequest | CancelRequest | InventoryRequest,
    Field(discriminator="cmd"),
]
_REQUEST_ADAPTER: TypeAdapter[Request] = TypeAdapter(Request)


def parse_request_claims(claims: dict[str, Any]) -> Request:
    """Validate a claim set whose `cmd` is known; raises pydantic.ValidationError otherwise."""
    return _REQUEST_ADAPTER.validate_python(claims)


def window_of(request: ClipRequest) -> tuple[datetime, datetime]:
    return request.start, request.end
