"""Live relay sessions the hub minted: `rtcc-hub request stream` writes them, `serve` reads them.

A session is minted for one stream request: a random session id, a **publisher token** (goes
into the signed request's `relay.token`; the site presents it as `Authorization: Bearer` on
the ingest websocket) and a **viewer token** (in the viewer URL given to the analyst). Only the
SHA-256 of each token is kept, in `<home>/relay/sessions.json` (mode 0600), with what the
session is for (site, camera, case, request id) and when it expires (the request's lifetime
plus its `max_seconds`, plus a minute). Writers take an exclusive lock on
`<home>/relay/sessions.lock`; the server re-reads the file when it changed, so sessions minted
while it runs are found at once. Expired sessions are dropped at the next mint.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.state import HubHome, HubStateError, exclusive, write_atomic

RELAY_DIR = "relay"
SESSIONS_FILE = "sessions.json"
LOCK_FILE = "sessions.lock"
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
GRACE = timedelta(minutes=1)
# Compared against when a session id is unknown, so that an unknown session and a wrong token
# take the same path through the comparison.
_NO_HASH = "0" * 64


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SessionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SESSION_ID.pattern)
    publisher_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    viewer_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    site: str
    camera: str
    case: str | None = None
    request: str | None = None
    created: datetime
    expires: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires


def token_matches(record: SessionRecord | None, token: str | None, *, viewer: bool) -> bool:
    """Constant-time check of a presented token against the session's stored hash."""
    expected = _NO_HASH
    if record is not None:
        expected = record.viewer_sha256 if viewer else record.publisher_sha256
    presented = token_hash(token) if token else ""
    same = hmac.compare_digest(presented.encode(), expected.encode())
    return same and record is not None


@dataclass(frozen=True)
class MintedSession:
    """A new session and its tokens (the only time the tokens exist in clear)."""

    record: SessionRecord
    publisher_token: str
    viewer_token: str
    ingest_url: str
    viewer_url: str
    page_url: str


def relay_urls(public_url: str, session: str, viewer_token: str) -> tuple[str, str, str]:
    """(ingest websocket URL, viewer .mp4 URL, page URL) under the hub's public URL."""
    parts = urlsplit(public_url.rstrip("/"))
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise HubStateError(f"public URL {public_url!r} is not an https:// URL")
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    base = parts.path.rstrip("/")
    ingest = urlunsplit((ws_scheme, parts.netloc, f"{base}/ingest/{session}", "", ""))
    query = f"token={quote(viewer_token, safe='')}"
    viewer = urlunsplit((parts.scheme, parts.netloc, f"{base}/live/{session}.mp4", query, ""))
    page = urlunsplit((parts.scheme, parts.netloc, f"{base}/live/{session}", query, ""))
    return ingest, viewer, page


class SessionStore:
    def __init__(self, home: HubHome) -> None:
        self.home = home
        self.directory = home.root / RELAY_DIR
        self.path = self.directory / SESSIONS_FILE
        self._lock_path = self.directory / LOCK_FILE
        self._stamp: tuple[int, int] | None = None
        self._cache: dict[str, SessionRecord] = {}

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self._lock_path)

    def _read(self) -> dict[str, SessionRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise HubStateError(f"{self.path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("sessions"), list):
            raise HubStateError(f"{self.path}: not a relay session list")
        try:
            records = [SessionRecord.model_validate(entry) for entry in data["sessions"]]
        except ValidationError as exc:
            raise HubStateError(f"{self.path}: {exc.errors()[0]['msg']}") from exc
        return {record.id: record for record in records}

    def _write(self, records: dict[str, SessionRecord]) -> None:
        ordered = sorted(records.values(), key=lambda r: r.created)
        document = {"sessions": [r.model_dump(mode="json") for r in ordered]}
        write_atomic(self.path, json.dumps(document, indent=2) + "\n", mode=0o600)

    def mint(
        self,
        *,
        public_url: str,
        site: str,
        camera: str,
        lifetime: timedelta,
        case: str | None = None,
        now: datetime | None = None,
    ) -> MintedSession:
        """A new session valid for `lifetime` (+ a minute): ids and tokens from `secrets`."""
        now = now or datetime.now(UTC)
        session = secrets.token_urlsafe(16)
        publisher, viewer = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        ingest, viewer_url, page_url = relay_urls(public_url, session, viewer)
        record = SessionRecord(
            id=session,
            publisher_sha256=token_hash(publisher),
            viewer_sha256=token_hash(viewer),
            site=site,
            camera=camera,
            case=case,
            created=now,
            expires=now + lifetime + GRACE,
        )
        with self._locked():
            records = {k: v for k, v in self._read().items() if not v.expired(now)}
            records[session] = record
            self._write(records)
        return MintedSession(record, publisher, viewer, ingest, viewer_url, page_url)

    def attach_request(self, session: str, request_id: str) -> None:
        """Note which request a session serves (once the request is built)."""
        with self._locked():
            records = self._read()
            record = records.get(session)
            if record is None:
                raise HubStateError(f"no relay session {session}")
            records[session] = record.model_copy(update={"request": request_id})
            self._write(records)

    def get(self, session: str) -> SessionRecord | None:
        """The session's record (None if unknown or not a session id); re-reads the file only
        when it changed since the last call."""
        if not SESSION_ID.match(session):
            return None
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._cache, self._stamp = {}, None
            return None
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            with self._locked():
                self._cache = self._read()
            self._stamp = stamp
        return self._cache.get(session)
