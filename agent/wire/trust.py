"""The RTCC's trust set on the wire (`rtcc/v1/trust`, retained; see `agent.link.trustset`):
a compact JWS with header `typ` = `TRUST_SET_TYP`, signed by the RTCC's root key."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

TRUST_SET_TYP = "rtcc-trust-set+jwt"
MAX_TRUSTED_KEYS = 32


class TrustedKey(BaseModel):
    """An Ed25519 public key (JWK) the RTCC signs requests with."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kty: str = Field(description="OKP")
    crv: str = Field(description="Ed25519")
    x: str
    kid: str = Field(description="RFC 7638 thumbprint; requests name it in their header")
    exp: StrictInt | None = Field(
        None, description="NumericDate: sites refuse the key from then on (a rotation's overlap)"
    )


class TrustSet(BaseModel):
    """The claims of a trust set: which keys sites accept, in which version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ver: Annotated[StrictInt, Field(ge=1, le=2**53)] = Field(
        description="only grows; a site refuses any version lower than the highest it has seen"
    )
    iat: StrictInt
    keys: Annotated[list[TrustedKey], Field(max_length=MAX_TRUSTED_KEYS)]

    def kids(self) -> list[str]:
        return [key.kid for key in self.keys]
