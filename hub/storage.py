"""Where the receiver keeps what sites upload: `<home>/cases/<case>/<request id>/<name>`.

An object is streamed to a hidden temporary file beside its final name (hashing as it goes)
and renamed only once every byte the client announced has arrived and is on disk, so a name
that exists is always a complete upload; an interrupted one leaves nothing behind. Its SHA-256
is recorded next to it as `<name>.sha256` in `sha256sum` format (`sha256sum -c` checks it).
A second complete upload of the same object replaces the first (as S3 does).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agent.fsutil import fsync_dir
from hub.presign import CASES_DIR, case_directory, check_segment
from hub.state import HubHome, write_atomic

HASH_SUFFIX = ".sha256"
_DIR_MODE = 0o750


class IncompleteUpload(Exception):
    """The body ended (or broke off) before `Content-Length` bytes arrived."""


class TooLarge(Exception):
    """More bytes arrived than were announced."""


@dataclass(frozen=True)
class StoredObject:
    path: Path
    sha256: str
    bytes: int


class CaseStore:
    def __init__(self, home: HubHome) -> None:
        self.home = home
        self.root = home.root / CASES_DIR

    def directory(self, case: str, request_id: str) -> Path:
        return case_directory(self.home, case, request_id)

    def object_path(self, case: str, request_id: str, name: str) -> Path:
        return self.directory(case, request_id) / check_segment(name, "name")

    async def receive(
        self, case: str, request_id: str, name: str, body: AsyncIterator[bytes], *, length: int
    ) -> StoredObject:
        """Store exactly `length` bytes from `body` as the object; nothing if it falls short.

        Raises IncompleteUpload, TooLarge, or OSError (e.g. ENOSPC: the disk is full).
        """
        final = self.object_path(case, request_id, name)
        await asyncio.to_thread(_make_dirs, self.root, final.parent)
        temp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.partial")
        digest = hashlib.sha256()
        received = 0
        committed = False
        handle = await asyncio.to_thread(temp.open, "xb")
        try:
            try:
                async for chunk in body:
                    received += len(chunk)
                    if received > length:
                        raise TooLarge(f"more than the announced {length} bytes arrived")
                    digest.update(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                if received != length:
                    raise IncompleteUpload(f"{received} of {length} bytes arrived")
                await asyncio.to_thread(_flush, handle)
            finally:
                await asyncio.to_thread(handle.close)
            sha256 = digest.hexdigest()
            await asyncio.to_thread(temp.replace, final)
            committed = True
            record = f"{sha256}  {final.name}\n"
            await asyncio.to_thread(
                write_atomic, final.with_name(final.name + HASH_SUFFIX), record, mode=0o640
            )
            await asyncio.to_thread(fsync_dir, final.parent)
            return StoredObject(final, sha256, received)
        finally:
            if not committed:
                await asyncio.to_thread(temp.unlink, missing_ok=True)


def _make_dirs(root: Path, directory: Path) -> None:
    root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
