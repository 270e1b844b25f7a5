"""One writer per camera, across processes: an exclusive `flock` on a per-camera file.

The kernel drops the lock when its holder dies (even by `kill -9`), which is exactly what
start-up recovery needs to know: a `recording` segment whose camera lock can be taken belongs to
a writer that is gone.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from agent.store.errors import WriterBusy


class CameraLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False if another holder (process or handle) has it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def acquire(self, *, timeout: float = 0.0) -> None:
        """Take the lock, retrying for up to `timeout` seconds; WriterBusy if still held."""
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise WriterBusy(f"another writer holds {self.path}")
            time.sleep(0.05)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> CameraLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
