"""Writing enrollment's files all or nothing: each is staged beside its final name with its
final mode and owner, and only once every one is staged (and the new configuration validated)
are they renamed into place, the configuration last."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from agent.fsutil import fsync_dir


@dataclass(frozen=True)
class Ownership:
    """Who the service runs as; None fields leave files owned by whoever runs enrollment."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def of_user(cls, name: str) -> Ownership:
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            raise LookupError(f"no such user {name!r}") from None
        try:
            group = grp.getgrnam(name).gr_gid
        except KeyError:
            group = account.pw_gid
        return cls(account.pw_uid, group)


@dataclass(frozen=True)
class FileSpec:
    """Mode and owner of one file. `owner_is_service`: owned by the service user (its private
    keys, which 0600 must let it read); otherwise owned by root with the service group."""

    mode: int
    owner_is_service: bool = False

    def ids(self, who: Ownership) -> tuple[int, int]:
        uid = who.uid if self.owner_is_service else 0
        return (-1 if uid is None else uid), (-1 if who.gid is None else who.gid)


PUBLIC = FileSpec(0o640)
PRIVATE = FileSpec(0o600, owner_is_service=True)


@dataclass
class Staged:
    """Temporary files waiting to be renamed to their final names."""

    pending: list[tuple[Path, Path]] = field(default_factory=list)

    def add(self, final: Path, data: bytes, *, mode: int, uid: int = -1, gid: int = -1) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.pending.append((temp, final))
        with os.fdopen(fd, "wb") as handle:
            if (uid, gid) != (-1, -1) and os.geteuid() == 0:
                os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temp

    def add_file(self, final: Path, data: bytes, spec: FileSpec, who: Ownership) -> Path:
        uid, gid = spec.ids(who)
        return self.add(final, data, mode=spec.mode, uid=uid, gid=gid)

    def commit(self) -> list[Path]:
        """Rename every staged file into place, in the order staged."""
        done = []
        for temp, final in self.pending:
            temp.replace(final)
            done.append(final)
        self.pending.clear()
        for directory in dict.fromkeys(final.parent for final in done):
            _sync_directory(directory)
        return done

    def discard(self) -> None:
        for temp, _ in self.pending:
            temp.unlink(missing_ok=True)
        self.pending.clear()


def _sync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):
        fsync_dir(path)


def give_to(path: Path, who: Ownership) -> None:
    """Hand a file the service must own (its device key) to the service user."""
    if who.uid is not None and os.geteuid() == 0:
        os.chown(path, who.uid, -1 if who.gid is None else who.gid)
