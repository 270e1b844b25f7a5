"""The store's public result types. Times are timezone-aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_us(value: int) -> datetime:
    """Microseconds since the epoch to an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(microseconds=value)


def to_us(value: datetime) -> int:
    """An aware datetime to microseconds since the epoch, exactly; naive ones are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value!r} has no timezone; use an aware UTC datetime")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Gap:
    """A stretch of a window with no recorded footage."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class SegmentRef:
    """A source segment of a clip, as the manifest lists it.

    `sha256` and `bytes` are those recorded when the segment was written. For a segment still
    being written (`complete` False) they cover the prefix the clip was cut from: the first
    `bytes` bytes of the finished file will hash to `sha256`.
    """

    name: str
    sha256: str
    bytes: int
    start: datetime
    end: datetime
    complete: bool = True


@dataclass(frozen=True)
class ClipResult:
    path: Path
    camera: str
    requested_start: datetime
    requested_end: datetime
    sha256: str
    bytes: int
    codec: str
    width: int
    height: int
    duration: float  # seconds, first frame to end of last frame (gaps included)
    frames: int
    first_frame: datetime  # agent wall-clock time of the first frame
    last_frame: datetime  # ... and of the last frame
    gaps: tuple[Gap, ...]
    segments: tuple[SegmentRef, ...]
    container: Literal["mp4"] = "mp4"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Span:
    """Continuous coverage: consecutive segments without a hole."""

    start: datetime
    end: datetime
    segments: int
    bytes: int


@dataclass(frozen=True)
class Coverage:
    camera: str
    start: datetime
    end: datetime
    spans: tuple[Span, ...]
    gaps: tuple[Gap, ...]

    @property
    def covered_seconds(self) -> float:
        return sum(
            (min(s.end, self.end) - max(s.start, self.start)).total_seconds() for s in self.spans
        )


@dataclass(frozen=True)
class Hold:
    id: str
    camera: str
    start: datetime
    end: datetime
    reason: str
    created: datetime


@dataclass(frozen=True)
class CameraStatus:
    camera: str
    segments: int
    bytes: int
    seconds: float  # footage held
    oldest: datetime | None
    newest: datetime | None
    recording: bool  # a segment is open in the index
    writer_alive: bool  # a writer process holds the camera right now
    expired: int
    quarantined: int
    holds: int

    @property
    def hours(self) -> float:
        return self.seconds / 3600


ProblemKind = Literal[
    "missing",
    "altered",
    "out_of_order",
    "chain_broken",
    "unindexed",
    "needs_recovery",
    "lost_by_index",
]


@dataclass(frozen=True)
class VerifyProblem:
    kind: ProblemKind
    camera: str | None
    name: str  # the segment's relative path in the store
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    problems: tuple[VerifyProblem, ...]
    checked: int  # segments re-hashed
    bytes: int
    tombstones: int  # expired by retention: not an error
    recording: int  # open segments, checked for presence only
    notes: tuple[str, ...] = ()
    open_segments: tuple[str, ...] = ()  # still being written by a live recorder

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class QuarantinedFile:
    original: str
    moved_to: Path
    reason: str


@dataclass(frozen=True)
class ReconcileReport:
    recovered: tuple[str, ...] = ()  # segments cut at their last complete fragment
    quarantined: tuple[QuarantinedFile, ...] = ()
    missing: tuple[str, ...] = ()  # indexed segments whose file is gone
    mismatched: tuple[str, ...] = ()  # indexed size differs from the file's
    busy: tuple[str, ...] = ()  # cameras with a live writer, left alone
    lost_bytes: int = 0  # partial fragments cut off recovered segments

    @property
    def clean(self) -> bool:
        return not (self.quarantined or self.missing or self.mismatched)


@dataclass(frozen=True)
class ExpiredSegment:
    camera: str
    name: str
    bytes: int
    start: datetime
    end: datetime
    reason: Literal["age", "budget", "free_space"]


@dataclass(frozen=True)
class RetentionReport:
    expired: tuple[ExpiredSegment, ...] = ()
    bytes_before: int = 0
    bytes_after: int = 0
    free_after: int = 0
    held: int = 0  # segments retention wanted but a hold kept
    over_budget: bool = False  # still above max_bytes (recording segments, holds)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def freed(self) -> int:
        return sum(e.bytes for e in self.expired)
