"""Pieces of the worker that can be checked without a camera: error classification, the libav
options, the backoff. (The worker itself runs against camsim in the other recorder tests.)"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from agent.config import StoreConfig
from agent.recorder.source import rtsp_source
from agent.recorder.worker import Backoff, WorkerSpec, is_disk_full, rtsp_options
from agent.store import DiskFullError, IndexUnavailable, StoreWriteError


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
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
