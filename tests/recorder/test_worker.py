"""Pieces of the worker that can be checked without a camera: error classification, the libav
options, the backoff, timestamp repair, the RTSP probe. (The worker itself runs against camsim
in the other recorder tests.)"""

from __future__ import annotations

import errno
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.config import StoreConfig
from agent.media.source import rtsp_source
from agent.recorder.probe import rtsp_address, rtsp_answers
from agent.recorder.timestamps import TimestampRepair
from agent.recorder.worker import Backoff, WorkerSpec, is_disk_full, rtsp_options
from agent.store import DiskFullError, IndexUnavailable, StoreWriteError


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def test_disk_full_is_recognised_however_deep_the_cause() -> None:
    assert is_disk_full(DiskFullError("full", errno=errno.ENOSPC))
    assert is_disk_full(OSError(errno.EDQUOT, "quota exceeded"))
    assert not is_disk_full(StoreWriteError("io", errno=errno.EIO))
    assert not is_disk_full(IndexUnavailable("busy"))
    # The writer raises StoreWriteError while handling IndexUnavailable(from sqlite3 FULL).
    try:
        try:
            raise IndexUnavailable("cannot write the index") from _sqlite_error(
                "database or disk is full", sqlite3.SQLITE_FULL
            )
        except IndexUnavailable:
            raise StoreWriteError("cannot write the index")  # noqa: B904 - as the writer does
    except StoreWriteError as exc:
        assert is_disk_full(exc)
    locked = IndexUnavailable("locked")
    locked.__cause__ = _sqlite_error("database is locked", sqlite3.SQLITE_BUSY)
    assert not is_disk_full(locked)


def test_rtsp_options_are_bounded_and_tcp(tmp_path: Path) -> None:
    spec = WorkerSpec(
        camera="cam",
        source=rtsp_source("rtsp://cam/live", username=None, password=None),
        store_root=tmp_path,
        store=StoreConfig(),
        lock_path=tmp_path / "lock",
        open_timeout=5,
        read_timeout=12.5,
        reconnect_initial=1,
        reconnect_cap=30,
        extra_options={"user_agent": "rtcc-edge"},
    )
    options = rtsp_options(spec)
    assert options["rtsp_transport"] == "tcp"
    assert options["timeout"] == "12500000"  # µs
    assert options["allowed_media_types"] == "video"
    assert options["user_agent"] == "rtcc-edge"


def test_backoff_grows_with_jitter_and_resets() -> None:
    backoff = Backoff(1.0, 8.0)
    delays = [backoff.next() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0
    for _ in range(200):  # no overflow after days of retrying
        backoff.next()
    assert backoff.next() <= 8.0


@dataclass
class _Packet:
    pts: int | None
    dts: int | None


def test_a_packet_without_timestamps_is_placed_one_frame_before_the_next() -> None:
    # libav gives the first frame of a connection, and the first after a read timed out, no
    # timestamps; a stream without any timestamps passes through for the writer to time.
    written: list[tuple[int | None, int | None, int]] = []
    repair = TimestampRepair(
        lambda p, received: written.append((p.pts, p.dts, received)), frame_ticks=6000
    )
    repair.push(_Packet(None, None), 1)
    assert written == []  # held until the next packet says where it belongs
    repair.push(_Packet(366000, 366000), 2)
    repair.push(_Packet(372000, 372000), 3)
    repair.push(_Packet(None, None), 4)  # then the stream stalls
    repair.flush()
    assert written == [
        (360000, 360000, 1),
        (366000, 366000, 2),
        (372000, 372000, 3),
        (378000, 378000, 4),
    ]
    assert repair.repaired == 2

    untimed: list[tuple[int | None, int | None, int]] = []
    raw = TimestampRepair(
        lambda p, received: untimed.append((p.pts, p.dts, received)), frame_ticks=6000
    )
    for received in range(4):
        raw.push(_Packet(None, None), received)
    raw.flush()
    assert untimed == [(None, None, n) for n in range(4)]
    assert raw.repaired == 0


def test_a_b_frame_stream_start_gets_decode_times_that_only_go_forward() -> None:
    # As libav gives the start of an RTSP stream with two B-frames (seen against camsim's
    # `bframes` persona): the keyframe without timestamps, then pts only until libav's decode
    # time guess has enough history.
    written: list[tuple[int | None, int | None]] = []
    repair = TimestampRepair(lambda p, _: written.append((p.pts, p.dts)), frame_ticks=6000)
    for pts, dts in [(None, None), (18000, None), (6000, None), (12000, 6000), (36000, 12000)]:
        repair.push(_Packet(pts, dts), 0)
    assert written == [
        (0, -12000),  # the keyframe, shown first in its GOP
        (18000, -6000),
        (6000, 0),
        (12000, 6000),
        (36000, 12000),
    ]
    assert all(pts is not None and dts is not None and pts >= dts for pts, dts in written)


def test_rtsp_probe_addresses() -> None:
    assert rtsp_address("rtsp://user:pw@10.0.0.5/Streaming/101") == ("10.0.0.5", 554)
    assert rtsp_address("rtsps://cam.local:8443/x") == ("cam.local", 8443)
    assert rtsp_address("rtsp://[fe80::1]:8554/x") == ("fe80::1", 8554)
    assert rtsp_address("http://cam/x") is None
    assert rtsp_address("rtsp://cam:notaport/x") is None


def test_rtsp_probe_needs_an_rtsp_answer() -> None:
    with socket.socket() as listener:  # accepts, never answers: not an RTSP server
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert not rtsp_answers(f"rtsp://127.0.0.1:{port}/live", timeout=0.3)
    assert not rtsp_answers(f"rtsp://127.0.0.1:{port}/live", timeout=0.3)  # refused
