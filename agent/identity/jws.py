"""Checking a JWS signed by a site's device key (the hub and `rtcc-hub verify` use this)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from agent.identity.jwk import public_key_from_jwk


class JwsError(Exception):
    """The JWS is not one this key signed."""


def verify_device_jws(token: str, jwk: Mapping[str, Any]) -> dict[str, Any]:
    """Return the claims if `token` is an EdDSA JWS by `jwk`; otherwise raise JwsError.

    Time claims are not judged here: a manifest stays valid evidence long after it was made.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise JwsError(f"not a JWS: {exc}") from exc
    if header.get("alg") != "EdDSA":
        raise JwsError(f"algorithm {header.get('alg')!r} is not EdDSA")
    if "kid" in jwk and header.get("kid") != jwk["kid"]:
        raise JwsError("signed by a different key (kid does not match)")
    try:
        key = public_key_from_jwk(jwk)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except (jwt.PyJWTError, ValueError) as exc:
        raise JwsError(f"signature does not verify: {exc}") from exc
    return claims
