"""What the owner sees of each camera's recording: one row per camera, the same for
`rtcc-edge status` (from the running daemon) and `rtcc-edge store status` (from the state file
and the store's index).

A row joins the recorder's state (recording / reconnecting / offline / disk_full / failed …,
since when, the last error, the last frame written) with the footage the store holds for the
camera, measured against the program's bar (`compat.min_retention`, 48 h by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from agent.recorder.state import CameraState, LinkInfo, RecorderStatus, StateFile
from agent.store.model import CameraStatus

DAEMON_NOT_RUNNING = "the rtcc-edge daemon is not running"


class CameraOverview(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: str
    state: str  # a RecorderStatus value
    since: datetime | None
    last_error: str | None
    last_frame: datetime | None
    footage_days: float  # footage the store holds for this camera, in days
    bar_days: float  # the program's bar (compat.min_retention), in days
    meets_bar: bool
    oldest: datetime | None
    newest: datetime | None


class DaemonOverview(BaseModel):
    """The daemon as another process sees it through the state file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    running: bool
    pid: int | None
    link: LinkInfo | None  # None when the daemon is not running


def _days(seconds: float) -> float:
    return round(seconds / 86400, 4)


def camera_overview(
    cameras: Iterable[str],
    states: Mapping[str, CameraState] | None,
    footage: Mapping[str, CameraStatus],
    *,
    bar: timedelta,
    stopped_at: datetime | None = None,
) -> list[CameraOverview]:
    """One row per camera in `cameras`, then any camera the store still holds footage of.

    `states` None means no daemon runs: every camera is `stopped` (since `stopped_at`, the last
    time the daemon wrote its state, when known), whatever the last state file said.
    """
    ordered = list(dict.fromkeys([*cameras, *footage]))
    rows: list[CameraOverview] = []
    for camera in ordered:
        state = states.get(camera) if states is not None else None
        held = footage.get(camera)
        seconds = held.seconds if held else 0.0
        error: str | None
        if states is None:
            status, since, error = RecorderStatus.STOPPED.value, stopped_at, DAEMON_NOT_RUNNING
        elif state is None:
            # Footage of a camera no longer in the configuration: nothing records it.
            status, since, error = RecorderStatus.STOPPED.value, None, "not configured"
        else:
            status, since, error = state.status.value, state.since, state.last_error
        rows.append(
            CameraOverview(
                camera=camera,
                state=status,
                since=since,
                last_error=error,
                last_frame=state.last_frame if state else None,
                footage_days=_days(seconds),
                bar_days=_days(bar.total_seconds()),
                meets_bar=seconds >= bar.total_seconds(),
                oldest=held.oldest if held else None,
                newest=held.newest if held else None,
            )
        )
    return rows


def from_state_file(
    cameras: Iterable[str],
    state_file: StateFile | None,
    footage: Mapping[str, CameraStatus],
    *,
    bar: timedelta,
) -> tuple[DaemonOverview, list[CameraOverview]]:
    """The overview another process builds from the daemon's state file (`store status`)."""
    running = state_file is not None and state_file.daemon_running()
    if state_file is not None and running:
        daemon = DaemonOverview(running=True, pid=state_file.pid, link=state_file.link)
        rows = camera_overview(cameras, state_file.cameras, footage, bar=bar)
    else:
        stopped_at = state_file.written_at if state_file is not None else None
        daemon = DaemonOverview(running=False, pid=None, link=None)
        rows = camera_overview(cameras, None, footage, bar=bar, stopped_at=stopped_at)
    return daemon, rows
