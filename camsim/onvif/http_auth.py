"""HTTP authentication on the camera's web endpoints: Digest (RFC 7616, MD5, qop=auth) and Basic.

Used for the snapshot URL and, for cameras with the `http_digest_auth` quirk, for the SOAP
endpoints. Nonces are stateless (a timestamp signed with a per-camera secret) and expire, after
which the client is told `stale=true`, as RFC 7616 prescribes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from typing import Literal

HttpAuthMode = Literal["digest", "basic", "none"]
Verdict = Literal["ok", "stale", "denied"]

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')
_MAX_HEADER = 4096
NONCE_LIFETIME = 300.0


def parse_auth_params(value: str) -> dict[str, str]:
    """`k=v, k2="v 2"` → dict (lower-case keys); unparseable text yields what was parseable."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        match = _PARAM.match(value, pos)
        if match is None or match.end() == pos:
            break
        key, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(key, raw)
        pos = match.end()
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class HttpAuthenticator:
    """Checks the Authorization header of requests to one camera's HTTP endpoints."""

    def __init__(
        self, username: str, password: str, *, mode: HttpAuthMode, realm: str = "camsim"
    ) -> None:
        self.mode = mode
        self._username = username
        self._password = password
        self._realm = realm
        self._secret = secrets.token_bytes(32)
        self._opaque = secrets.token_hex(16)

    def _nonce(self, issued: int | None = None) -> str:
        stamp = str(int(time.time()) if issued is None else issued)
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return base64.b64encode(f"{stamp}:{mac}".encode()).decode()

    def _nonce_state(self, nonce: str) -> Literal["fresh", "stale", "forged"]:
        try:
            stamp, _, mac = base64.b64decode(nonce, validate=True).decode().partition(":")
            issued = int(stamp)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return "forged"
        if not hmac.compare_digest(self._nonce(issued), nonce) or not mac:
            return "forged"
        return "fresh" if 0 <= time.time() - issued <= NONCE_LIFETIME else "stale"

    def challenge(self, *, stale: bool = False) -> str:
        if self.mode == "basic":
            return f'Basic realm="{self._realm}"'
        flag = "true" if stale else "false"
        return (
            f'Digest realm="{self._realm}", qop="auth", algorithm=MD5, '
            f'nonce="{self._nonce()}", opaque="{self._opaque}", stale={flag}'
        )

    def check(self, method: str, uri: str, authorization: str | None) -> Verdict:
        """Whether a request with this Authorization header may proceed."""
        if self.mode == "none":
            return "ok"
        if not authorization or len(authorization) > _MAX_HEADER:
            return "denied"
        scheme, _, rest = authorization.strip().partition(" ")
        if self.mode == "basic":
            return "ok" if scheme.lower() == "basic" and self._check_basic(rest) else "denied"
        if scheme.lower() != "digest":
            return "denied"
        return self._check_digest(method, uri, parse_auth_params(rest))

    def _check_basic(self, token: str) -> bool:
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.encode(), self._username.encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        return bool(sep) and user_ok and password_ok

    def _check_digest(self, method: str, uri: str, p: dict[str, str]) -> Verdict:
        required = ("username", "realm", "nonce", "uri", "response")
        if any(k not in p for k in required) or p.get("algorithm", "MD5").upper() != "MD5":
            return "denied"
        if p["realm"] != self._realm or p["uri"] != uri:
            return "denied"
        ha1 = _md5(f"{p['username']}:{self._realm}:{self._password}")
        ha2 = _md5(f"{method}:{p['uri']}")
        qop = p.get("qop")
        if qop is None:
            expected = _md5(f"{ha1}:{p['nonce']}:{ha2}")
        elif qop == "auth" and "nc" in p and "cnonce" in p:
            expected = _md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        else:
            return "denied"
        user_ok = hmac.compare_digest(p["username"].encode(), self._username.encode())
        if not (user_ok and hmac.compare_digest(p["response"].encode(), expected.encode())):
            return "denied"
        state = self._nonce_state(p["nonce"])
        if state == "forged":
            return "denied"
        return "ok" if state == "fresh" else "stale"
