"""What the owner is told of a request waiting for approval, and its signature.

One payload for every channel (schema in docs/notifications.md): the webhook POSTs it as JSON,
the email says the same in plain words. The webhook body is signed with the device key as a
detached JWS with an unencoded payload (RFC 7515 appendix F, RFC 7797): the header
`X-Rtcc-Signature` holds `<protected header>..<signature>`, and the signed bytes are exactly
the body received, so a receiver checks it without re-serialising any JSON.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt

from agent.identity import DeviceKey

SCHEMA = "rtcc-edge.pending-request.v1"
SIGNATURE_HEADER = "X-Rtcc-Signature"
SIGNATURE_TYP = "rtcc-notification+jws"
DEFAULT_PAGE_URL = "https://127.0.0.1:8443"


def request_link(page_url: str, request_id: str) -> str:
    """The request on the owner's page."""
    return f"{page_url.rstrip('/')}/requests/{request_id}"


def pending_payload(
    summary: dict[str, Any], *, site_id: str, site_name: str, page_url: str
) -> dict[str, Any]:
    """The notification of `summary` (`RequestRecord.summary()`: never upload URLs or tokens)."""
    return {
        "schema": SCHEMA,
        "id": str(uuid.uuid4()),
        "event": "pending_approval",
        "site": site_id,
        "site_name": site_name,
        "sent_at": datetime.now(UTC).isoformat(),
        "link": request_link(page_url, str(summary.get("id"))),
        "request": summary,
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign_body(body: bytes, key: DeviceKey) -> str:
    """The detached JWS over `body` (header `kid` = the device key's thumbprint)."""
    return jwt.api_jws.encode(
        body,
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid, "typ": SIGNATURE_TYP, "b64": False, "crit": ["b64"]},
        is_payload_detached=True,
    )


def verify_body(body: bytes, signature: str, public_jwk: dict[str, Any]) -> dict[str, Any]:
    """The protected header if `signature` signs `body` with `public_jwk`'s key; raises
    jwt.InvalidTokenError (e.g. InvalidSignatureError) otherwise. What a receiver does."""
    key = jwt.PyJWK(public_jwk)
    decoded = jwt.api_jws.decode_complete(
        signature, key.key, algorithms=["EdDSA"], detached_payload=body
    )
    header: dict[str, Any] = decoded["header"]
    if header.get("typ") != SIGNATURE_TYP:
        raise jwt.InvalidTokenError(f"not a notification signature (typ {header.get('typ')!r})")
    return header
