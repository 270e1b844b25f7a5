"""Talking to the hub's enrollment endpoint over HTTPS (verified: system CAs or `--ca`)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from pydantic import ValidationError

from agent.enroll.protocol import (
    ENROLL_PATH,
    MAX_BODY_BYTES,
    EnrollErrorBody,
    EnrollRequest,
    EnrollResponse,
)
from agent.tls import TlsFileError, client_context

DEFAULT_TIMEOUT = 30.0


class EnrollError(Exception):
    """Enrollment did not happen; the message is one sentence for the person enrolling."""

    def __init__(self, message: str, *, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


def hub_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EnrollError(f"the hub URL must look like https://hub.example.gov, not {url!r}")
    if parts.scheme == "http" and not (
        parts.hostname == "localhost" or parts.hostname.startswith("127.")
    ):
        raise EnrollError("the hub must be reached over https:// (a token is sent to it)")
    try:
        _ = parts.port
    except ValueError:
        raise EnrollError(f"the hub URL {url!r} has a bad port") from None
    return url.rstrip("/")


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    try:
        return client_context(ca_files=[ca_file] if ca_file else [], system_cas=not ca_file)
    except TlsFileError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and not isinstance(cause, ssl.SSLError):
            said = f"cannot read the hub's CA {ca_file}: {cause.strerror or cause}"
        else:
            said = f"{ca_file} is not a CA certificate file (PEM): {exc.reason}"
        raise EnrollError(said, code="usage") from exc


async def request_enrollment(
    hub_url: str,
    request: EnrollRequest,
    *,
    ca_file: Path | None = None,
) -> EnrollResponse:
    """POST the enrollment; the hub's answer, checked against the protocol model."""
    base = hub_base_url(hub_url)
    endpoint = base + ENROLL_PATH
    host = urlsplit(base).hostname
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT)) as session,
            session.post(
                endpoint,
                json=request.model_dump(),
                ssl=tls_context(ca_file),
                allow_redirects=False,
            ) as response,
        ):
            raw = await response.content.read(MAX_BODY_BYTES * 4 + 1)
            status = response.status
    except aiohttp.ClientConnectorCertificateError as exc:
        raise EnrollError(
            f"the hub {host} presented a certificate this device does not trust "
            f"({exc.certificate_error}); pass the hub's CA with --ca",
            code="untrusted_hub",
        ) from None
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        raise EnrollError(f"cannot reach the hub at {base}: {reason}", code="unreachable") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise EnrollError(
            f"cannot reach the hub at {base}: {exc or type(exc).__name__}", code="unreachable"
        ) from None
    except TimeoutError:
        raise EnrollError(
            f"the hub at {base} did not answer within {DEFAULT_TIMEOUT:g} s", code="unreachable"
        ) from None
    if len(raw) > MAX_BODY_BYTES * 4:
        raise EnrollError("the hub's answer is too large", code="bad_answer")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if status != 200:
        try:
            error = EnrollErrorBody.model_validate(data)
        except ValidationError:
            raise EnrollError(
                f"the hub answered HTTP {status} without an explanation", code="bad_answer"
            ) from None
        raise EnrollError(f"the hub refused: {error.message}", code=error.error)
    try:
        return EnrollResponse.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise EnrollError(
            f"the hub's answer is not valid ({where}: {first['msg']})", code="bad_answer"
        ) from None
