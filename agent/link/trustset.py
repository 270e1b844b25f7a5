"""The RTCC's trust set: which request-signing keys a site accepts, signed by the RTCC's root key.

A stolen signing key must be revocable by a message the thief cannot forge. So the list of
signing keys travels as a compact JWS signed by a separate **root key** (made by `rtcc-hub keys
new`, kept offline, used only to sign trust sets), whose public half each site pins at
enrollment (`trust_root` in the site's JWKS file):

    header  {"alg": "EdDSA", "kid": <root kid>, "typ": "rtcc-trust-set+jwt"}
    claims  {"ver": 7, "iat": 1765000000,
             "keys": [{"kty": "OKP", "crv": "Ed25519", "x": …, "kid": …,
                       "exp": 1765086400}]}      # exp: optional, the end of a rotation overlap

`ver` only grows: a site keeps the highest version it has verified (`<state_dir>/trust-set.jws`)
and refuses any lower one, so a set that was valid once (listing a key revoked since) cannot be
replayed. A key past its `exp` is refused by the site's own clock, so a rotation's overlap ends
even if no new set arrives. The set reaches sites as the retained message on `rtcc/v1/trust`
(within seconds, to every connected site, and at each reconnect) and in the JWKS file.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from agent.fsutil import atomic_write
from agent.identity.jwk import jwk_thumbprint, public_key_from_jwk
from agent.wire.trust import TRUST_SET_TYP, TrustedKey, TrustSet

__all__ = ["TYP", "TrustSet", "TrustSetError", "TrustedKey", "keys_in_force", "verify_trust_set"]

TYP = TRUST_SET_TYP
MAX_TRUST_SET_BYTES = 16 * 1024
STATE_FILE = "trust-set.jws"


class TrustSetError(Exception):
    """A trust set that is not the pinned root's, or not well formed (message says which)."""


def keys_in_force(trust_set: TrustSet, now: float) -> dict[str, Ed25519PublicKey]:
    """The set's keys not past their `exp` at `now`, by kid."""
    out: dict[str, Ed25519PublicKey] = {}
    for key in trust_set.keys:
        if key.exp is not None and now >= key.exp:
            continue
        jwk = key.model_dump(exclude_none=True)
        jwk.pop("exp", None)
        out[key.kid] = public_key_from_jwk(jwk)
    return out


def root_kid(root_jwk: Mapping[str, Any]) -> str:
    return str(root_jwk.get("kid") or jwk_thumbprint(dict(root_jwk)))


def verify_trust_set(token: str | bytes, root_jwk: Mapping[str, Any]) -> TrustSet:
    """The set if `token` is a trust set signed by `root_jwk`; TrustSetError otherwise."""
    if isinstance(token, bytes):
        if len(token) > MAX_TRUST_SET_BYTES:
            raise TrustSetError(f"a trust set of {len(token)} bytes is too large")
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise TrustSetError("a trust set is ASCII text (a compact JWS)") from None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TrustSetError(f"not a JWS: {exc}") from exc
    if header.get("alg") != "EdDSA" or header.get("typ") != TYP:
        raise TrustSetError(
            f"not a trust set (alg {header.get('alg')!r}, typ {header.get('typ')!r})"
        )
    expected = root_kid(root_jwk)
    if header.get("kid") != expected:
        raise TrustSetError(
            f"signed by key {str(header.get('kid'))[:60]!r}, not the pinned trust root {expected}"
        )
    try:
        key = public_key_from_jwk(dict(root_jwk))
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except (jwt.PyJWTError, ValueError, binascii.Error) as exc:
        raise TrustSetError(f"the signature is not the trust root's: {exc}") from exc
    try:
        trust_set = TrustSet.model_validate(claims)
        keys_in_force(trust_set, 0)  # every key must be a usable Ed25519 key
        for trusted in trust_set.keys:
            jwk = {name: trusted.model_dump()[name] for name in ("crv", "kty", "x")}
            if jwk_thumbprint(jwk) != trusted.kid:
                raise ValueError(f"key {trusted.kid[:60]!r}: its kid is not its thumbprint")
    except (ValidationError, ValueError, binascii.Error) as exc:
        raise TrustSetError(f"the trust set's claims are not valid: {exc}") from exc
    return trust_set


def read_state(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return None  # a damaged copy: the JWKS file and the broker still carry the set


def write_state(path: Path, token: str) -> None:
    """Keep the highest set seen (atomically), so a restart cannot be fed an older one."""
    atomic_write(path, token + "\n", mode=0o640)
