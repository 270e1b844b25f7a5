"""The hub's certificate authorities (ECDSA P-256), kept in `<home>/ca/`.

Two CAs, so that a site certificate can never open the hub's own broker listener:

- the **site CA** (`ca.pem`, `ca.key`) issues each enrolled site's MQTT client certificate
  (CN = site id, from the site's CSR; nothing else in the CSR is copied) and the server
  certificates of the broker and of `rtcc-hub serve`. Sites are given `ca.pem` at enrollment
  to check the broker with;
- the **operator CA** (`operators.pem`, `operators.key`) issues only the hub's own broker
  client certificate, accepted on a listener of its own (see `hub.broker_config`).

Private keys are PKCS#8 PEM, mode 0600, created once (never silently replaced).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.fsutil import atomic_write
from hub.state import SITE_ID, HubHome, write_atomic

CA_DIR = "ca"
SITE_CA = "ca"
OPERATOR_CA = "operators"
# The hub's broker identity. A dot can never appear in a site id (agent.config.ID_PATTERN),
# so no site can be issued a certificate that the broker would take for the hub.
HUB_IDENTITY = "rtcc.hub"

CA_DAYS = 3650
CLIENT_DAYS = 397
SERVER_DAYS = 397
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate a little clock skew on the other side
MAX_CSR_BYTES = 16 * 1024


class CaError(Exception):
    """A CA file is unusable, or a CSR is not one the hub will sign."""


@dataclass(frozen=True)
class IssuedPair:
    """A certificate and its freshly made private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_usage(*, cert_sign: bool, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private(path: Path, data: bytes) -> None:
    """Write a private key 0600 (created beside, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, mode=0o600)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class CertificateAuthority:
    """One CA: its certificate and key in `<directory>/<stem>.pem|.key`."""

    def __init__(self, cert_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.cert_path = cert_path
        self.cert = cert
        self._key = key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load(cls, directory: Path, stem: str) -> CertificateAuthority:
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except OSError as exc:
            raise CaError(f"cannot read the CA {cert_path} / {key_path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CaError(f"the CA {cert_path} / {key_path} is not a PEM certificate/key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CaError(f"the CA key {key_path} is not an EC key")
        if cert.public_key() != key.public_key():
            raise CaError(f"the CA certificate {cert_path} does not belong to {key_path}")
        return cls(cert_path, cert, key)

    @classmethod
    def load_or_create(cls, directory: Path, stem: str, *, name: str) -> CertificateAuthority:
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        if cert_path.exists() or key_path.exists():
            return cls.load(directory, stem)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Key first: a crash between the two leaves a key without a certificate, which `load`
        # reports, never a certificate whose key is lost.
        write_private(key_path, private_pem(key))
        write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
        return cls(cert_path, cert, key)

    # --- issuing -------------------------------------------------------------------------------

    def _leaf(
        self,
        subject_cn: str,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        *,
        days: int,
        usage: x509.ObjectIdentifier,
        names: Sequence[str] = (),
    ) -> x509.Certificate:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(
                    cert_sign=False, key_encipherment=isinstance(public_key, rsa.RSAPublicKey)
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def sign_site_csr(
        self, csr_pem: bytes | str, *, site_id: str, days: int = CLIENT_DAYS
    ) -> x509.Certificate:
        """A client certificate for `site_id` over the CSR's public key. Only the key is taken
        from the CSR: its subject and any extensions it asks for are ignored."""
        public_key = csr_public_key(csr_pem)
        if not SITE_ID.match(site_id):
            raise CaError(f"site id {site_id!r} is not valid")
        return self._leaf(site_id, public_key, days=days, usage=ExtendedKeyUsageOID.CLIENT_AUTH)

    def issue_client(self, cn: str, *, days: int = CLIENT_DAYS) -> IssuedPair:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf(cn, key.public_key(), days=days, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        return IssuedPair(cert.public_bytes(serialization.Encoding.PEM), private_pem(key))

    def issue_server(self, names: Sequence[str], *, days: int = SERVER_DAYS) -> IssuedPair:
        """A server certificate naming every host name / IP address in `names`."""
        if not names:
            raise CaError("a server certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf(
            names[0],
            key.public_key(),
            days=days,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            names=names,
        )
        return IssuedPair(cert.public_bytes(serialization.Encoding.PEM), private_pem(key))

    # --- revoking ------------------------------------------------------------------------------

    def sign_crl(self, revoked: Sequence[tuple[int, datetime.datetime]], *, number: int) -> bytes:
        """A PEM CRL of this CA listing each (serial, revocation time). Its next update is the
        CA's own expiry: OpenSSL (so mosquitto) refuses *every* client while a CRL is past its
        next update, and the hub rewrites the CRL whenever a site is retired anyway."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - _BACKDATE)
            .next_update(max(self.cert.not_valid_after_utc, now + datetime.timedelta(days=1)))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        for serial, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)


def csr_public_key(csr_pem: bytes | str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public key of a well-formed, self-signed CSR with a key good enough for TLS."""
    data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
    if len(data) > MAX_CSR_BYTES:
        raise CaError("the CSR is too large")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise CaError("the CSR is not a PEM certificate signing request") from exc
    try:
        valid = csr.is_signature_valid
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CaError(f"the CSR cannot be read: {exc}") from exc
    if not valid:
        raise CaError("the CSR's signature does not verify")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ("secp256r1", "secp384r1"):
            raise CaError(f"the CSR's EC curve {public_key.curve.name} is not P-256 or P-384")
        return public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise CaError("the CSR's RSA key is shorter than 2048 bits")
        return public_key
    raise CaError("the CSR's key must be EC (P-256/P-384) or RSA (2048+ bits)")


def site_ca(home: HubHome) -> CertificateAuthority:
    """The CA of sites and servers, made on first use."""
    return CertificateAuthority.load_or_create(
        home.root / CA_DIR, SITE_CA, name="rtcc-hub site and server CA"
    )


def operator_ca(home: HubHome) -> CertificateAuthority:
    """The CA of the hub's own broker identity, made on first use."""
    return CertificateAuthority.load_or_create(
        home.root / CA_DIR, OPERATOR_CA, name="rtcc-hub operator CA"
    )
