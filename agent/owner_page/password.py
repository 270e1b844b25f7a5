"""The owner's page password and the limit on wrong guesses.

The password's Argon2id hash is kept in the owner directory (`control.owner_dir`), which root
and the owner group write and the service only reads: the daemon can check a password but can
never set one. `rtcc-edge owner passwd` writes it.

Wrong passwords are limited per address and in total (there is one owner account, so a
distributed guesser meets the total): past the limit every attempt, right or wrong, is refused
until the window has passed, without checking the password.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PASSWORD_FILE = "page-password"  # noqa: S105 (a file name, not a password)
MIN_LENGTH = 10
MAX_LENGTH = 200

_hasher = PasswordHasher()


class PasswordError(Exception):
    """A password that cannot be set, or a password file that cannot be read, in plain words."""


def password_path(owner_dir: Path) -> Path:
    return owner_dir / PASSWORD_FILE


def check_new_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"the password must be at most {MAX_LENGTH} characters long")
    return password


def set_password(owner_dir: Path, password: str) -> Path:
    """Write the hash of `password` (mode 0640: the service's group reads it)."""
    check_new_password(password)
    path = password_path(owner_dir)
    try:
        owner_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{PASSWORD_FILE}.{os.getpid()}")
        temporary.write_text(_hasher.hash(password) + "\n")
        temporary.chmod(0o640)
        temporary.replace(path)
    except OSError as exc:
        raise PasswordError(f"cannot write {path}: {exc.strerror}") from exc
    return path


def is_set(owner_dir: Path) -> bool:
    return password_path(owner_dir).is_file()


def verify(owner_dir: Path, password: str) -> bool:
    """True if `password` is the owner's; PasswordError if none is set or it cannot be read."""
    path = password_path(owner_dir)
    try:
        stored = path.read_text().strip()
    except FileNotFoundError as exc:
        raise PasswordError(
            "no owner password is set yet: run `sudo rtcc-edge owner passwd` on this machine"
        ) from exc
    except OSError as exc:
        raise PasswordError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return _hasher.verify(stored, password[:MAX_LENGTH])
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError) as exc:
        raise PasswordError(
            f"{path} does not hold a password hash: set it again with `rtcc-edge owner passwd`"
        ) from exc


class LoginLimiter:
    """At most `per_address` wrong passwords from one address and `total` from anywhere within
    `window` seconds."""

    def __init__(
        self,
        *,
        per_address: int = 5,
        total: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address = per_address
        self.total = total
        self.window = window
        self.clock = clock
        self._failures: deque[tuple[float, str]] = deque()

    def _forget_old(self) -> None:
        horizon = self.clock() - self.window
        while self._failures and self._failures[0][0] < horizon:
            self._failures.popleft()

    def blocked(self, address: str) -> bool:
        self._forget_old()
        from_here = sum(1 for _, who in self._failures if who == address)
        return from_here >= self.per_address or len(self._failures) >= self.total

    def failed(self, address: str) -> None:
        self._failures.append((self.clock(), address))

    def wait_minutes(self) -> int:
        """Minutes until the oldest failure leaves the window (what the refusal says)."""
        self._forget_old()
        if not self._failures:
            return 0
        remaining = self._failures[0][0] + self.window - self.clock()
        return max(1, int(remaining // 60) + 1)
