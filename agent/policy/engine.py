"""The owner's sharing policy (DESIGN §4.4), enforced on the site after verification.

Checks on a verified request run in this order; the first failure is the code:

1. `paused` — the owner's pause switch (until `resume` or the end of `pause --for`) refuses
   every footage request (clip, snapshot, stream); `cancel` and `inventory` still work;
2. `rate_limited` — more than `policy.requests_per_hour` requests from the issuer in the last
   hour (a sliding window over the persisted request book, so a restart does not reset it;
   refused requests and cancels do not count);
3. `unknown_camera` — no such camera in the configuration; `not_shared` — a private camera;
4. `stream`: `live_not_allowed` unless the camera is integrated with live on (a registry camera
   is never live); the relay URL must pass `agent.policy.hosts` against
   `policy.allowed_relay_hosts`, else `upload_not_allowed` (the protocol's one code for "the
   destination is not allowed"; a separate relay code would break the wire contract). The
   request's `max_seconds` is lowered to `policy.max_live`, not refused;
5. `clip`: a window longer than `policy.max_clip_window` → `window_too_long`; ending later than
   now + `rtcc.clock_leeway` → `window_in_future` (the leeway absorbs the RTCC's clock running a
   little ahead and "the last five minutes" requests; delivery waits for the end to pass).
   `snapshot`: `at` later than now + leeway → `window_in_future`;
6. `clip`, `snapshot`: the upload URL and the manifest URL against
   `policy.allowed_upload_hosts` → `upload_not_allowed`;
7. then integrated → `accepted`, registry → `pending_approval` (the owner decides).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from agent.config import AgentConfig, CameraConfig, SharingMode
from agent.policy.hosts import destination_problem
from agent.policy.state import (
    STATE_FILE,
    CameraOverride,
    OwnerDecision,
    OwnerState,
    OwnerStateError,
    OwnerStateStore,
    legacy_problem,
)
from agent.wire import CameraListing, RejectCode, Request
from agent.wire.registry import Location, Verdict
from agent.wire.requests import (
    CancelRequest,
    ClipRequest,
    InventoryRequest,
    SnapshotRequest,
    StreamRequest,
)

Outcome = Literal["accepted", "pending_approval", "rejected"]


class PolicyError(Exception):
    """The owner asked for a change the configuration does not allow (message says why)."""


class NotOwnerError(PolicyError):
    """This process may not write the owner's choices (it is not root or the owner group)."""


@dataclass(frozen=True)
class CameraSharing:
    camera: str
    name: str
    mode: SharingMode
    live: bool
    source: Literal["config", "owner"]


@dataclass(frozen=True)
class CameraFacts:
    """What the rest of the daemon knows about a camera, for the registry listing."""

    online: bool = False
    footage_hours: float = 0.0
    verdict: Verdict = "unknown"
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    code: RejectCode | None = None
    message: str = ""

    @classmethod
    def reject(cls, code: RejectCode, message: str) -> Decision:
        return cls("rejected", code, message)


def _location(camera: CameraConfig) -> Location | None:
    loc = camera.location
    if loc is None:
        return None
    return Location(
        lat=loc.lat, lon=loc.lon, heading=loc.heading, fov=loc.fov, description=loc.description
    )


