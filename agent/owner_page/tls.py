"""HTTPS for the owner's page: its self-signed certificate, the fingerprint the owner checks on the
phone, the server's TLS context, and the page's address.

The installer makes the certificate (`rtcc-edge owner cert`): an ECDSA P-256 key (every browser
takes it), valid for this machine's host name, `<hostname>.local`, `localhost`, 127.0.0.1 and
::1 and the machine's LAN addresses at the time. No CA vouches for it, so the browser warns
once; the owner compares the SHA-256 fingerprint it shows with the one `rtcc-edge status`
prints, and accepts it.

The rule (docs/owner-page.md): a page reachable beyond this machine (any `[owner_page] listen`
address but loopback) is served over HTTPS only; on loopback HTTPS is used when the certificate
is there, plain HTTP otherwise.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
import socket
import ssl
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import AgentConfig, ConfigProblem, OwnerPageConfig
from agent.fsutil import atomic_write

CERT_DAYS = 3650  # an owner re-checking a fingerprint every year gains nothing: ten years
RENEW_BEFORE = datetime.timedelta(days=30)
CERT_MODE = 0o644  # public: the browser gets it anyway, and `status` prints its fingerprint
KEY_MODE = 0o640  # root and the page's group (its user's own group) only
PAGE_USER = "rtcc-edge-page"
_SIOCGIFADDR = 0x8915


class PageTlsError(Exception):
    """The page cannot be served as configured; the message is a sentence for the owner."""


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path
    fingerprint: str
    names: tuple[str, ...]  # every DNS name and address it is valid for
    not_after: datetime.datetime
    made: bool  # False: a valid one was there and was kept


def is_loopback(listen: str) -> bool:
    """Whether `host:port` can be reached from this machine only."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, treat it as reachable


def fingerprint(cert_path: Path) -> str:
    """The certificate's SHA-256 fingerprint as `AB:CD:…`, as browsers and `openssl x509
    -fingerprint -sha256` show it."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return _colons(cert.fingerprint(hashes.SHA256()))


def _colons(digest: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in digest)


def lan_addresses() -> list[str]:
    """This machine's IP addresses a phone on the LAN could use (no link-local, no loopback):
    each interface's IPv4 address and the IPv6 ones the kernel lists."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                raw = fcntl.ioctl(sock, _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address
            found.append(socket.inet_ntoa(raw[20:24]))
    try:
        # One line per address: 32 hex digits, interface index, prefix, scope, flags, name.
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        digits = line.split()[0] if line.split() else ""
        if len(digits) == 32:
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(digits))))
    usable: dict[str, None] = {}
    for text in found:
        address = ipaddress.ip_address(text)
        if not (address.is_loopback or address.is_link_local or address.is_multicast):
            usable[str(address)] = None
    return list(usable)


def default_names(hostname: str | None = None) -> list[str]:
    """What the certificate is made for: the host name, `<hostname>.local`, localhost, loopback
    and the LAN addresses."""
    host = (hostname or socket.gethostname()).split(".", 1)[0].lower()
    names = [host, f"{host}.local", "localhost", "127.0.0.1", "::1", *lan_addresses()]
    return list(dict.fromkeys(names))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _names_of(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return (*dns, *ips)


def _usable(cert_path: Path, key_path: Path, now: datetime.datetime) -> x509.Certificate | None:
    """The existing certificate when it can be kept: it loads, matches its key, and is not
    about to expire."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return None
    if cert.not_valid_after_utc - RENEW_BEFORE <= now:
        return None
    return cert


def make_certificate(
    cert_path: Path,
    key_path: Path,
    *,
    renew: bool = False,
    names: Iterable[str] | None = None,
    key_group: int | None = None,
    now: datetime.datetime | None = None,
) -> Certificate:
    """Make the page's certificate and key, or keep a valid existing pair (unless `renew`).
    `key_group`: the group that may read the key (the page's user's group); it stays the
    file's group when None."""
    moment = now or datetime.datetime.now(datetime.UTC)
    existing = None if renew else _usable(cert_path, key_path, moment)
    if existing is not None:
        if key_group is not None:
            _give_key(key_path, key_group)
        return Certificate(
            cert_path,
            key_path,
            _colons(existing.fingerprint(hashes.SHA256())),
            _names_of(existing),
            existing.not_valid_after_utc,
            made=False,
        )
    wanted = list(dict.fromkeys(names if names is not None else default_names()))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, wanted[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rtcc-edge owner's page"),
        ]
    )
    not_after = moment + datetime.timedelta(days=CERT_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - datetime.timedelta(minutes=5))  # a clock a little behind
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in wanted]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    # The key first: a certificate is never in place without the key it was made for.
    owner = (-1, key_group) if key_group is not None else None
    atomic_write(key_path, key_pem, mode=KEY_MODE, owner=owner)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=CERT_MODE)
    return Certificate(
        cert_path,
        key_path,
        _colons(cert.fingerprint(hashes.SHA256())),
        tuple(wanted),
        cert.not_valid_after_utc,
        made=True,
    )


