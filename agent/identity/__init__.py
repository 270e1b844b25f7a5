"""The site's device identity: an Ed25519 key that signs every event, status, registry and
manifest (DESIGN §4.3), named by its RFC 7638 thumbprint."""

from agent.identity.device_key import (
    DEVICE_KEY_FILE,
    DeviceKey,
    DeviceKeyError,
    device_key_path,
)
from agent.identity.jwk import jwk_thumbprint, public_jwk_of
from agent.identity.jws import JwsError, verify_device_jws

__all__ = [
    "DEVICE_KEY_FILE",
    "DeviceKey",
    "DeviceKeyError",
    "JwsError",
    "device_key_path",
    "jwk_thumbprint",
    "public_jwk_of",
    "verify_device_jws",
]
