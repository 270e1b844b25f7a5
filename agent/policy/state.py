"""The owner's runtime changes (sharing per camera, pause), persisted in the state directory.

The configuration file under /etc is read-only to the daemon, so what the owner changes with
`rtcc-edge sharing set` / `pause` is kept in `<state_dir>/owner-policy.json` (written atomically)
and layered over the configuration. A damaged file is an error, never silently ignored: falling
back to the configuration could share a camera the owner had made private.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from agent.config import SharingMode
from agent.fsutil import atomic_write

STATE_FILE = "owner-policy.json"


class OwnerStateError(Exception):
    """The owner's saved policy cannot be read or written."""


class CameraOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: SharingMode
    live: bool
    changed: AwareDatetime
    by: str = ""


class OwnerState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    sharing: dict[str, CameraOverride] = Field(default_factory=dict)
    paused: bool = False
    paused_until: AwareDatetime | None = Field(
        None, description="None while paused: until the owner resumes"
    )
    paused_by: str = ""

    def paused_at(self, now: datetime) -> bool:
        return self.paused and (self.paused_until is None or now < self.paused_until)


class OwnerStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> OwnerState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return OwnerState()
        except OSError as exc:
            raise OwnerStateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            return OwnerState.model_validate_json(raw)
        except ValidationError as exc:
            raise OwnerStateError(
                f"{self.path} is damaged ({exc.error_count()} problem(s)); fix or remove it "
                "after checking which cameras the owner had changed"
            ) from exc

    def save(self, state: OwnerState) -> None:
        data = json.dumps(state.model_dump(mode="json"), indent=2).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, data, mode=0o640)
        except OSError as exc:
            raise OwnerStateError(f"cannot save {self.path}: {exc.strerror}") from exc
