"""Signing in and out, and the guard every page handler goes through.

- The session cookie (`rtcc_session`): HttpOnly, SameSite=Strict, Secure over HTTPS, the token
  random; the database keeps its SHA-256 (`hub.analysts`).
- CSRF: every POST carries the session's token (a hidden `csrf` field, or the `X-CSRF-Token`
  header from the pages' scripts) and, when the browser sends one, an `Origin` of this server.
  The sign-in form, before any session exists, uses a double-submit cookie.
- Sign-in is rate-limited per account and per address (`hub.analysts`); every sign-in, refused
  or not, is in the audit log.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from hub import analysts, audit
from hub.analysts import Role, role_at_least
from hub.audit import Actor
from hub.console.app import CONSOLE_PAGE, console_of, refusal, render
from hub.db import Analyst, LoginSession

COOKIE = "rtcc_session"
LOGIN_CSRF_COOKIE = "rtcc_login_csrf"


@dataclass(frozen=True)
class Who:
    """The signed-in analyst a handler acts for."""

    analyst: Analyst
    session: LoginSession
    ip: str

    @property
    def actor(self) -> Actor:
        return Actor(self.analyst.username, self.ip)

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def can(self, role: Role) -> bool:
        return role_at_least(self.analyst.role, role)


WHO = web.RequestKey("rtcc_console_who", Who)

Handler = Callable[[web.Request, Who], Awaitable[web.StreamResponse]]


def client_ip(request: web.Request) -> str:
    return (request.remote or "")[:64]


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    presented = request.headers.get("X-CSRF-Token")
    if presented is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get("csrf")
        presented = value if isinstance(value, str) else None
    return (
        presented is not None
        and hmac.compare_digest(presented.encode(), expected.encode())
        and _same_origin(request)
    )


def page(role: Role = "analyst") -> Callable[[Handler], Callable[[web.Request], Awaitable[Any]]]:
    """Wrap a handler: signed in, with at least `role`, and a valid CSRF token on a POST."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            request[CONSOLE_PAGE] = True
            console = console_of(request)
            found = await analysts.session_for(console.hub.db, request.cookies.get(COOKIE))
            if found is None:
                if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                    target = request.rel_url.path_qs
                    raise web.HTTPSeeOther(f"/login?next={quote(target, safe='')}")
                raise web.HTTPUnauthorized(text="sign in first\n")
            session, analyst = found
            who = Who(analyst, session, client_ip(request))
            request[WHO] = who
            if request.method == "POST" and not await _csrf_ok(request, session.csrf):
                return refusal(
                    request,
                    "Form expired",
                    "This form was opened in an earlier session or on another "
                    "site, so it was not sent. Go back, reload the page and try again.",
                    status=403,
                )
            if not who.can(role):
                return refusal(
                    request,
                    "Not for your role",
                    f"This page is for a {role} or above; you are signed in as "
                    f"{analyst.role}. Ask a supervisor if you need it.",
                    status=403,
                )
            return await handler(request, who)

        return guarded

    return wrap


def _safe_next(target: str | None) -> str:
    """Only a path on this server (never //host or a scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_form(request: web.Request) -> web.StreamResponse:
    request[CONSOLE_PAGE] = True
    return _login_page(request, message=None)


def _login_page(request: web.Request, *, message: str | None, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {
            "login_csrf": token,
            "message": message,
            "next": _safe_next(request.query.get("next")),
            "username": "",
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=console_of(request).secure_cookies,
        max_age=3600,
        path="/login",
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    request[CONSOLE_PAGE] = True
    console = console_of(request)
    form = await request.post()
    presented = str(form.get("csrf", ""))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        return _login_page(
            request,
            message="The sign-in form had expired. Please sign in again.",
            status=403,
        )
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))[:1024]
    ip = client_ip(request)
    outcome = await analysts.sign_in(console.hub.db, username, password, ip=ip)
    if outcome.token is None or outcome.analyst is None:
        await audit.record(
            console.hub.db,
            Actor(username.lower() or "-", ip),
            "sign_in_refused",
            detail="locked out (too many failures)" if outcome.locked else "wrong name or password",
            outcome="refused",
        )
        response = _login_page(
            request, message=outcome.refused, status=429 if outcome.locked else 401
        )
        return response
    await audit.record(console.hub.db, Actor(outcome.analyst.username, ip), "sign_in")
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", "/"))))
    response.set_cookie(
        COOKIE,
        outcome.token,
        httponly=True,
        samesite="Strict",
        secure=console.secure_cookies,
        path="/",
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


@page()
async def logout(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    await analysts.sign_out(console.hub.db, request.cookies.get(COOKIE))
    await audit.record(console.hub.db, who.actor, "sign_out")
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


def routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
