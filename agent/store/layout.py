"""Where the store keeps things, built only from our own ids and times.

    <root>/index.sqlite3                          the index (WAL)
    <root>/locks/<camera>.lock                    held by the one writer of a camera
    <root>/segments/<camera>/<YYYY-MM-DD>/<camera>-<start_us>.mp4
    <root>/quarantine/<UTC time>-<sanitised original path>

Nothing a camera or a request sends becomes part of a path: a camera id is checked against
`agent.config.ID_PATTERN`, the rest is digits we format ourselves. A relative segment path read
back from the index is re-checked against the same shape before it is joined to the root, so an
edited index cannot point the store outside its directory.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from agent.config import ID_PATTERN

INDEX_NAME = "index.sqlite3"
SEGMENTS_DIR = "segments"
LOCKS_DIR = "locks"
QUARANTINE_DIR = "quarantine"

_ID = re.compile(ID_PATTERN)
_ID_BODY = ID_PATTERN.removeprefix("^").removesuffix("$")
_SEGMENT_REL = re.compile(
    rf"^(?P<camera>{_ID_BODY})/(?P<day>\d{{4}}-\d{{2}}-\d{{2}})/"
    rf"(?P=camera)-(?P<start>\d{{1,20}})(?:-(?P<n>\d{{1,4}}))?\.mp4$"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def check_camera_id(camera: str) -> str:
    """Return `camera` if it is a valid id; raise ValueError naming the problem otherwise."""
    if not isinstance(camera, str) or not _ID.match(camera):
        raise ValueError(f"not a camera id: {camera!r} (lower-case letters, digits, - and _)")
    return camera


def segment_relpath(camera: str, start_us: int, *, attempt: int = 0) -> str:
    """`<camera>/<YYYY-MM-DD>/<camera>-<start_us>.mp4` (UTC day); `attempt` disambiguates."""
    check_camera_id(camera)
    if start_us < 0:
        raise ValueError("segment start before 1970")
    day = datetime.fromtimestamp(start_us / 1_000_000, tz=UTC).strftime("%Y-%m-%d")
    suffix = f"-{attempt}" if attempt else ""
    return f"{camera}/{day}/{camera}-{start_us}{suffix}.mp4"


def is_segment_relpath(rel: str) -> bool:
    return bool(_SEGMENT_REL.match(rel))


def segment_name(rel: str) -> str:
    """The file name part, which is what manifests and reports show."""
    return rel.rsplit("/", 1)[-1]


class Layout:
    """Absolute paths under one store root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def index(self) -> Path:
        return self.root / INDEX_NAME

    @property
    def segments(self) -> Path:
        return self.root / SEGMENTS_DIR

    @property
    def locks(self) -> Path:
        return self.root / LOCKS_DIR

    @property
    def quarantine(self) -> Path:
        return self.root / QUARANTINE_DIR

    def lock_file(self, camera: str) -> Path:
        return self.locks / f"{check_camera_id(camera)}.lock"

    def segment(self, rel: str) -> Path:
        """Absolute path of an indexed segment; refuses anything not shaped like our names."""
        if not is_segment_relpath(rel):
            raise ValueError(f"not a segment path of this store: {rel!r}")
        return self.segments / rel

    def quarantine_target(self, original: Path, when: datetime) -> Path:
        """A fresh name in the quarantine directory that still says where the file came from."""
        try:
            shown = original.relative_to(self.root).as_posix()
        except ValueError:
            shown = original.name
        safe = _UNSAFE.sub("_", shown).strip("._")[:150] or "file"
        stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
        candidate = self.quarantine / f"{stamp}-{safe}"
        n = 1
        while candidate.exists() or candidate.is_symlink():
            candidate = self.quarantine / f"{stamp}-{n}-{safe}"
            n += 1
        return candidate

    def make_dirs(self) -> None:
        for path in (self.root, self.segments, self.locks, self.quarantine):
            path.mkdir(parents=True, exist_ok=True)
