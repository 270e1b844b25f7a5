"""RTSP authentication as cameras do it: HTTP Digest (RFC 2617/7616, MD5), or Basic, or none.

The nonce is stateless (issue time + HMAC under a per-server secret), so any number of clients
cost nothing; it expires after `nonce_lifetime` seconds, and a correct answer computed with an
expired nonce gets `stale=TRUE`, telling the client to retry with the new nonce rather than ask
the user for a password again. Responses computed the RFC 2069 way (no qop) and the RFC 2617
way (qop=auth) are both accepted, because RTSP clients use both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Literal

from .protocol import request_target

AuthMode = Literal["digest", "basic", "none"]

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(,|$)')
_NC = re.compile(r"[0-9a-fA-F]{8}")
_NONCE = re.compile(r"[0-9a-f]{32}")
_MAX_HEADER = 4096


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def parse_auth_params(text: str) -> dict[str, str]:
    """`a=b, c="d"` -> {"a": "b", "c": "d"}; ValueError on anything malformed or repeated."""
    params: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PARAM.match(text, pos)
        if match is None:
            raise ValueError(f"malformed auth parameter at {pos}")
        key, raw = match.group(1).lower(), match.group(2)
        if key in params:
            raise ValueError(f"repeated auth parameter {key}")
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key] = raw
        pos = match.end()
        if match.group(3) == "" and pos < len(text):
            raise ValueError("trailing garbage after auth parameters")
    return params


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RtspAuth:
    """Decides whether a request's Authorization header lets it through."""

    def __init__(
        self,
        mode: AuthMode,
        *,
        realm: str,
        username: str,
        password: str,
        nonce_lifetime: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in ("digest", "basic", "none"):
            raise ValueError(f"auth must be 'digest', 'basic' or 'none', not {mode!r}")
        for name, value in (("realm", realm), ("username", username)):
            if not value or any(c < " " or c == "\x7f" for c in value):
                raise ValueError(f"{name} must be a non-empty printable string")
        if ":" in username:
            raise ValueError("username cannot contain ':'")
        if any(c in "\r\n" for c in password):
            raise ValueError("password cannot contain a line break")
        self.mode = mode
        self.realm = realm
        self._username = username
        self._password = password
        self._ha1 = _md5(f"{username}:{realm}:{password}")
        self._secret = secrets.token_bytes(32)
        self._lifetime = nonce_lifetime
        self._clock = clock

    # -- nonces ---------------------------------------------------------------------------

    def new_nonce(self) -> str:
        issued = int(self._clock() * 1000) & 0xFFFFFFFFFFFFFFFF
        return f"{issued:016x}{self._mac(issued)}"

    def _mac(self, issued: int) -> str:
        return hmac.new(self._secret, issued.to_bytes(8, "big"), hashlib.sha256).hexdigest()[:16]

    def _nonce_state(self, nonce: str) -> Literal["fresh", "stale", "forged"]:
        if not _NONCE.fullmatch(nonce):
            return "forged"
        issued = int(nonce[:16], 16)
        if not hmac.compare_digest(nonce[16:], self._mac(issued)):
            return "forged"
        age = self._clock() - issued / 1000
        return "fresh" if -1.0 <= age <= self._lifetime else "stale"

    # -- checking -------------------------------------------------------------------------

    def challenge(self, *, stale: bool = False) -> str:
        """The WWW-Authenticate value of a 401."""
        if self.mode == "basic":
            return f"Basic realm={_quote(self.realm)}"
        value = f"Digest realm={_quote(self.realm)}, nonce={_quote(self.new_nonce())}"
        return value + (", stale=TRUE" if stale else ", stale=FALSE")

    def check(self, method: str, uri: str, authorization: str | None) -> str | None:
        """None if the request may proceed, else the WWW-Authenticate value for a 401."""
        if self.mode == "none":
            return None
        if authorization is None or len(authorization) > _MAX_HEADER:
            return self.challenge()
        scheme, _, rest = authorization.strip().partition(" ")
        if self.mode == "basic":
            ok = scheme.lower() == "basic" and self._basic_ok(rest.strip())
            return None if ok else self.challenge()
        if scheme.lower() != "digest":
            return self.challenge()
        try:
            params = parse_auth_params(rest)
        except ValueError:
            return self.challenge()
        verdict = self._digest_verdict(method, uri, params)
        if verdict == "ok":
            return None
        return self.challenge(stale=verdict == "stale")

    def _basic_ok(self, token: str) -> bool:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(":")
        return (
            bool(colon)
            & hmac.compare_digest(user.encode(), self._username.encode())
            & hmac.compare_digest(password.encode(), self._password.encode())
        )

    def _digest_verdict(
        self, method: str, uri: str, params: dict[str, str]
    ) -> Literal["ok", "stale", "denied"]:
        username, realm = params.get("username"), params.get("realm")
        nonce, digest_uri = params.get("nonce"), params.get("uri")
        response = params.get("response", "").lower()
        if username is None or realm is None or nonce is None or digest_uri is None:
            return "denied"
        if params.get("algorithm", "MD5").upper() != "MD5":
            return "denied"
        if not hmac.compare_digest(username.encode(), self._username.encode()):
            return "denied"
        if realm != self.realm or not _same_target(digest_uri, uri):
            return "denied"
        state = self._nonce_state(nonce)
        if state == "forged":
            return "denied"
        ha2 = _md5(f"{method}:{digest_uri}")
        qop = params.get("qop")
        if qop is None:
            expected = _md5(f"{self._ha1}:{nonce}:{ha2}")
        elif qop == "auth":
            nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
            if not _NC.fullmatch(nc) or not cnonce:
                return "denied"
            expected = _md5(f"{self._ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        else:
            return "denied"
        if not hmac.compare_digest(response.encode(), expected.encode()):
            return "denied"
        return "ok" if state == "fresh" else "stale"


def _same_target(digest_uri: str, request_uri: str) -> bool:
    """The digest's uri must name what the request line names (absolute or path form)."""
    if digest_uri == request_uri:
        return True
    a, b = request_target(digest_uri), request_target(request_uri)
    return a is not None and a == b
