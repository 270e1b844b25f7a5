"""Building, signing, sending and following one request (DESIGN §4.2, §4.3)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from pydantic import ValidationError

from agent.identity import DeviceKey
from agent.wire import EventState, Topics, parse_request_claims
from agent.wire.requests import COMMANDS
from hub.state import TrustedSite
from hub.trust import Checked, check_message

# The protocol's longest request lifetimes (exp - iat); a site may accept less.
MAX_LIFETIME = {"stream": timedelta(minutes=15)}
DEFAULT_MAX_LIFETIME = timedelta(days=7)

# How each claim is given on the command line, for error messages.
_FLAGS = {
    "aud": "--site",
    "camera": "--camera",
    "case": "--case",
    "requester": "--requester",
    "reason": "--reason",
    "start": "--from",
    "end": "--to",
    "at": "--at",
    "upload": "--upload-url",
    "relay": "--relay-url/--relay-token",
    "max_seconds": "--max-seconds",
    "target": "--target",
    "exp": "--ttl",
}

SUCCESS_STATES = frozenset({EventState.COMPLETED, EventState.ENDED})


class RequestError(Exception):
    """The request cannot be built as given; the message names the flag to fix."""


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_claims(
    cmd: str,
    *,
    site: str,
    issuer: str,
    ttl: timedelta,
    now: datetime | None = None,
    camera: str | None = None,
    case: str | None = None,
    requester: str | None = None,
    reason: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    at: datetime | None = None,
    upload_url: str | None = None,
    manifest_url: str | None = None,
    relay_url: str | None = None,
    relay_token: str | None = None,
    max_seconds: int | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """The claims of a `cmd` request, checked against the wire contract before anything is
    signed (a mistake is a RequestError naming the flag, not a rejection from the site)."""
    if cmd not in COMMANDS:
        raise RequestError(f"unknown command {cmd!r} (one of {', '.join(COMMANDS)})")
    limit = MAX_LIFETIME.get(cmd, DEFAULT_MAX_LIFETIME)
    if ttl <= timedelta(0) or ttl > limit:
        raise RequestError(f"--ttl must be more than 0 and at most {limit} for {cmd}")
    issued = now or datetime.now(UTC)
    iat = int(issued.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": site,
        "iat": iat,
        "exp": iat + int(ttl.total_seconds()),
        "jti": str(uuid.uuid4()),
        "cmd": cmd,
    }
    optional: dict[str, Any] = {
        "camera": camera,
        "case": case,
        "requester": requester,
        "reason": reason,
        "start": _rfc3339(start) if start else None,
        "end": _rfc3339(end) if end else None,
        "at": _rfc3339(at) if at else None,
        "max_seconds": max_seconds,
        "target": target,
    }
    if upload_url is not None or manifest_url is not None:
        optional["upload"] = {"url": upload_url, "manifest_url": manifest_url}
        if manifest_url is None:
            del optional["upload"]["manifest_url"]
    if relay_url is not None or relay_token is not None:
        optional["relay"] = {"url": relay_url, "token": relay_token}
    claims.update({name: value for name, value in optional.items() if value is not None})
    try:
        parse_request_claims(claims)
    except ValidationError as exc:
        raise RequestError(_explain(cmd, exc)) from None
    return claims


def _explain(cmd: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if str(part) != cmd]
        claim = loc[0] if loc else "claims"
        flag = _FLAGS.get(claim, claim)
        if error["type"] == "missing":
            problems.append(f"{cmd} needs {flag}")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{flag} does not apply to {cmd}")
        else:
            detail = ".".join(loc[1:])
            where = f"{flag} ({detail})" if detail else flag
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(dict.fromkeys(problems))


def sign_request(key: DeviceKey, claims: Mapping[str, Any]) -> str:
    """A compact EdDSA JWS, `kid` = the hub key's thumbprint (in the JWKS the sites trust)."""
    return key.sign(claims)


async def send_request(client: aiomqtt.Client, site: str, token: str) -> None:
    await client.publish(Topics(site).req, token.encode("ascii"), qos=1)


async def follow_events(
    client: aiomqtt.Client, site: str, jti: str, trusted: Mapping[str, TrustedSite]
) -> AsyncIterator[tuple[Checked, str]]:
    """Every message on `site`'s event topic that concerns request `jti`, checked, with its
    token: verified events of that request, and anything that failed verification (whatever it
    claims, it cannot be attributed, so it is shown rather than believed). Subscribe to the
    event topic before sending the request so nothing is missed."""
    topic = Topics(site).evt
    async for message in client.messages:
        if message.topic.value != topic:
            continue
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
        checked = check_message(topic, payload, trusted)
        if not checked.ok or (checked.claims or {}).get("req") == jti:
            yield checked, payload.decode("ascii", "replace")
