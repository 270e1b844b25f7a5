"""Judging what sites publish: every event, status and registry is checked against the device
key the hub registered for that site before anything is believed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from pydantic import ValidationError

from agent.identity import JwsError, verify_device_jws
from agent.wire import Event, RegistryClaims, StatusClaims, Topics
from hub.state import TrustedSite

_MODELS: dict[str, type[Event] | type[StatusClaims] | type[RegistryClaims]] = {
    "evt": Event,
    "status": StatusClaims,
    "registry": RegistryClaims,
}


class Verdict(StrEnum):
    VERIFIED = "verified"  # signed by the site's registered key, claims well-formed
    UNTRUSTED = "untrusted"  # no key registered for this site: nothing can be believed
    FORGED = "forged"  # a JWS, but not by the site's registered key
    MALFORMED = "malformed"  # not a JWS, or signed claims that break the contract


MARKS = {
    Verdict.VERIFIED: "✓",
    Verdict.UNTRUSTED: "?",
    Verdict.FORGED: "✗",
    Verdict.MALFORMED: "!",
}


@dataclass(frozen=True)
class Checked:
    topic: str
    site: str | None
    kind: str
    verdict: Verdict
    reason: str = ""
    claims: dict[str, Any] | None = None  # only when verified
    model: Event | StatusClaims | RegistryClaims | None = None  # only when verified

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VERIFIED


def check_message(topic: str, payload: bytes, sites: Mapping[str, TrustedSite]) -> Checked:
    """Verify one message from a site topic (`rtcc/v1/sites/{site}/{kind}`)."""
    site = Topics.site_of(topic)
    kind = topic.rsplit("/", 1)[-1]
    if site is None or kind not in _MODELS:
        return Checked(topic, site, kind, Verdict.MALFORMED, "not a site event/status/registry")
    trusted = sites.get(site)
    if trusted is None:
        return Checked(topic, site, kind, Verdict.UNTRUSTED, f"no device key registered for {site}")
    try:
        token = payload.decode("ascii")
        jwt.get_unverified_header(token)
    except (UnicodeDecodeError, jwt.PyJWTError) as exc:
        return Checked(topic, site, kind, Verdict.MALFORMED, f"not a JWS: {exc}")
    try:
        claims = verify_device_jws(token, trusted.jwk)
    except JwsError as exc:
        return Checked(topic, site, kind, Verdict.FORGED, str(exc))
    if claims.get("iss") != site:
        return Checked(
            topic, site, kind, Verdict.MALFORMED, f"iss {claims.get('iss')!r} is not {site!r}"
        )
    try:
        model = _MODELS[kind].model_validate(claims)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "claims"
        return Checked(topic, site, kind, Verdict.MALFORMED, f"{where}: {first['msg']}")
    return Checked(topic, site, kind, Verdict.VERIFIED, "", claims, model)
