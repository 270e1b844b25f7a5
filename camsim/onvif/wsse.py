"""WS-Security UsernameToken checking, as an ONVIF camera does it.

PasswordDigest = Base64(SHA-1(nonce + created + password)), where `created` must be within the
camera's window (±5 min by default) of the camera's *own* clock, so a camera whose clock is off
rejects a client that does not compensate, and each nonce is good for one request only.
PasswordText compares the password itself (ONVIF allows it; some cameras accept nothing else).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from lxml import etree

from camsim.onvif.soap import not_authorized
from camsim.onvif.xml import WSSE, WSU, q

_DIGEST = "#PasswordDigest"
_TEXT = "#PasswordText"
_MAX_FIELD = 256


class NonceCache:
    """Nonces already used, each remembered until it could no longer pass the time check."""

    def __init__(self, *, capacity: int = 8192) -> None:
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._capacity = capacity

    def use(self, nonce: bytes, *, ttl: float) -> bool:
        """Record `nonce`; False if it was already used."""
        now = time.monotonic()
        while self._seen:
            oldest, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self._capacity:
                break
            del self._seen[oldest]
        if nonce in self._seen:
            return False
        self._seen[nonce] = now + ttl
        return True


def parse_created(text: str) -> datetime:
    """An xs:dateTime as clients send it (`Z`, `+00:00`, fractions, or no zone meaning UTC)."""
    value = text.strip()
    if not value or len(value) > 64:
        raise ValueError("bad Created")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


class UsernameTokenVerifier:
    """Checks the wsse:Security header of one camera's requests."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        clock: Callable[[], datetime],
        window: float = 300.0,
        accept_digest: bool = True,
        accept_text: bool = True,
    ) -> None:
        self._username = username.encode()
        self._password = password.encode()
        self._clock = clock
        self._window = window
        self._accept_digest = accept_digest
        self._accept_text = accept_text
        self._nonces = NonceCache()

    def verify(self, security: etree._Element | None) -> None:
        """Return if the token is good; raise a ter:NotAuthorized SoapFault otherwise."""
        if security is None:
            raise not_authorized("Sender not Authorized: no WS-Security header")
        token = security.find(q(WSSE, "UsernameToken"))
        if token is None:
            raise not_authorized("Sender not Authorized: no UsernameToken")
        username = _field(token, WSSE, "Username")
        password_el = token.find(q(WSSE, "Password"))
        if username is None or password_el is None:
            raise not_authorized("Sender not Authorized: incomplete UsernameToken")
        password = password_el.text or ""
        kind = str(password_el.get("Type") or _TEXT)
        user_ok = hmac.compare_digest(username.encode(), self._username)
        if kind.endswith(_DIGEST):
            if not self._accept_digest:
                raise not_authorized("Sender not Authorized: PasswordDigest is not supported")
            self._verify_digest(token, password, user_ok)
        elif kind.endswith(_TEXT):
            if not self._accept_text:
                raise not_authorized("Sender not Authorized: PasswordText is not supported")
            if not (hmac.compare_digest(password.encode(), self._password) and user_ok):
                raise not_authorized("Sender not Authorized: invalid username or password")
        else:
            raise not_authorized("Sender not Authorized: unknown password type")

    def _verify_digest(self, token: etree._Element, password: str, user_ok: bool) -> None:
        nonce_text = _field(token, WSSE, "Nonce")
        # Clients put Created in the wsu namespace; a few old ones use wsse.
        created_text = _field(token, WSU, "Created") or _field(token, WSSE, "Created")
        if not nonce_text or not created_text:
            raise not_authorized("Sender not Authorized: PasswordDigest needs Nonce and Created")
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            created = parse_created(created_text)
        except (binascii.Error, ValueError):
            raise not_authorized("Sender not Authorized: malformed Nonce or Created") from None
        offset = abs((created - self._clock()).total_seconds())
        if offset > self._window:
            raise not_authorized(
                "Sender not Authorized: Created is outside the camera's time window"
            )
        expected = base64.b64encode(
            # SHA-1 is what the UsernameToken Profile prescribes.
            hashlib.sha1(
                nonce + created_text.encode() + self._password, usedforsecurity=False
            ).digest()
        )
        if not (hmac.compare_digest(password.strip().encode(), expected) and user_ok):
            raise not_authorized("Sender not Authorized: invalid username or password")
        if not self._nonces.use(nonce + created_text.encode(), ttl=2 * self._window):
            raise not_authorized("Sender not Authorized: nonce already used")


def _field(token: etree._Element, ns: str, name: str) -> str | None:
    element = token.find(q(ns, name))
    if element is None:
        return None
    text = element.text or ""
    if len(text) > _MAX_FIELD:
        raise not_authorized("Sender not Authorized: oversized UsernameToken field")
    return str(text)
