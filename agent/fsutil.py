"""Writing whole files so that a reader, a crash or a power cut sees the old file or the new one,
never a part: write beside, fsync the file, rename over the target, fsync the directory.

The rename alone protects readers and a killed process; the two fsyncs make it survive a power
cut (without the first, ext4 may commit the rename before the data; without the second, the
rename itself may be lost). `durable=False` skips both, for files that are rewritten every few
seconds and whose loss costs nothing (the recorders' state file).

`atomic_create` is the create-once variant (keys): like O_EXCL it never replaces an existing
file, and unlike O_EXCL a crash cannot leave a half-written key under the final name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def fsync_dir(directory: Path) -> None:
    """Make a rename, creation or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _beside(path: Path) -> Path:
    """A fresh hidden name in the target's directory (a rename never crosses file systems)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _open_new(temp: Path, mode: int, owner: tuple[int, int] | None) -> int:
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if owner is not None and owner != (-1, -1):
            # Only root may give a file away; anyone else keeps it, and still keeps the group
            # (allowed for a group it belongs to): the owner's page, editing the configuration
            # root owns, leaves it readable by the service's group as it was.
            try:
                os.fchown(fd, *owner)
            except PermissionError:
                if owner[1] != -1:
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, -1, owner[1])
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def atomic_file(
    path: Path,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    check: Callable[[Path], object] | None = None,
    durable: bool = True,
) -> Iterator[IO[bytes]]:
    """A binary handle on a new file beside `path` that replaces `path` when the block ends
    without an exception (and is removed otherwise). `owner` is (uid, gid), -1 to keep one;
    `check` gets the complete temporary file before the rename and may raise to keep the old
    one."""
    path = Path(path)
    temp = _beside(path)
    fd = _open_new(temp, mode, owner)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if check is not None:
            check(temp)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write(
    path: Path,
    data: bytes | str,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    check: Callable[[Path], object] | None = None,
    durable: bool = True,
) -> None:
    """Replace `path` with `data` (str is written as UTF-8), atomically and durably."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path, mode=mode, owner=owner, check=check, durable=durable) as handle:
        handle.write(payload)


def atomic_create(
    path: Path, data: bytes | str, *, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> bool:
    """Create `path` holding `data` unless it exists; False (and nothing written) if it does.

    Written and fsynced beside, then hard-linked to its name: the link fails if another process
    created the file first, and the name never points at a partial file."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = _beside(path)
    fd = _open_new(temp, mode, owner)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError:
            # A file system without hard links: fall back to O_EXCL on the name itself.
            return _create_in_place(path, payload, mode, owner)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _create_in_place(path: Path, payload: bytes, mode: int, owner: tuple[int, int] | None) -> bool:
    try:
        fd = _open_new(path, mode, owner)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)
    return True
