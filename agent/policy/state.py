"""The owner's runtime choices (sharing per camera, pause, approvals and denials).

They are kept in `<owner_dir>/owner-policy.json` (`/etc/rtcc-edge/owner/` on an install: root
and the `rtcc-edge-owner` group write it, the service user only reads), written atomically under
a lock by the owner's CLI, and layered over the configuration by the daemon. The service user
cannot write them, so a process running as the service (a compromised recorder) cannot share a
camera, lift a pause or forge an approval in the owner's name. A damaged file is an error, never
silently ignored: falling back to the configuration could share a camera the owner had made
private. Versions before the owner boundary kept the file in the state directory; that copy is
refused (`legacy_problem`) until root moves it (the installer does).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from agent.config import SharingMode
from agent.fsutil import atomic_write

STATE_FILE = "owner-policy.json"
LOCK_FILE = ".lock"
FILE_MODE = 0o644  # the service reads it as "other"; only the directory's group may replace it
MAX_DECISIONS = 2000  # older decisions are dropped; the ledger keeps every one


class OwnerStateError(Exception):
    """The owner's saved policy cannot be read or written."""


class CameraOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: SharingMode
    live: bool
    changed: AwareDatetime
    by: str = ""


class OwnerDecision(BaseModel):
    """The owner's answer to one pending request, recorded before the daemon acts on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Literal["approved", "denied"]
    reason: str = ""
    at: AwareDatetime
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
    decisions: dict[str, OwnerDecision] = Field(default_factory=dict)

    def with_decision(self, jti: str, decision: OwnerDecision) -> OwnerState:
        kept = dict(list(self.decisions.items())[-(MAX_DECISIONS - 1) :])
        kept.pop(jti, None)
        return self.model_copy(update={"decisions": {**kept, jti: decision}})

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

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Two owners (or the owner's CLI and a root daemon) must not lose each other's change.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o2775)
        # Read-only is enough for flock, and works whichever owner created the lock file.
        fd = os.open(self.path.parent / LOCK_FILE, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[OwnerState], OwnerState]) -> OwnerState:
        """Load, change and save under the directory's lock; the saved state.

        OwnerStateError (PermissionError as its cause) when this process may not write here.
        """
        try:
            with self._locked():
                state = change(self.load())
                self._write(state)
        except OSError as exc:
            raise OwnerStateError(f"cannot save {self.path}: {exc.strerror}") from exc
        return state

    def save(self, state: OwnerState) -> None:
        self.update(lambda _old: state)

    def _write(self, state: OwnerState) -> None:
        data = json.dumps(state.model_dump(mode="json"), indent=2).encode()
        try:
            atomic_write(self.path, data, mode=FILE_MODE)
        except OSError as exc:
            raise OwnerStateError(f"cannot save {self.path}: {exc.strerror}") from exc


def legacy_problem(state_dir: Path, owner_dir: Path) -> str | None:
    """Why an older version's owner file in the state directory blocks start, or None."""
    legacy = state_dir / STATE_FILE
    try:
        if not legacy.exists() or (owner_dir / STATE_FILE).exists():
            return None
    except PermissionError:
        # A process that may not look into the state directory (the owner's page under its own
        # user): the daemon, which can, makes this check when it starts.
        return None
    return (
        f"the owner's choices are in {legacy}, where the service itself can write them; as root, "
        f"move that file to {owner_dir / STATE_FILE} (re-running the installer does it)"
    )
