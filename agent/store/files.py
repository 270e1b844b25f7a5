"""Reading the store's files without following symlinks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HASH_CHUNK = 1024 * 1024


def hash_file(path: Path, *, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 and length of a file (or of its first `limit` bytes), not following symlinks."""
    digest = hashlib.sha256()
    total = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        while limit is None or total < limit:
            want = _HASH_CHUNK if limit is None else min(_HASH_CHUNK, limit - total)
            chunk = handle.read(want)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
    return digest.hexdigest(), total


def walk_files(top: Path) -> list[Path]:
    """Every non-directory entry under `top`, symlinks included and never followed."""
    found: list[Path] = []
    if not top.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        base = Path(dirpath)
        found.extend(base / name for name in filenames)
        # os.walk lists symlinks to directories among dirnames; they are not ours either.
        found.extend(base / name for name in dirnames if (base / name).is_symlink())
    return found
