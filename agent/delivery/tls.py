"""TLS for outbound HTTPS (uploads; the live tunnel uses the same trust): the system's CA
certificates plus, optionally, the RTCC's own CA (`upload.ca_file`). Certificates and host
names are always verified; there is no switch to turn that off."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.tls import TlsFileError, client_context


class TlsSetupError(Exception):
    """The extra CA file cannot be used (the message names it)."""


def outbound_tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    try:
        return client_context(ca_files=[ca_file] if ca_file is not None else [])
    except TlsFileError as exc:
        if exc.missing:
            raise TlsSetupError(f"upload.ca_file {ca_file}: no such file") from exc
        raise TlsSetupError(
            f"upload.ca_file {ca_file}: not PEM CA certificates ({exc.reason})"
        ) from exc
