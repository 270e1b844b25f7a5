"""The TLS context for the broker connection.

Built from files, so it is made afresh for each connection attempt (in a worker thread: loading
PEM files is disk I/O) and a certificate renewed by enrollment is picked up on the next connect.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsConfigError(Exception):
    """A CA, certificate or key file is missing or unusable."""


def client_tls_context(
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """Verify the broker against `ca_file` (system CAs if None); present a client certificate
    when `cert_file` and `key_file` are given. TLS 1.2 at least, host names checked."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"CA file {ca_file}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if (cert_file is None) != (key_file is None):
        raise TlsConfigError("a client certificate needs both its certificate and key file")
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(f"client certificate {cert_file} / key {key_file}: {exc}") from exc
    return context
