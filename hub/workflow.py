"""The request workflow every interface uses (the console, `rtcc-hub request`, `incident new`):
prepare (mint upload URLs or a relay session on this hub, build and check the claims, sign),
record in the database, publish.

    prepared = prepare_request(home, key, issuer, RequestSpec(cmd="clip", site=..., ...))
    await record_request(db, prepared, sent_by="analyst-7")
    await publish(client, prepared)

Events then come back through the ingestion (`hub.events`), which moves the recorded request
through its states; a clip's evidence lands in the locker (`hub.evidence`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from agent.identity import DeviceKey
from agent.wire import Topics
from hub.db import Database, RequestRow
from hub.presign import MintedUpload, mint_upload
from hub.relay_sessions import MintedSession, SessionStore
from hub.request import RequestError, build_claims, sign_request
from hub.server import load_serve_settings
from hub.state import HubHome

DEFAULT_TTL = timedelta(minutes=10)
# A clip or snapshot may wait for a registry camera's owner to answer: the site keeps it (and
# holds its footage) until its `exp`, so it gets days, not minutes (the protocol allows 7).
FOOTAGE_TTL = timedelta(days=2)


def default_ttl(cmd: str) -> timedelta:
    """How long a request of `cmd` lives when the analyst does not say."""
    return FOOTAGE_TTL if cmd in ("clip", "snapshot") else DEFAULT_TTL


class Publisher(Protocol):
    """What sends a request: an aiomqtt client, or the ingestion's connection."""

    async def publish(self, topic: str, payload: bytes, qos: int = ...) -> Any: ...


@dataclass(frozen=True)
class RequestSpec:
    """What an analyst asks for; the optional parts as each command needs them."""

    cmd: str
    site: str
    camera: str | None = None
    case: str | None = None
    requester: str | None = None
    reason: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    at: datetime | None = None
    upload_url: str | None = None
    manifest_url: str | None = None
    relay_url: str | None = None
    relay_token: str | None = None
    max_seconds: int | None = None
    target: str | None = None
    ttl: timedelta = DEFAULT_TTL


@dataclass(frozen=True)
class PreparedRequest:
    spec: RequestSpec
    claims: dict[str, Any]
    token: str
    upload: MintedUpload | None
    relay: MintedSession | None

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def site(self) -> str:
        return self.spec.site


def _mint_upload(home: HubHome, spec: RequestSpec, now: datetime) -> MintedUpload | None:
    """Upload URLs on this hub's receiver for a clip or snapshot without an upload URL.

    None without a case: the URLs are made per case, and `build_claims` then reports the
    missing --case together with anything else missing."""
    if spec.cmd not in ("clip", "snapshot") or spec.case is None or spec.upload_url is not None:
        return None
    public_url = load_serve_settings(home).public_url
    if public_url is None:
        raise RequestError(
            "no --upload-url, and this hub's receiver has not run yet: start `rtcc-hub serve` "
            "(it records its public URL) or give --upload-url"
        )
    expires = int(now.timestamp() + spec.ttl.total_seconds())
    try:
        return mint_upload(
            home,
            base_url=public_url,
            cmd=spec.cmd,
            case=spec.case,
            request_id=str(uuid.uuid4()),
            expires=expires,
        )
    except ValueError as exc:
        raise RequestError(f"--case: {exc}") from None


def _mint_relay(home: HubHome, spec: RequestSpec) -> MintedSession | None:
    """A live session on this hub's relay for a stream request without a relay URL."""
    if spec.cmd != "stream" or spec.relay_url is not None or spec.relay_token is not None:
        return None
    if spec.camera is None:
        raise RequestError("stream needs --camera")
    if spec.max_seconds is None or spec.max_seconds < 1:
        raise RequestError("stream needs --max-seconds (at least 1)")
    public_url = load_serve_settings(home).public_url
    if public_url is None:
        raise RequestError(
            "no --relay-url, and this hub's relay has not run yet: start `rtcc-hub serve` "
            "(it records its public URL) or give --relay-url and --relay-token"
        )
    return SessionStore(home).mint(
        public_url=public_url,
        site=spec.site,
        camera=spec.camera,
        case=spec.case,
        lifetime=spec.ttl + timedelta(seconds=spec.max_seconds),
    )


def prepare_request(
    home: HubHome,
    key: DeviceKey,
    issuer: str,
    spec: RequestSpec,
    *,
    now: datetime | None = None,
) -> PreparedRequest:
    """Mint what the request needs on this hub, build and check its claims, sign them.
    RequestError (naming the flag to fix) if it cannot be built as given."""
    now = now or datetime.now(UTC)
    upload = _mint_upload(home, spec, now)
    relay = _mint_relay(home, spec)
    claims = build_claims(
        spec.cmd,
        site=spec.site,
        issuer=issuer,
        ttl=spec.ttl,
        now=now,
        camera=spec.camera,
        case=spec.case,
        requester=spec.requester,
        reason=spec.reason,
        start=spec.start,
        end=spec.end,
        at=spec.at,
        upload_url=upload.upload_url if upload else spec.upload_url,
        manifest_url=spec.manifest_url or (upload.manifest_url if upload else None),
        relay_url=relay.ingest_url if relay else spec.relay_url,
        relay_token=relay.publisher_token if relay else spec.relay_token,
        max_seconds=spec.max_seconds,
        target=spec.target,
    )
    if upload is not None:
        claims["jti"] = upload.request_id  # the id the upload URLs were minted for
    if relay is not None:
        SessionStore(home).attach_request(relay.record.id, claims["jti"])
    return PreparedRequest(spec, claims, sign_request(key, claims), upload, relay)


async def record_request(
    db: Database,
    prepared: PreparedRequest,
    *,
    incident_id: int | None = None,
    sharing: str | None = None,
) -> RequestRow:
    """The request as sent, before it is published (so no event can arrive for an unknown
    request)."""
    row = request_row(prepared, incident_id=incident_id, sharing=sharing)
    async with db.session() as session:
        session.add(row)
    return row


def request_row(
    prepared: PreparedRequest, *, incident_id: int | None = None, sharing: str | None = None
) -> RequestRow:
    """The database row of a prepared request (to add in a transaction of the caller's)."""
    spec, claims = prepared.spec, prepared.claims
    return RequestRow(
        id=prepared.jti,
        incident_id=incident_id,
        site_id=spec.site,
        camera_id=spec.camera,
        cmd=spec.cmd,
        case=spec.case,
        requester=spec.requester,
        reason=spec.reason,
        start=spec.start,
        end=spec.end,
        at=spec.at,
        max_seconds=spec.max_seconds,
        target=spec.target,
        relay_session=prepared.relay.record.id if prepared.relay else None,
        sharing=sharing,
        issued=datetime.fromtimestamp(claims["iat"], UTC),
        expires=datetime.fromtimestamp(claims["exp"], UTC),
        token=prepared.token,
        state="sent",
        updated=datetime.now(UTC),
    )


async def publish(client: Publisher, prepared: PreparedRequest) -> None:
    await client.publish(Topics(prepared.site).req, prepared.token.encode("ascii"), qos=1)
