"""Signing in and out of the owner's page, and the guard every page goes through.

- The session cookie (`rtcc_owner`): random, HttpOnly, SameSite=Strict, Secure over HTTPS;
  sessions live in the page process's memory (restarting the page signs the owner out) and
  end after `SESSION_HOURS`.
- CSRF: every POST carries the session's token (a hidden `csrf` field); the sign-in form, before
  any session exists, uses a double-submit cookie. A POST whose `Origin` is another site is
  refused whatever it carries.
- Wrong passwords are rate-limited (`agent.owner_page.password.LoginLimiter`).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from agent.log import get_logger
from agent.owner_page import password

log = get_logger(__name__)

COOKIE = "rtcc_owner"
LOGIN_CSRF_COOKIE = "rtcc_owner_login"
SESSION_HOURS = 12


@dataclass
class Session:
    csrf: str
    expires: float


class Sessions:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._by_token: dict[str, Session] = {}

    def new(self) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(
            csrf=secrets.token_urlsafe(32), expires=self.clock() + SESSION_HOURS * 3600
        )
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is not None and session.expires <= self.clock():
            del self._by_token[token]
            return None
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)


class Gate:
    """What the guard needs: the sessions, the password's place, the limiter, cookie security."""

    def __init__(self, owner_dir: Path, *, secure: bool) -> None:
        self.owner_dir = owner_dir
        self.secure = secure
        self.sessions = Sessions()
        self.limiter = password.LoginLimiter()

    def set_cookie(self, response: web.StreamResponse, name: str, value: str) -> None:
        response.set_cookie(
            name, value, httponly=True, samesite="Strict", secure=self.secure, path="/"
        )


GATE = web.AppKey("rtcc_owner_gate", Gate)
SESSION = web.RequestKey("rtcc_owner_session", Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def gate_of(request: web.Request) -> Gate:
    return request.app[GATE]


def same_origin(request: web.Request) -> bool:
    """A POST from this page (or from a client that sends no Origin, which is no browser's
    cross-site form) and never from another site."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == request.host


async def _form_csrf(request: web.Request) -> str | None:
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    value = (await request.post()).get("csrf")
    return value if isinstance(value, str) else None


def _matches(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def local_path(text: str | None) -> str:
    """`text` when it is a path on this page (where to go after signing in), else "/": never
    another site (`//evil.example`, `https://…`, `/\\evil`) nor anything odd."""
    if (
        not text
        or not text.startswith("/")
        or text.startswith("//")
        or "\\" in text
        or len(text) > 300
        or not text.isprintable()
    ):
        return "/"
    return text


def signed_in(handler: Handler) -> Handler:
    """No session: to the sign-in page (GET) or 403 (POST). A POST needs this site's Origin
    and the session's CSRF token."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        gate = gate_of(request)
        session = gate.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            if request.method == "GET":
                # Back here once signed in (a notification's link to one request, say).
                raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path_qs})}")
            raise web.HTTPForbidden(text="You are not signed in. Open the page and sign in.\n")
        if request.method == "POST":
            if not same_origin(request):
                raise web.HTTPForbidden(text="Refused: this came from another web site.\n")
            if not _matches(await _form_csrf(request), session.csrf):
                raise web.HTTPForbidden(
                    text="Refused: the form was out of date. Go back, reload the page, try again.\n"
                )
        request[SESSION] = session
        return await handler(request)

    return guarded


async def check_login(request: web.Request, typed: str) -> str | None:
    """None if `typed` is the owner's password; otherwise why the sign-in is refused."""
    gate = gate_of(request)
    address = request.remote or "unknown"
    if gate.limiter.blocked(address):
        minutes = gate.limiter.wait_minutes()
        log.warning("owner_page_login_limited", address=address)
        return f"Too many wrong passwords. Try again in {minutes} minutes."
    try:
        # Argon2 is slow on purpose: off the event loop, so recording and requests go on.
        good = await asyncio.get_running_loop().run_in_executor(
            None, password.verify, gate.owner_dir, typed
        )
    except password.PasswordError as exc:
        return str(exc)
    if not good:
        gate.limiter.failed(address)
        log.warning("owner_page_login_refused", address=address)
        return "That password is not right."
    log.info("owner_page_login", address=address)
    return None


def login_csrf_ok(request: web.Request, presented: str | None) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    return expected is not None and same_origin(request) and _matches(presented, expected)