class Policy:
    def __init__(
        self, config: AgentConfig, store: OwnerStateStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._state = store.load()
        self._leeway = config.rtcc.clock_leeway
        # Changes are saved from worker threads (the save fsyncs and waits for the owner's
        # file lock; the event loop must not): one at a time, or an older state read back
        # could replace a newer one in memory.
        self._commit_lock = threading.Lock()

    @classmethod
    def open(cls, config: AgentConfig, *, clock: Callable[[], float] = time.time) -> Policy:
        """OwnerStateError when the owner's file is damaged or still in the state directory."""
        problem = legacy_problem(Path(config.state_dir), config.owner_dir)
        if problem:
            raise OwnerStateError(problem)
        return cls(config, OwnerStateStore(config.owner_dir / STATE_FILE), clock=clock)

    @property
    def owner_file(self) -> Path:
        return self._store.path

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # The owner's layer over the configuration.

    def sharing(self, camera_id: str) -> CameraSharing | None:
        camera = self._config.camera(camera_id)
        if camera is None:
            return None
        override = self._state.sharing.get(camera_id)
        if override is not None:
            return CameraSharing(camera.id, camera.name, override.mode, override.live, "owner")
        return CameraSharing(camera.id, camera.name, camera.sharing, camera.live, "config")

    def all_sharing(self) -> list[CameraSharing]:
        out = []
        for camera in self._config.cameras:
            sharing = self.sharing(camera.id)
            assert sharing is not None
            out.append(sharing)
        return out

    def set_sharing(
        self, camera_id: str, mode: SharingMode, *, live: bool | None, by: str
    ) -> tuple[CameraSharing, CameraSharing]:
        """Change one camera's sharing; returns (before, after). PolicyError if not allowed."""
        camera = self._config.camera(camera_id)
        before = self.sharing(camera_id)
        if camera is None or before is None:
            raise PolicyError(f"there is no camera {camera_id!r} in the configuration")
        if live is None:
            live = before.live and mode is SharingMode.INTEGRATED
        if live and mode is not SharingMode.INTEGRATED:
            raise PolicyError("live view needs sharing mode integrated")
        if mode is not SharingMode.PRIVATE and camera.location is None:
            raise PolicyError(
                f"camera {camera_id!r} has no location in the configuration; a {mode.value} "
                "camera is listed on the map, so set [cameras.location] first"
            )
        override = CameraOverride(mode=mode, live=live, changed=self._now(), by=by)

        def recorded(state: OwnerState) -> bool:
            saved = state.sharing.get(camera_id)
            return saved is not None and (saved.mode, saved.live) == (mode, live)

        self._commit(
            lambda state: state.model_copy(
                update={"sharing": {**state.sharing, camera_id: override}}
            ),
            recorded,
        )
        after = self.sharing(camera_id)
        assert after is not None
        return before, after

    @property
    def paused(self) -> bool:
        return self._state.paused_at(self._now())

    @property
    def paused_until(self) -> datetime | None:
        """When an active pause ends (None when not paused or paused until resumed)."""
        return self._state.paused_until if self.paused else None

    @property
    def pause_expiry(self) -> datetime | None:
        """The end of a timed pause still recorded as on, even if that time has passed."""
        return self._state.paused_until if self._state.paused else None

    def pause(self, *, until: datetime | None, by: str) -> None:
        now = self._now()
        self._commit(
            lambda state: state.model_copy(
                update={"paused": True, "paused_until": until, "paused_by": by}
            ),
            lambda state: state.paused_at(now) and (state.paused_until is None) == (until is None),
        )

    def resume(self) -> bool:
        """Switch the pause off; False if it was not on."""
        was_on = self._state.paused
        if was_on:
            now = self._now()
            self._commit(
                lambda state: state.model_copy(
                    update={"paused": False, "paused_until": None, "paused_by": ""}
                ),
                lambda state: not state.paused_at(now),
            )
        return was_on

    def record_decision(
        self, jti: str, decision: Literal["approved", "denied"], *, reason: str = "", by: str
    ) -> None:
        """Record the owner's answer to request `jti` before anything acts on it."""
        answer = OwnerDecision(decision=decision, reason=reason, at=self._now(), by=by)

        def recorded(state: OwnerState) -> bool:
            saved = state.decisions.get(jti)
            return saved is not None and saved.decision == decision

        self._commit(lambda state: state.with_decision(jti, answer), recorded)

    def decision(self, jti: str) -> OwnerDecision | None:
        return self._state.decisions.get(jti)

    def _commit(
        self, change: Callable[[OwnerState], OwnerState], recorded: Callable[[OwnerState], bool]
    ) -> None:
        """Make an owner's change effective: adopt it when the owner's file already records it
        (the owner's CLI writes first, then tells the daemon), else write it — which only root
        and the owner group can. PolicyError with a plain sentence when this process may not.
        Blocks on the disk: from the event loop, call it through `asyncio.to_thread`."""
        with self._commit_lock:
            self._commit_locked(change, recorded)

    def _commit_locked(
        self, change: Callable[[OwnerState], OwnerState], recorded: Callable[[OwnerState], bool]
    ) -> None:
        on_disk = self._store.load()
        if recorded(on_disk):
            if on_disk.paused and not on_disk.paused_at(self._now()):
                # A timed pause that has ended: off here, whatever the file still says.
                on_disk = on_disk.model_copy(
                    update={"paused": False, "paused_until": None, "paused_by": ""}
                )
            self._state = on_disk
            return
        try:
            self._state = self._store.update(change)
        except OwnerStateError as exc:
            if isinstance(exc.__cause__, PermissionError):
                raise NotOwnerError(
                    f"Only the owner can do that: {self._store.path.parent} is writable by root "
                    f"and the {self._config.control.owner_group} group only. Run the command "
                    "with sudo, or as a member of that group."
                ) from exc
            raise

    # Judging a verified request.

    def evaluate(self, request: Request, *, recent_requests: int) -> Decision:
        """`recent_requests`: the issuer's counted requests in the last hour, this one excluded."""
        if isinstance(request, CancelRequest):
            return Decision("accepted")
        footage = not isinstance(request, InventoryRequest)
        if footage and self.paused:
            until = self.paused_until
            when = f" until {until.isoformat()}" if until else ""
            return Decision.reject(RejectCode.PAUSED, f"the owner has paused sharing{when}")
        if recent_requests >= self._config.policy.requests_per_hour:
            return Decision.reject(
                RejectCode.RATE_LIMITED,
                f"more than {self._config.policy.requests_per_hour} requests in the last hour",
            )
        if isinstance(request, InventoryRequest):
            return Decision("accepted")
        return self._footage(request)

    def _footage(self, request: ClipRequest | SnapshotRequest | StreamRequest) -> Decision:
        sharing = self.sharing(request.camera)
        if sharing is None:
            return Decision.reject(RejectCode.UNKNOWN_CAMERA, "no such camera at this site")
        if sharing.mode is SharingMode.PRIVATE:
            return Decision.reject(RejectCode.NOT_SHARED, "the owner does not share this camera")
        policy = self._config.policy
        now = self._now()
        if isinstance(request, StreamRequest):
            if not (sharing.mode is SharingMode.INTEGRATED and sharing.live):
                return Decision.reject(
                    RejectCode.LIVE_NOT_ALLOWED, "the owner does not allow live view of it"
                )
            problem = destination_problem(
                request.relay.url,
                policy.allowed_relay_hosts,
                secure="wss",
                plain="ws",
                what="relay",
            )
            if problem:
                return Decision.reject(RejectCode.UPLOAD_NOT_ALLOWED, problem)
        elif isinstance(request, ClipRequest):
            if request.end - request.start > policy.max_clip_window:
                return Decision.reject(
                    RejectCode.WINDOW_TOO_LONG,
                    f"the window is longer than {policy.max_clip_window.total_seconds():.0f} s",
                )
            if request.end > now + self._leeway:
                return Decision.reject(RejectCode.WINDOW_IN_FUTURE, "the window ends in the future")
        elif request.at is not None and request.at > now + self._leeway:
            return Decision.reject(
                RejectCode.WINDOW_IN_FUTURE, "the snapshot time is in the future"
            )
        if not isinstance(request, StreamRequest):
            for what, url in (
                ("upload", request.upload.url),
                ("manifest", request.upload.manifest_url),
            ):
                if url is None:
                    continue
                problem = destination_problem(
                    url, policy.allowed_upload_hosts, secure="https", plain="http", what=what
                )
                if problem:
                    return Decision.reject(RejectCode.UPLOAD_NOT_ALLOWED, problem)
        if sharing.mode is SharingMode.INTEGRATED:
            return Decision("accepted")
        return Decision("pending_approval")

    def live_cap(self, request: StreamRequest) -> int:
        """The live session length to use: the request's, at most `policy.max_live`."""
        return min(request.max_seconds, int(self._config.policy.max_live.total_seconds()))

    # The registry.

    def listings(self, facts: Callable[[str], CameraFacts]) -> list[CameraListing]:
        """Every camera that is not private, with its effective sharing."""
        out = []
        for camera in self._config.cameras:
            sharing = self.sharing(camera.id)
            assert sharing is not None
            if sharing.mode is SharingMode.PRIVATE:
                continue
            known = facts(camera.id)
            out.append(
                CameraListing(
                    id=camera.id,
                    name=camera.name,
                    location=_location(camera),
                    sharing=sharing.mode.value,
                    live=sharing.live,
                    verdict=known.verdict,
                    online=known.online,
                    footage_hours=known.footage_hours,
                    vendor=known.vendor,
                    model=known.model,
                    firmware=known.firmware,
                )
            )
        return out
