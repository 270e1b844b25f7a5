"""Fixtures for the clip store tests: a store in a temp dir, stamped media, a recording helper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import StoreConfig
from agent.store import ClipStore, SegmentRow
from agent.store.files import hash_file
from camsim.sei import FrameStamp, stamps_in_file
from tests.support.ffprobe import ffprobe, video_stream
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source

Record = Callable[..., FrameStamp]
SpecAt = Callable[..., MediaSpec]


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def base_us() -> int:
    """A whole second three hours ago: recent enough for the default retention age."""
    return (time.time_ns() // 1000 - 3 * 3600 * 1_000_000) // 1_000_000 * 1_000_000


@pytest.fixture
def store_config() -> StoreConfig:
    return StoreConfig(
        segment_seconds=10,
        fragment_seconds=1.0,
        max_bytes=10 * 10**9,
        max_age=timedelta(days=30),
        min_free=0,
    )


@pytest.fixture
def store(tmp_path: Path, store_config: StoreConfig) -> Iterator[ClipStore]:
    with ClipStore(tmp_path / "store", config=store_config) as clip_store:
        yield clip_store


@pytest.fixture
def spec_at(base_us: int) -> SpecAt:
    """A MediaSpec starting `offset` seconds after the session's base time."""

    def make(offset: float = 0.0, **kwargs: Any) -> MediaSpec:
        return MediaSpec(start_us=base_us + round(offset * 1_000_000), **kwargs)

    return make


@pytest.fixture
def record(media_dir: Path) -> Record:
    """Encode `spec` (cached) and feed all of it into a new writer of `camera`, then close it."""

    def run(store: ClipStore, camera: str, spec: MediaSpec, **feed_args: Any) -> FrameStamp:
        path = encode_stamped(media_dir, spec)
        with stamped_source(path) as source, store.open_writer(camera, source.stream) as writer:
            last = feed(writer, source, **feed_args)
        assert last is not None
        return last

    return run


def check_segment(store: ClipStore, row: SegmentRow) -> list[FrameStamp]:
    """A closed segment is a valid MP4 to ffprobe, hashes as indexed, holds `frames` stamps."""
    path = store.layout.segment(row.path)
    info = ffprobe(path)
    assert video_stream(info)["codec_name"] == row.codec
    sha256, size = hash_file(path)
    assert (sha256, size) == (row.sha256, row.bytes)
    stamps = stamps_in_file(str(path))
    assert len(stamps) == row.frames
    return stamps
