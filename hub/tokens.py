"""One-time, expiring enrollment tokens (`rtcc-hub tokens new`), stored hashed.

A token is 32 random bytes (base64url, prefixed `rtcc1_` so it is recognisable in a paste). The
hub keeps only its SHA-256 in `<home>/tokens.json` with what it was made for: the site id the
enrolling device will get, the site's name and location, and its expiry. Redeeming marks it
used; a second device presenting it is refused. The same device retrying while the token is
still within its lifetime (it proves it holds the same device key: its first answer was lost on
the way) is answered again, so a dropped connection during enrollment does not burn the token.

Every change happens under an exclusive lock on `<home>/tokens.lock`, so `tokens new` and a
running `serve` can share the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.state import SITE_ID, HubHome, HubStateError, exclusive, write_atomic

TOKENS_FILE = "tokens.json"
LOCK_FILE = "tokens.lock"
TOKEN_PREFIX = "rtcc1_"  # noqa: S105 - a label, not a secret
DEFAULT_TTL = timedelta(hours=24)
MAX_TTL = timedelta(days=30)
_TOKEN_RE = re.compile(r"^rtcc1_[A-Za-z0-9_-]{43}$")


class TokenRefusal(StrEnum):
    UNKNOWN = "unknown_token"
    EXPIRED = "expired_token"
    USED = "used_token"


class TokenError(Exception):
    """A token that cannot be redeemed; `code` says why, the message says it to a person."""

    def __init__(self, code: TokenRefusal, message: str) -> None:
        super().__init__(message)
        self.code = code


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class TokenRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str
    site_id: str = Field(pattern=SITE_ID.pattern)
    site_name: str
    location: Location
    created: datetime
    expires: datetime
    used_at: datetime | None = None
    device_kid: str | None = None
    csr_key_sha256: str | None = None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: str) -> bool:
    return bool(_TOKEN_RE.match(token))


def site_id_for(name: str, taken: set[str]) -> str:
    """A new site id from the site's name: `corner-grocery-3f9a`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "site"
    if not slug[0].isalnum():
        slug = f"site-{slug}"
    while True:
        candidate = f"{slug}-{secrets.token_hex(2)}"
        if candidate not in taken:
            return candidate


class TokenStore:
    def __init__(self, home: HubHome) -> None:
        self.home = home
        self.path = home.root / TOKENS_FILE
        self._lock_path = home.root / LOCK_FILE

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self._lock_path, directory_mode=0o755)

    def _read(self) -> dict[str, TokenRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise HubStateError(f"{self.path}: {exc}") from exc
        if not isinstance(data, list):
            raise HubStateError(f"{self.path}: not a list of tokens")
        try:
            records = [TokenRecord.model_validate(entry) for entry in data]
        except ValidationError as exc:
            raise HubStateError(f"{self.path}: {exc.errors()[0]['msg']}") from exc
        return {record.sha256: record for record in records}

    def _write(self, records: dict[str, TokenRecord]) -> None:
        document = [r.model_dump(mode="json") for r in sorted(records.values(), key=_by_created)]
        write_atomic(self.path, json.dumps(document, indent=2) + "\n", mode=0o600)

    def records(self) -> list[TokenRecord]:
        with self._locked():
            return sorted(self._read().values(), key=_by_created)

    def create(
        self,
        *,
        site_name: str,
        location: Location,
        ttl: timedelta = DEFAULT_TTL,
        site_id: str | None = None,
        now: datetime | None = None,
    ) -> tuple[str, TokenRecord]:
        """Make a token; returns it (shown once, never stored) and its record. With `site_id`
        (an enrolled site), the token enrolls that site again: a new certificate, and the
        device key it then presents (renewal, key rotation, a replaced device)."""
        name = site_name.strip()
        if not name or len(name) > 200 or any(ord(c) < 0x20 for c in name):
            raise ValueError("the site name must be 1 to 200 printable characters")
        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValueError(f"the token lifetime must be more than 0 and at most {MAX_TTL.days}d")
        moment = now or datetime.now(UTC)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked():
            records = self._read()
            taken = {r.site_id for r in records.values()} | set(self.home.trusted_sites())
            if site_id is not None and site_id not in taken:
                raise ValueError(f"{site_id} is not a site this hub knows")
            record = TokenRecord(
                sha256=token_hash(token),
                site_id=site_id or site_id_for(name, taken),
                site_name=name,
                location=location,
                created=moment,
                expires=moment + ttl,
            )
            records[record.sha256] = record
            self._write(records)
        return token, record

    def latest(self, site_id: str) -> TokenRecord | None:
        """The newest token made for `site_id` (its name and location), if any."""
        made = [r for r in self.records() if r.site_id == site_id]
        return made[-1] if made else None

    def check(self, token: str, *, now: datetime | None = None) -> TokenRecord:
        """The token's record if it could be redeemed now; TokenError otherwise. Changes
        nothing (the installer asks before it installs anything)."""
        moment = now or datetime.now(UTC)
        with self._locked():
            record = self._find(self._read(), token)
            self._refuse_spent(record, moment)
            return record

    def redeem(
        self, token: str, *, device_kid: str, csr_key_sha256: str, now: datetime | None = None
    ) -> TokenRecord:
        """Mark the token used by this device; TokenError if it is unknown, expired, or was
        used by another device. The caller has checked that the device holds `device_kid`'s
        key, so the same device asking again (its first answer was lost) is answered again."""
        moment = now or datetime.now(UTC)
        with self._locked():
            records = self._read()
            record = self._find(records, token)
            same_device = record.used_at is not None and hmac.compare_digest(
                record.device_kid or "", device_kid
            )
            if same_device and not record.expired(moment):
                used = record.model_copy(update={"csr_key_sha256": csr_key_sha256})
            else:
                self._refuse_spent(record, moment)
                used = record.model_copy(
                    update={
                        "used_at": moment,
                        "device_kid": device_kid,
                        "csr_key_sha256": csr_key_sha256,
                    }
                )
            records[used.sha256] = used
            self._write(records)
            return used

    @staticmethod
    def _find(records: dict[str, TokenRecord], token: str) -> TokenRecord:
        if not looks_like_token(token):
            raise TokenError(
                TokenRefusal.UNKNOWN,
                "that is not an enrollment token (one is rtcc1_ and 43 letters, digits, - or _)",
            )
        digest = token_hash(token)
        for known, record in records.items():
            if hmac.compare_digest(known, digest):
                return record
        raise TokenError(
            TokenRefusal.UNKNOWN, "this enrollment token is not known to the hub (mistyped?)"
        )

    @staticmethod
    def _refuse_spent(record: TokenRecord, now: datetime) -> None:
        if record.used_at is not None:
            raise TokenError(
                TokenRefusal.USED,
                f"this enrollment token was already used at {record.used_at:%Y-%m-%d %H:%M} UTC "
                f"(site {record.site_id}); ask the RTCC for a new one",
            )
        if record.expired(now):
            raise TokenError(
                TokenRefusal.EXPIRED,
                f"this enrollment token expired at {record.expires:%Y-%m-%d %H:%M} UTC; "
                "ask the RTCC for a new one",
            )


def _by_created(record: TokenRecord) -> datetime:
    return record.created
