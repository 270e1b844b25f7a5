"""The site's MQTT client key and the CSR the hub signs.

This key is deliberately not the device key. The device key (Ed25519) is the site's evidence
identity: it signs events, manifests and the ledger, and a manifest signed years ago must still
be attributable to it. The MQTT key only proves to the broker which site is connecting; it is an
ECDSA P-256 key because that is what every TLS stack and broker accepts for client
certificates (Ed25519 client certificates are not), it is re-issued whenever the certificate is,
and a TLS library or broker bug that exposes it does not give anyone the power to sign evidence.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def new_client_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def client_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def build_csr(key: ec.EllipticCurvePrivateKey) -> str:
    """A PEM CSR over `key`. The subject is a placeholder: the hub sets CN to the site id."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcc-edge site")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
