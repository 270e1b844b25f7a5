"""An RTCC signing key for tests and a builder of signed (and deliberately broken) requests.

    from tests.support.rtcc import RTCC, make_request
    RTCC.write_jwks(tmp_path / "rtcc-jwks.json")       # what the site trusts (rtcc.jwks_file)
    payload = make_request(cmd="clip", camera="front-door")   # bytes, as published on MQTT

`make_request(**claims)` fills in a complete, valid claim set for the command (fresh `jti`,
`iat` now, `exp` ten minutes on, a five-minute window ending a minute ago for a clip, an upload
URL on `UPLOAD_HOST`, a relay on `RELAY_HOST`) and lets any claim be overridden; pass
`DROP` as a value to leave a claim out. The crafted attacks (`alg: none`, HS256 signed with the
public key as the HMAC secret, a forged signature) are here too so every test builds them the
same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.identity.jwk import public_jwk_of

ISSUER: Final = "https://rtcc.test"
SITE: Final = "site-1"
CAMERA: Final = "front-door"
UPLOAD_HOST: Final = "uploads.rtcc.test"
RELAY_HOST: Final = "relay.rtcc.test"


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RtccTestKey:
    """One RTCC signing key (Ed25519) and the issuer it signs for."""

    private_key: Ed25519PrivateKey
    issuer: str = ISSUER

    @classmethod
    def generate(cls, issuer: str = ISSUER) -> RtccTestKey:
        return cls(Ed25519PrivateKey.generate(), issuer)

    @property
    def public_jwk(self) -> dict[str, str]:
        return public_jwk_of(self.private_key.public_key())

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]

    @property
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def write_jwks(self, path: Path, *others: RtccTestKey) -> Path:
        keys = [self.public_jwk, *(other.public_jwk for other in others)]
        path.write_text(json.dumps({"keys": keys}, indent=2))
        return path

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        """A compact EdDSA JWS, kid = this key's thumbprint unless `headers` says otherwise."""
        header = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers=header)

    def sign_raw(self, header: dict[str, Any], payload: bytes) -> str:
        """Sign any header and payload bytes (not necessarily JSON) with this key."""
        signing_input = f"{_json_segment(header)}.{b64url(payload)}"
        signature = self.private_key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"


RTCC: Final = RtccTestKey.generate()


def make_claims(cmd: str = "clip", *, now: float | None = None, **overrides: Any) -> dict[str, Any]:
    """A complete, valid claim set for `cmd`; `overrides` replace claims, DROP removes one."""
    issued = int(time.time() if now is None else now)
    wall = datetime.fromtimestamp(issued, UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": SITE,
        "iat": issued,
        "exp": issued + 600,
        "jti": str(uuid.uuid4()),
        "cmd": cmd,
        "requester": "analyst-7",
        "reason": "burglary nearby",
    }
    if cmd in ("clip", "snapshot", "stream"):
        claims["case"] = "2026-000123"
        claims["camera"] = CAMERA
    if cmd == "clip":
        claims["start"] = rfc3339(wall - timedelta(minutes=6))
        claims["end"] = rfc3339(wall - timedelta(minutes=1))
    if cmd in ("clip", "snapshot"):
        claims["upload"] = {
            "url": f"https://{UPLOAD_HOST}/put/{claims['jti']}.mp4?X-Sig=abc",
            "manifest_url": f"https://{UPLOAD_HOST}/put/{claims['jti']}.json",
        }
    if cmd == "stream":
        claims["relay"] = {"url": f"wss://{RELAY_HOST}/ingest/1", "token": "t" * 32}
        claims["max_seconds"] = 60
    if cmd == "cancel":
        claims["target"] = str(uuid.uuid4())
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def make_token(
    cmd: str = "clip",
    *,
    key: RtccTestKey = RTCC,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    return key.sign(make_claims(cmd, **claims), headers=headers)


def make_request(
    cmd: str = "clip",
    *,
    key: RtccTestKey = RTCC,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> bytes:
    """The MQTT payload of a signed request (see the module docstring)."""
    return make_token(cmd, key=key, headers=headers, **claims).encode("ascii")


def jti_of(payload: bytes | str) -> str:
    """The jti claim of a token, read without verification (for test bookkeeping only)."""
    token = payload.decode() if isinstance(payload, bytes) else payload
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims["jti"])


def alg_none(claims: dict[str, Any], *, kid: str | None = None) -> bytes:
    """The classic unsigned token: `alg: none`, empty signature."""
    header = {"alg": "none", "typ": "JWT", "kid": kid or RTCC.kid}
    return f"{_json_segment(header)}.{_json_segment(claims)}.".encode("ascii")


def hs256_with_public_key(claims: dict[str, Any], *, key: RtccTestKey = RTCC) -> bytes:
    """The key-confusion attack: HS256 with the RTCC's *public* key as the HMAC secret.

    Both the raw key bytes and the JWK's `x` text are plausible secrets for a confused
    verifier; the raw bytes are used (the attack fails the same way for either).
    """
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    mac = hmac.new(key.public_raw, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}".encode("ascii")


def forged(claims: dict[str, Any], *, key: RtccTestKey = RTCC) -> bytes:
    """Claims under the RTCC's kid but signed by some other Ed25519 key."""
    impostor = RtccTestKey.generate(key.issuer)
    return impostor.sign(claims, headers={"kid": key.kid}).encode("ascii")


def tampered(token: str, **changes: Any) -> bytes:
    """A valid token whose claims were edited after signing (the signature no longer fits)."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    padded = payload_b64 + "=" * (-len(payload_b64) % 4)
    claims = json.loads(base64.urlsafe_b64decode(padded))
    claims.update(changes)
    return f"{header_b64}.{_json_segment(claims)}.{signature_b64}".encode("ascii")
