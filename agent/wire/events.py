"""Event claims (site → RTCC, DESIGN §4.3): one model, the fields each state needs checked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.wire.codes import EventState, RejectCode
from agent.wire.registry import CameraListing

_REQUIRED: dict[EventState, tuple[str, ...]] = {
    EventState.REJECTED: ("code", "message"),
    EventState.FAILED: ("code", "message"),
    EventState.PROGRESS: ("bytes_sent", "bytes_total"),
    EventState.STREAMING: ("started",),
    EventState.ENDED: ("reason",),
}


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(description="site id")
    iat: int
    req: Annotated[str, Field(max_length=128)] = Field(description="the request's jti")
    state: EventState
    seq: Annotated[int, Field(ge=1)]
    code: RejectCode | None = None
    message: Annotated[str, Field(max_length=2000)] | None = None
    bytes_sent: Annotated[int, Field(ge=0)] | None = None
    bytes_total: Annotated[int, Field(ge=0)] | None = None
    manifest: str | None = Field(None, description="compact JWS of the clip/snapshot manifest")
    started: datetime | None = None
    reason: str | None = Field(None, description="why a live session ended")
    cameras: list[CameraListing] | None = Field(None, description="inventory answer")

    @model_validator(mode="after")
    def _fields_for_state(self) -> Event:
        missing = [name for name in _REQUIRED.get(self.state, ()) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.state.value} event needs {', '.join(missing)}")
        return self

    @property
    def final(self) -> bool:
        from agent.wire.codes import FINAL_STATES

        return self.state in FINAL_STATES
