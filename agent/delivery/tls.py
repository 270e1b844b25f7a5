"""TLS for outbound HTTPS (uploads; the live tunnel uses the same trust): the system's CA
certificates plus, optionally, the RTCC's own CA (`upload.ca_file`). Certificates and host
names are always verified; there is no switch to turn that off."""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsSetupError(Exception):
    """The extra CA file cannot be used (the message names it)."""


def outbound_tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except FileNotFoundError as exc:
            raise TlsSetupError(f"upload.ca_file {ca_file}: no such file") from exc
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(
                f"upload.ca_file {ca_file}: not PEM CA certificates ({exc})"
            ) from exc
    return context
