"""How big the store should be on this disk, and which store settings cannot work together.

One place for the arithmetic that the installer (through `rtcc-edge config store-size`),
`config example`, `config check` and `doctor` share.

Without a measured bitrate the estimate is one 1080p H.264 camera at 15 fps: 4 Mbit/s, the rate
the benchmarks and camsim's 1080p persona use (a camera's own measured rate is what `doctor`
and `check` use when they have one).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from agent.config import AgentConfig, ConfigProblem, StoreConfig

ESTIMATED_CAMERA_BPS = 4_000_000
GB = 10**9
MB = 10**6
#: The free-space reserve is this share of the disk...
RESERVE_SHARE = 0.05
#: ...at most this much...
RESERVE_CAP = 10 * GB
#: ...and never less than this many segments of every camera (retention runs as each closes).
RESERVE_SEGMENTS = 2


def existing_dir(path: Path) -> Path:
    """`path`, or its nearest existing ancestor (a store not created yet is measured there)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def disk_space(path: Path) -> tuple[int, int]:
    """(total, available to an unprivileged writer) bytes of the disk holding `path`."""
    stats = os.statvfs(existing_dir(path))
    return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize


def segment_room(cameras: int, segment_seconds: int, bitrate_bps: float) -> int:
    """Bytes one segment of every camera takes: what is written between retention passes."""
    return math.ceil(max(1, cameras) * segment_seconds * bitrate_bps / 8)


def bytes_text(size: int) -> str:
    """A size as the configuration writes it: whole GB from 10 GB up, else whole MB."""
    if size >= 10 * GB:
        return f"{size // GB}GB"
    return f"{max(1, math.ceil(size / MB))}MB"


def round_up(size: int) -> int:
    """Up to the unit `bytes_text` shows, so that what it prints is at least `size`."""
    unit = GB if size >= 10 * GB else MB
    return math.ceil(size / unit) * unit


def footage_hours(capacity: int, *, cameras: int, bitrate_bps: float) -> float:
    return capacity / (max(1, cameras) * bitrate_bps / 8) / 3600


@dataclass(frozen=True)
class StoreSize:
    """A store budget and reserve sized for a disk."""

    measured: Path  # the existing directory whose disk was measured
    disk_total: int
    disk_free: int
    store_used: int
    cameras: int
    bitrate_bps: float
    min_free: int
    max_bytes: int

    @property
    def hours(self) -> float:
        """Hours of footage `max_bytes` holds for `cameras` at `bitrate_bps`."""
        return footage_hours(self.max_bytes, cameras=self.cameras, bitrate_bps=self.bitrate_bps)

    def toml(self, *, program_hours: float = 48.0) -> str:
        """The [store] keys, with a comment saying what they were sized from (and whether that
        is less than the program's `program_hours`)."""
        short = ""
        if self.hours < program_hours:
            short = (
                f"# Less than the {program_hours:.0f} hours the program asks for: give the store "
                "a bigger disk (store.path), or record fewer cameras or at a lower bitrate.\n"
            )
        return (
            f'max_bytes = "{bytes_text(self.max_bytes)}"   # sized for this disk: '
            f"{self.disk_free / GB:.1f} GB free of {self.disk_total / GB:.1f} GB at "
            f"{self.measured}\n"
            f'min_free = "{bytes_text(self.min_free)}"   # keep this much free on the disk\n'
            f"# About {self.hours:.0f} hours of footage for {self.cameras} camera(s) at "
            f"{self.bitrate_bps / 1e6:.1f} Mbit/s each.\n" + short
        )


def reserve_for(disk_total: int, *, cameras: int, segment_seconds: int, bitrate_bps: float) -> int:
    floor = RESERVE_SEGMENTS * segment_room(cameras, segment_seconds, bitrate_bps)
    return round_up(max(floor, min(RESERVE_CAP, int(disk_total * RESERVE_SHARE))))


def size_store(
    path: Path,
    *,
    cameras: int = 1,
    bitrate_bps: float = ESTIMATED_CAMERA_BPS,
    segment_seconds: int = 60,
    store_used: int = 0,
) -> StoreSize:
    """Budget and reserve for a store at `path`: all the room the disk has now (what is free
    plus the footage already stored), less the reserve."""
    total, free = disk_space(path)
    min_free = reserve_for(
        total, cameras=cameras, segment_seconds=segment_seconds, bitrate_bps=bitrate_bps
    )
    room = max(0, free + store_used - min_free)
    unit = GB if room >= 10 * GB else MB
    return StoreSize(
        measured=existing_dir(path),
        disk_total=total,
        disk_free=free,
        store_used=store_used,
        cameras=max(1, cameras),
        bitrate_bps=bitrate_bps,
        min_free=min_free,
        max_bytes=room // unit * unit,
    )


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:.0f}d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:g}s"


def store_problems(config: AgentConfig) -> list[ConfigProblem]:
    """Store settings that load one by one but cannot work together (`config check` refuses
    them). Camera bitrates are not known here, so the estimate above is used."""
    store: StoreConfig = config.store
    cameras = max(1, sum(1 for camera in config.cameras if camera.enabled))
    room = segment_room(cameras, store.segment_seconds, ESTIMATED_CAMERA_BPS)
    what = (
        f"one {store.segment_seconds} s segment of each of the {cameras} camera(s) at about "
        f"{ESTIMATED_CAMERA_BPS / 1e6:.0f} Mbit/s ({bytes_text(room)})"
    )
    problems: list[ConfigProblem] = []
    if int(store.min_free) < room:
        problems.append(
            ConfigProblem(
                field="store.min_free",
                message=f"{bytes_text(int(store.min_free))} is less than {what}: the disk would "
                "fill up before retention runs again, and recording would stop each time. Set "
                f'store.min_free = "{bytes_text(round_up(room))}" or more.',
            )
        )
    if int(store.max_bytes) < 2 * room:
        problems.append(
            ConfigProblem(
                field="store.max_bytes",
                message=f"{bytes_text(int(store.max_bytes))} cannot hold two of {what}: "
                "retention would delete footage as soon as it is recorded. Set "
                f'store.max_bytes = "{bytes_text(round_up(2 * room))}" or more.',
            )
        )
    if store.keep_recent >= store.max_age:
        problems.append(
            ConfigProblem(
                field="store.keep_recent",
                message=f"{_duration(store.keep_recent)} is not shorter than store.max_age "
                f"({_duration(store.max_age)}): footage would age out before a full disk could "
                f"ever make room. Set store.keep_recent below {_duration(store.max_age)} "
                '(the default is "10m").',
            )
        )
    return problems
