"""Create, load and use the device key (PKCS#8 PEM, file mode 0600)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from agent.fsutil import atomic_create
from agent.identity.jwk import public_jwk_of

# The device key's file name in the state directory: the one place it is defined.
DEVICE_KEY_FILE = "device.key"


def device_key_path(state_dir: Path) -> Path:
    return state_dir / DEVICE_KEY_FILE


class DeviceKeyError(Exception):
    """The device key file is missing, unreadable, too open or not an Ed25519 key."""


class DeviceKey:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._jwk = public_jwk_of(private_key.public_key())

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> DeviceKey:
        try:
            mode = path.stat().st_mode & 0o777
            data = path.read_bytes()
        except OSError as exc:
            raise DeviceKeyError(f"cannot read device key {path}: {exc.strerror}") from exc
        if mode & 0o077:
            raise DeviceKeyError(
                f"device key {path} is readable by others (mode {mode:o}); chmod 600"
            )
        try:
            key = load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise DeviceKeyError(f"device key {path} is not a PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise DeviceKeyError(f"device key {path} is not an Ed25519 key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceKey:
        """Load the key, creating it on first run. The file is never world- or group-readable."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = cls.generate()
        pem = key._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        if not atomic_create(path, pem, mode=0o600):
            return cls.load(path)  # another process created it first
        return key

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    @property
    def kid(self) -> str:
        return self._jwk["kid"]

    @property
    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)

    def sign(self, claims: Mapping[str, Any], *, typ: str = "JWT") -> str:
        """A compact EdDSA JWS over `claims`, kid = this key's thumbprint; adds iat if absent."""
        payload = dict(claims)
        payload.setdefault("iat", int(time.time()))
        return jwt.encode(
            payload, self._key, algorithm="EdDSA", headers={"kid": self.kid, "typ": typ}
        )
