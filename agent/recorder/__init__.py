"""Recording every configured camera: one supervised worker process per camera.

    supervisor = Supervisor(config.cameras, state_dir=..., store_root=..., store_config=...)
    await supervisor.start()
    supervisor.board.snapshot()          # per-camera CameraState (status, last error, ...)
    async with supervisor.live.subscribe("front-door") as feed:   # live fMP4, see live.py
        async for chunk in feed: ...
    await supervisor.stop()              # segments closed at their last complete fragment

Workers (`worker.py`) pull RTSP with PyAV and write through `agent.store`'s segment writer;
they are forked from a fork server that preloaded PyAV, so the daemon itself is never forked
and each worker costs a few MB. A worker that has caught up with its camera reads in batches
(`RecorderSettings.read_batch`, never past a fragment's due time), which takes about a third
off its CPU; see docs/recording.md. Each camera's RTSP URL and credentials, and the PyAV open,
come from `agent.media`; the recorder keeps what is its own: reconnecting (`probe.py`, the
worker's backoff) and the timestamps it writes (`timestamps.py`).

Other processes (`rtcc-edge store status`) read the daemon's view of the recorders and of its
link with `read_state_file(state_file_path(config.state_dir))`: None if no daemon ever wrote
it, else a `StateFile` whose `daemon_running()` says whether it is current; `rtcc-edge status`
asks the daemon itself. `overview.py` turns either into the rows the owner sees (state, since,
last error, last frame, days held against the program's bar).
"""

from agent.recorder.live import LiveChunk, LiveFeed, LiveHub, UnknownCamera
from agent.recorder.state import (
    STATE_FILE,
    CameraState,
    RecorderStatus,
    StateBoard,
    StateFile,
    StateFileWriter,
    read_state_file,
    state_file_path,
)
from agent.recorder.supervisor import (
    RecorderSettings,
    Reload,
    RestartBudget,
    Supervisor,
    wait_for_old_workers,
)

__all__ = [
    "STATE_FILE",
    "CameraState",
    "LiveChunk",
    "LiveFeed",
    "LiveHub",
    "RecorderSettings",
    "RecorderStatus",
    "Reload",
    "RestartBudget",
    "StateBoard",
    "StateFile",
    "StateFileWriter",
    "Supervisor",
    "UnknownCamera",
    "read_state_file",
    "state_file_path",
    "wait_for_old_workers",
]
