"""The rolling clip store: hashed fragmented-MP4 segments, a SQLite index, retention, holds,
extraction and verification (DESIGN §5). The box parser it splits and checks segments with is
`agent.media.fmp4`, shared with the hub's live relay.

Use one `ClipStore(root, config=StoreConfig)` per process (`ClipStore.from_config(agent_config)`):

    store.reconcile()                       # once at daemon start, before any writer
    store.enforce_retention()               # periodically (writers also run it per segment)
    store.place_hold(id, camera, start, end, reason=...) / store.release_hold(id) -> bool
    store.extract(camera, start, end, dest, progress=...) -> ClipResult   # NoFootage if none
    store.coverage(camera, start, end) -> Coverage; store.status(); store.verify(camera)

Writer contract (for the recorder, one worker process per camera):

    store = ClipStore(root, config=store_config)          # opened inside the worker
    with store.open_writer(camera, input_container.streams.video[0], on_chunk=fan_out) as writer:
        for packet in input_container.demux(video_stream):
            writer.write(packet, time.time_ns() // 1000)  # receipt time, µs since the epoch

* `open_writer` takes the camera's cross-process lock (`WriterBusy` if another writer holds it)
  and first recovers any segment a crashed writer of that camera left open.
* `write` copies packets (no transcoding) into fragmented MP4 segments: fragments of at most
  `store.fragment_seconds`, written to the file as soon as they are complete (a `kill -9` loses
  at most that much), a new segment at the first keyframe after `store.segment_seconds`, the
  camera's timestamps kept (never reset per file). Packets before the first keyframe are
  dropped. A backwards or huge forward timestamp jump starts a new session at the next keyframe.
  Each packet is held until the next arrives (its duration must be known), so a packet's bytes
  reach the file one frame later; `close()` writes everything still buffered.
* `writer.flush_due_in_us` is the media time left before the fragment being assembled must be
  closed: a caller may leave packets unread (and read them in a batch) for up to that long
  without delaying the fragment, and so without widening what a crash would lose.
* `on_chunk(MediaChunk)` receives the very bytes written: an `init` chunk at the start of each
  session, then one `fragment` chunk per `moof`+`mdat` with `keyframe` (starts with a keyframe),
  `wall_us` and `duration_us`. Serve a live viewer the latest init, then fragments from the next
  keyframe one; `writer.init_segment` is the current init. The callback runs inline in the
  writer: keep it quick and non-blocking (queue the bytes); its exceptions are logged, ignored.
* A write error raises `StoreWriteError` (`DiskFullError` for ENOSPC/EDQUOT) after the segment
  was closed at its last complete fragment (or left for recovery if even that failed); the
  writer is then closed and the camera released. Report it, back off, run
  `store.enforce_retention()`, and open a new writer.
"""

from agent.store.errors import (
    DiskFullError,
    IndexUnavailable,
    InvalidWindow,
    NoFootage,
    StoreError,
    StoreNotFound,
    StoreWriteError,
    WriterBusy,
    WriterClosed,
)
from agent.store.index import SegmentRow, SegmentState
from agent.store.model import (
    CameraStatus,
    ClipResult,
    Coverage,
    ExpiredSegment,
    Gap,
    Hold,
    QuarantinedFile,
    ReconcileReport,
    RetentionReport,
    SegmentRef,
    Span,
    VerifyProblem,
    VerifyReport,
)
from agent.store.store import ClipStore
from agent.store.writer import ChunkCallback, MediaChunk, SegmentWriter

__all__ = [
    "CameraStatus",
    "ChunkCallback",
    "ClipResult",
    "ClipStore",
    "Coverage",
    "DiskFullError",
    "ExpiredSegment",
    "Gap",
    "Hold",
    "IndexUnavailable",
    "InvalidWindow",
    "MediaChunk",
    "NoFootage",
    "QuarantinedFile",
    "ReconcileReport",
    "RetentionReport",
    "SegmentRef",
    "SegmentRow",
    "SegmentState",
    "SegmentWriter",
    "Span",
    "StoreError",
    "StoreNotFound",
    "StoreWriteError",
    "VerifyProblem",
    "VerifyReport",
    "WriterBusy",
    "WriterClosed",
]