def _give_key(key_path: Path, group: int) -> None:
    info = key_path.stat()
    if info.st_gid != group:
        os.chown(key_path, -1, group)
    if info.st_mode & 0o7777 != KEY_MODE:
        key_path.chmod(KEY_MODE)


def uses_tls(page: OwnerPageConfig) -> bool:
    """HTTPS always beyond loopback; on loopback when the certificate is there."""
    if not is_loopback(page.listen):
        return True
    return page.certificate.exists()


def listen_problem(page: OwnerPageConfig) -> str | None:
    """Why the page cannot be served as configured (a sentence naming the setting), or None."""
    if uses_tls(page) and not page.certificate.exists():
        return (
            f"[owner_page] listen = {page.listen!r} lets other machines reach the owner's page, "
            f"so it is served over HTTPS only, and its certificate {page.certificate} is "
            "missing: make it with `sudo rtcc-edge owner cert`, or set listen to "
            '"127.0.0.1:8443" to keep the page on this machine'
        )
    return None


def config_problems(config: AgentConfig) -> list[ConfigProblem]:
    """For `config check`: a page turned on beyond loopback without its certificate. (Not the
    daemon's concern: the page is its own process, which refuses to start the same way.)"""
    page = config.owner_page
    problem = listen_problem(page) if page.enabled else None
    return [] if problem is None else [ConfigProblem(field="owner_page.listen", message=problem)]


def ssl_context(config: AgentConfig) -> ssl.SSLContext | None:
    """The page's server TLS context (TLS 1.2 at least), or None for plain HTTP on loopback.
    PageTlsError when HTTPS is required but cannot be set up."""
    page = config.owner_page
    problem = listen_problem(page)
    if problem is not None:
        raise PageTlsError(problem)
    if not uses_tls(page):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(page.certificate, page.private_key)
    except PermissionError as exc:
        raise PageTlsError(
            f"cannot read the owner's page key {page.private_key} ({exc.strerror}): the page "
            f"runs as {PAGE_USER}, whose group must own the key (`sudo rtcc-edge owner cert` "
            "puts that right)"
        ) from exc
    except FileNotFoundError as exc:
        raise PageTlsError(
            f"[owner_page] tls_key {page.private_key} is missing: make a new certificate with "
            "`sudo rtcc-edge owner cert --renew`"
        ) from exc
    except (OSError, ssl.SSLError) as exc:
        raise PageTlsError(
            f"[owner_page] tls_cert {page.certificate} and tls_key {page.private_key} cannot be "
            f"used together ({exc}): make a new pair with `sudo rtcc-edge owner cert --renew`"
        ) from exc
    return context


def page_url(config: AgentConfig, *, hostname: str | None = None) -> str:
    """What links and the CLI point the owner to: `[owner_page] public_url`, else
    https://<hostname>.local:PORT when the page is on the LAN, else 127.0.0.1."""
    page = config.owner_page
    if page.public_url is not None:
        return page.public_url
    host, _, port = page.listen.rpartition(":")
    if not is_loopback(page.listen):
        name = (hostname or socket.gethostname()).split(".", 1)[0].lower()
        return f"https://{name}.local:{port}"
    scheme = "https" if uses_tls(page) else "http"
    return f"{scheme}://{'127.0.0.1' if host == 'localhost' else host}:{port}"
