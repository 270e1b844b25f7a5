"""The enrollment exchange (`POST /enroll` on `rtcc-hub serve`), one definition for both sides.

The site sends a one-time token, a CSR for its MQTT client key, the public half of its device
signing key and a proof that it holds that key (a JWS over the token's and the CSR's hashes);
the hub answers with who the site now is and everything it needs to
connect and to check requests. Errors come back as `EnrollErrorBody` with an HTTP status:
400 malformed, 403 unknown or expired token, 409 token already used, 413 too large,
503 the hub is not ready to enroll (no broker, issuer or signing key configured).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.config import ID_PATTERN

ENROLL_PATH = "/enroll"
CHECK_PATH = "/enroll/check"
MAX_BODY_BYTES = 64 * 1024
MAX_PEM_CHARS = 16 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollLocation(_Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class EnrollRequest(_Model):
    token: str = Field(min_length=1, max_length=200)
    csr: str = Field(min_length=1, max_length=MAX_PEM_CHARS, description="PEM CSR, MQTT key")
    device_jwk: dict[str, str] = Field(description="public Ed25519 JWK of the device key")
    proof: str = Field(
        min_length=1,
        max_length=4096,
        description="JWS by the device key over ProofClaims: it holds the key it registers",
    )


class ProofClaims(_Model):
    """What the device key signs in `EnrollRequest.proof` (JWS typ `rtcc-enroll+jwt`)."""

    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    csr_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    iat: int


PROOF_TYP = "rtcc-enroll+jwt"
PROOF_MAX_AGE_S = 600


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TokenCheckRequest(_Model):
    token: str = Field(min_length=1, max_length=200)


class TokenCheckResponse(_Model):
    site_id: str = Field(pattern=ID_PATTERN)
    site_name: str
    expires: str


class EnrollResponse(_Model):
    site_id: str = Field(pattern=ID_PATTERN)
    site_name: str = Field(max_length=200)
    location: EnrollLocation
    client_cert: str = Field(max_length=MAX_PEM_CHARS, description="PEM, CN = site_id")
    ca_cert: str = Field(max_length=MAX_PEM_CHARS, description="PEM, issued the broker's cert")
    broker_url: str = Field(max_length=500)
    broker_urls: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="every node of a clustered broker (broker_url among them); the site "
        "moves to the next when one is lost",
    )
    issuer: str = Field(min_length=1, max_length=500)
    jwks: dict[str, Any]
    evidence_hosts: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="hosts the RTCC receives uploads and live video on; the site allows them "
        "unless its owner already set allowed hosts",
    )


class EnrollErrorBody(_Model):
    error: str
    message: str
