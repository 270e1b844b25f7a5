"""The one builder of client TLS contexts: the broker link, enrollment, uploads, the live relay
and the hub's own broker client all come through `client_context`.

Certificates and host names are always verified and TLS 1.2 is the least accepted; there is no
switch to turn any of that off. What differs between callers is only whom they trust — the
system's CAs, a private CA on top of them, or a private CA alone (pinning the broker) — and
whether they present a client certificate. Each caller turns `TlsFileError` into its own error,
naming its own setting.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path


class TlsFileError(Exception):
    """A CA, certificate or key file cannot be used. `path` is the file (None when the problem is
    the combination), `missing` says it does not exist, `reason` is the library's word."""

    def __init__(self, path: Path | None, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"{path}: {reason}" if path is not None else reason)
        self.path = path
        self.reason = reason
        self.missing = missing


def _trust(context: ssl.SSLContext, ca_file: Path) -> None:
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except FileNotFoundError as exc:
        raise TlsFileError(ca_file, str(exc), missing=True) from exc
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(ca_file, str(exc)) from exc


def client_context(
    *,
    ca_files: Sequence[Path] = (),
    system_cas: bool = True,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """Trust the system's CAs (unless `system_cas` is False) and every file of `ca_files`;
    present the client certificate `cert_file` with `key_file` when both are given."""
    if (cert_file is None) != (key_file is None):
        raise TlsFileError(None, "a client certificate needs both its certificate and key file")
    # Without system CAs, and with nothing else, nothing would be trusted: refuse, not connect.
    if not system_cas and not ca_files:
        raise TlsFileError(None, "no CA to verify the server against")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH) if system_cas else None
    for ca_file in ca_files:
        if context is None:
            # create_default_context(cafile=...) trusts that file alone: no system CAs loaded.
            try:
                context = ssl.create_default_context(cafile=str(ca_file))
            except FileNotFoundError as exc:
                raise TlsFileError(ca_file, str(exc), missing=True) from exc
            except (OSError, ssl.SSLError) as exc:
                raise TlsFileError(ca_file, str(exc)) from exc
        else:
            _trust(context, ca_file)
    assert context is not None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            missing = isinstance(exc, FileNotFoundError)
            raise TlsFileError(cert_file, str(exc), missing=missing) from exc
    return context
