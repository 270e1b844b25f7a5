"""What can go wrong in the store, as exceptions a caller can tell apart."""

from __future__ import annotations

import errno as errno_codes
from datetime import datetime


class StoreError(Exception):
    """Base of every error the clip store raises on purpose."""


class StoreNotFound(StoreError):
    """There is no store (no index) at the given directory yet."""


class IndexUnavailable(StoreError):
    """The index could not be read or written (locked too long, disk full, corrupt).

    `errno` is ENOSPC when SQLite reported the disk full."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message)


class InvalidWindow(StoreError, ValueError):
    """A time window that is empty, reversed, or not timezone-aware."""


class NoFootage(StoreError):
    """Nothing recorded for that camera overlaps the window; no file was written."""

    def __init__(self, camera: str, start: datetime, end: datetime) -> None:
        self.camera = camera
        self.start = start
        self.end = end
        super().__init__(
            f"no footage of camera {camera!r} between {start.isoformat()} and {end.isoformat()}"
        )


class WriterBusy(StoreError):
    """Another live writer (process) already records this camera."""


class WriterClosed(StoreError):
    """The writer was closed (normally or after a write error); open a new one."""


class StoreWriteError(StoreError):
    """Writing a segment failed. The segment was closed at its last complete fragment (or left
    for start-up recovery); nothing incomplete is indexed as good. Open a new writer to retry."""

    def __init__(self, message: str, *, errno: int | None = None, segment: str | None = None):
        self.errno = errno
        self.segment = segment
        super().__init__(message)


class DiskFullError(StoreWriteError):
    """The disk (or the store's quota) is full: ENOSPC or EDQUOT."""


def write_error(
    exc: OSError | IndexUnavailable, what: str, *, segment: str | None = None
) -> StoreWriteError:
    """The specific StoreWriteError for a failure to write `what` (a file or the index)."""
    full = exc.errno in (errno_codes.ENOSPC, errno_codes.EDQUOT)
    cls = DiskFullError if full else StoreWriteError
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return cls(f"{what}: {reason}", errno=exc.errno, segment=segment)
