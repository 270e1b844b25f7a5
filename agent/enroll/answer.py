"""Checking the hub's enrollment answer before anything is written.

The hub is trusted to say who the site is, but what it sends must still fit together: the
certificate is for our key and names the site id, the CA it gives really issued it, and the
RTCC keys are Ed25519 public keys. A broken or hostile answer is refused as a whole.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.enroll.client import EnrollError
from agent.enroll.protocol import EnrollResponse
from agent.identity import jwk_thumbprint
from agent.identity.jwk import public_key_from_jwk
from agent.link.trustset import TrustSetError, verify_trust_set


@dataclass(frozen=True)
class CheckedAnswer:
    site_id: str
    site_name: str
    lat: float
    lon: float
    broker_url: str
    issuer: str
    client_cert_pem: bytes
    ca_cert_pem: bytes
    jwks_json: str
    cert_expires: datetime.datetime
    evidence_hosts: tuple[str, ...] = ()
    broker_urls: tuple[str, ...] = ()


def _bad(message: str) -> EnrollError:
    return EnrollError(f"the hub's answer is not usable: {message}", code="bad_answer")


def _certificate(pem: str, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise _bad(f"the {what} is not a PEM certificate") from None


def _printable(text: str, what: str) -> str:
    if not text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _bad(f"the {what} is empty or holds control characters")
    return text


def check_jwks(jwks: dict[str, object]) -> str:
    """The RTCC's JWKS as the JSON text to store: Ed25519 public keys only, at least one."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise _bad("the RTCC key set has no keys")
    clean = []
    for key in keys:
        if not isinstance(key, dict) or "d" in key:
            raise _bad("the RTCC key set holds something other than public keys")
        try:
            public_key_from_jwk(key)
            kid = jwk_thumbprint(key)
        except (ValueError, KeyError, TypeError):
            raise _bad("the RTCC key set holds a key that is not Ed25519") from None
        if "kid" in key and key["kid"] != kid:
            raise _bad("an RTCC key's kid is not its thumbprint")
        clean.append(key)
    document: dict[str, object] = {"keys": clean}
    root, trust_set = jwks.get("trust_root"), jwks.get("trust_set")
    if root is not None or trust_set is not None:
        # The RTCC's trust root, pinned here at enrollment: from now on only trust sets it
        # signed change which keys this site accepts (agent.link.trustset).
        if not isinstance(root, dict) or "d" in root or not isinstance(trust_set, str):
            raise _bad("the RTCC's trust root or trust set is not valid")
        try:
            verify_trust_set(trust_set, root)
        except (TrustSetError, ValueError, KeyError, TypeError):
            raise _bad("the RTCC's trust set is not signed by its trust root") from None
        document.update(trust_root=root, trust_set=trust_set)
    return json.dumps(document, indent=2) + "\n"


def check_answer(answer: EnrollResponse, client_key: ec.EllipticCurvePrivateKey) -> CheckedAnswer:
    cert = _certificate(answer.client_cert, "client certificate")
    ca = _certificate(answer.ca_cert, "CA certificate")
    ours = client_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        raise _bad("the client certificate is not for the key this device sent")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [answer.site_id]:
        raise _bad(f"the client certificate does not name the site {answer.site_id}")
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise _bad("the CA certificate is not a CA")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise _bad("the client certificate was not issued by the CA the hub sent") from None
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise _bad("the client certificate is not for TLS client authentication")
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc <= now:
        raise _bad("the client certificate has already expired")
    for url in [answer.broker_url, *answer.broker_urls]:
        broker = urlsplit(url)
        if broker.scheme != "mqtts" or not broker.hostname or len(url) > 500:
            raise _bad(f"the broker URL {url!r} is not mqtts://host:port")
    return CheckedAnswer(
        site_id=answer.site_id,
        site_name=_printable(answer.site_name, "site name"),
        lat=answer.location.lat,
        lon=answer.location.lon,
        broker_url=answer.broker_url,
        broker_urls=tuple(dict.fromkeys([answer.broker_url, *answer.broker_urls]))
        if answer.broker_urls
        else (),
        issuer=_printable(answer.issuer, "issuer"),
        client_cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        ca_cert_pem=ca.public_bytes(serialization.Encoding.PEM),
        jwks_json=check_jwks(answer.jwks),
        cert_expires=cert.not_valid_after_utc,
        evidence_hosts=tuple(_evidence_host(h) for h in answer.evidence_hosts),
    )


def _evidence_host(host: str) -> str:
    """A plain host name or address: never a pattern, a port or anything else a hub could
    slip into the owner's allowed-host lists."""
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
        raise _bad(f"evidence host {host!r} is not a host name")
    return host.lower()
