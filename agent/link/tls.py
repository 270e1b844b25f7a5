"""The TLS context for the broker connection.

Built from files, so it is made afresh for each connection attempt (in a worker thread: loading
PEM files is disk I/O) and a certificate renewed by enrollment is picked up on the next connect.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.tls import TlsFileError, client_context


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
        # A broker CA given is the only one trusted (the site's broker is pinned to it).
        return client_context(
            ca_files=[ca_file] if ca_file else [],
            system_cas=not ca_file,
            cert_file=cert_file,
            key_file=key_file,
        )
    except TlsFileError as exc:
        if exc.path is None:
            raise TlsConfigError(exc.reason) from exc
        if exc.path == cert_file:
            raise TlsConfigError(
                f"client certificate {cert_file} / key {key_file}: {exc.reason}"
            ) from exc
        raise TlsConfigError(f"CA file {ca_file}: {exc.reason}") from exc
