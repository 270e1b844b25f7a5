"""One pydantic model per ledger entry kind: what `Ledger.append` takes, and what the
transparency report reads back.

The entry's `data` is the model's fields as given (`exclude_unset`: a field left out is not
written, so an entry says only what was known). Reading back (`parse_entry_data`) is lenient
about extra fields, so that a ledger written by an older or newer agent still reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.ledger.chain import Entry, Kind


class LedgerEntry(BaseModel):
    """The base of every entry model; `kind` names the entry kind it is written as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[Kind]

    def data(self) -> dict[str, Any]:
        return self.model_dump(mode="python", exclude_unset=True)


class _About(LedgerEntry):
    """Fields naming the request an entry is about."""

    jti: str | None = None
    issuer: str | None = None
    cmd: str | None = None
    camera: str | None = None


class RequestReceived(_About):
    """A request payload that was a JWT, verified or not (`code` None: it passed)."""

    kind: ClassVar[Kind] = Kind.REQUEST_RECEIVED
    verified: bool
    bytes: int = Field(ge=0)
    kid: str | None = None
    code: str | None = None
    message: str | None = None
    case: str | None = None
    requester: str | None = None
    reason: str | None = None
    window: list[datetime] | None = None
    upload_host: str | None = None
    relay_host: str | None = None
    max_seconds: int | None = None
    target: str | None = None


class Unparseable(LedgerEntry):
    """A payload that was not even a JWT."""

    kind: ClassVar[Kind] = Kind.UNPARSEABLE
    bytes: int = Field(ge=0)
    sha256: str
    code: str
    message: str


class Decision(_About):
    kind: ClassVar[Kind] = Kind.DECISION
    outcome: Literal["accepted", "pending_approval", "rejected"]
    code: str | None = None
    message: str | None = None


class Approval(_About):
    kind: ClassVar[Kind] = Kind.APPROVAL
    by: str


class Denial(_About):
    kind: ClassVar[Kind] = Kind.DENIAL
    by: str
    reason: str = ""


class RequestClosed(_About):
    kind: ClassVar[Kind] = Kind.REQUEST_CLOSED
    state: str
    code: str | None = None
    message: str | None = None


class HoldPlaced(LedgerEntry):
    kind: ClassVar[Kind] = Kind.HOLD_PLACED
    hold_id: str
    jti: str
    camera: str
    start: datetime
    end: datetime


class HoldReleased(LedgerEntry):
    kind: ClassVar[Kind] = Kind.HOLD_RELEASED
    hold_id: str
    jti: str
    released: bool


class OutflowEntry(LedgerEntry):
    """Who asked and for which case, in the entry itself: the owner's report of what left the
    site should not need a join with the request's own entry."""

    jti: str
    issuer: str | None = None
    requester: str | None = None
    case: str | None = None
    camera: str | None = None


class UploadStarted(OutflowEntry):
    """Written, durably, before the first byte of an object leaves the site."""

    kind: ClassVar[Kind] = Kind.UPLOAD_STARTED
    object: str
    host: str
    size: int = Field(ge=0)
    sha256: str


class Upload(OutflowEntry):
    """How a sending ended. `bytes`: what actually left the site, every attempt counted."""

    kind: ClassVar[Kind] = Kind.UPLOAD
    bytes: int = Field(ge=0)
    host: str | None = None
    object: str | None = None
    outcome: str | None = None
    message: str | None = None
    size: int | None = None
    sha256: str | None = None
    seconds: float | None = None
    attempts: int | None = None
    attempts_total: int | None = None
    tries: list[dict[str, Any]] | None = None


class LiveSession(OutflowEntry):
    kind: ClassVar[Kind] = Kind.LIVE_SESSION
    seconds: float = Field(ge=0)
    reason: str
    started: str | None = None
    bytes: int | None = None
    host: str | None = None


class SharingChanged(LedgerEntry):
    kind: ClassVar[Kind] = Kind.SHARING_CHANGED
    camera: str
    mode: str
    live: bool
    previous_mode: str
    previous_live: bool
    by: str


class Paused(LedgerEntry):
    kind: ClassVar[Kind] = Kind.PAUSED
    until: datetime | None
    by: str


class Resumed(LedgerEntry):
    kind: ClassVar[Kind] = Kind.RESUMED
    automatic: bool
    by: str


class Checkpoint(LedgerEntry):
    kind: ClassVar[Kind] = Kind.CHECKPOINT
    head_seq: int
    head_hash: str
    kid: str
    jws: str


class Recovered(LedgerEntry):
    kind: ClassVar[Kind] = Kind.RECOVERED
    reason: str
    bytes: int
    sha256: str
    preview: str


class OwnerRefused(LedgerEntry):
    """Someone who is not the owner asked the daemon for an owner's command (approve, pause, a
    preview of footage…) and was refused: who, what, and the request it named, if any."""

    kind: ClassVar[Kind] = Kind.OWNER_REFUSED
    cmd: str
    by: str
    request: str | None = None
    camera: str | None = None


ENTRY_TYPES: dict[str, type[LedgerEntry]] = {
    model.kind.value: model
    for model in (
        RequestReceived,
        Unparseable,
        Decision,
        Approval,
        Denial,
        RequestClosed,
        HoldPlaced,
        HoldReleased,
        UploadStarted,
        Upload,
        LiveSession,
        SharingChanged,
        Paused,
        Resumed,
        Checkpoint,
        Recovered,
        OwnerRefused,
    )
}


def parse_entry_data(entry: Entry) -> LedgerEntry | None:
    """The typed form of an entry read from the file; None for an unknown kind or data that
    does not fit its model (a hand-edited or foreign ledger: `audit verify` judges those)."""
    model = ENTRY_TYPES.get(entry.kind)
    if model is None:
        return None
    known = {name: value for name, value in entry.data.items() if name in model.model_fields}
    try:
        return model.model_validate(known)
    except ValidationError:
        return None
