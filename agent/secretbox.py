"""Camera passwords encrypted at rest (AES-256-GCM), so the TOML never holds them in clear.

The key is a random 32-byte file in the state directory (mode 0600, owned by the daemon's user);
the config holds `enc:v1:<base64url(nonce | ciphertext+tag)>`. Anyone who can read both the
config and the key can decrypt: this protects against the config being copied, printed,
attached to a support bundle or committed, not against root on the device.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.fsutil import atomic_create

PREFIX = "enc:v1:"
KEY_FILE = "secret.key"
_AAD = b"rtcc-edge camera secret v1"


class SecretError(Exception):
    """A secret cannot be decrypted (wrong key, damaged text) or the key file is unusable."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SecretError("secret key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, state_dir: Path) -> SecretBox:
        path = state_dir / KEY_FILE
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SecretError(f"cannot read {path}: {exc.strerror}") from exc
        state_dir.mkdir(parents=True, exist_ok=True)
        key = AESGCM.generate_key(bit_length=256)
        # A command run as root (`cameras add`, the installer) creates the key for a daemon that
        # runs as its own user: that user, who owns the state directory, must read it.
        owner = state_dir.stat()
        mine = (owner.st_uid, owner.st_gid) if os.geteuid() == 0 else None
        if not atomic_create(path, key, mode=0o600, owner=mine):
            return cls(path.read_bytes())
        return cls(key)

    @classmethod
    def load(cls, state_dir: Path) -> SecretBox:
        path = state_dir / KEY_FILE
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise SecretError(f"cannot read {path}: {exc.strerror}") from exc

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        return PREFIX + _b64(nonce + self._aead.encrypt(nonce, plaintext.encode(), _AAD))

    def decrypt(self, token: str) -> str:
        if not token.startswith(PREFIX):
            raise SecretError("not an encrypted secret (expected enc:v1:…)")
        try:
            raw = _unb64(token[len(PREFIX) :])
        except ValueError as exc:
            raise SecretError("encrypted secret is not valid base64") from exc
        if len(raw) < 12 + 16:
            raise SecretError("encrypted secret is truncated")
        try:
            return self._aead.decrypt(raw[:12], raw[12:], _AAD).decode()
        except InvalidTag as exc:
            raise SecretError("encrypted secret does not match this device's key") from exc


def reveal(value: str | None, state_dir: Path) -> str | None:
    """The plaintext of a config secret: decrypted if `enc:v1:…`, as-is if stored in clear."""
    if value is None or not value.startswith(PREFIX):
        return value
    return SecretBox.load(state_dir).decrypt(value)
