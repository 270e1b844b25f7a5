"""Signing in to the console: sessions, CSRF, roles, the rate limit, the audit of it all
(on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest

from hub import audit
from hub.analysts import MAX_FAILURES_PER_ACCOUNT
from tests.hub.conftest import HubRunner
from tests.support.console import PASSWORD, RunningConsole, running_console


async def _client(hub: RunningConsole) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=hub.client_ssl()),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def test_pages_need_a_session(hub_cli: HubRunner, db_url: str) -> None:
    async with running_console(hub_cli, db_url) as hub, await _client(hub) as http:
        async with http.get(
            hub.url + "/fleet", headers={"Accept": "text/html"}, allow_redirects=False
        ) as response:
            assert response.status == 303
            location = response.headers["Location"]
            assert location.split("?")[0] == "/login"
            assert parse_qs(location.split("?")[1]) == {"next": ["/fleet"]}
        async with http.get(hub.url + "/api/cameras") as response:
            assert response.status == 401


async def test_sign_in_sets_a_safe_cookie_and_is_audited(hub_cli: HubRunner, db_url: str) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.add_analyst("ana")
        async with await _client(hub) as http:
            response = await hub.sign_in(http, "ana", PASSWORD)
            assert response.status == 200
            assert str(response.url).endswith("/fleet")
            cookie = response.history[0].cookies["rtcc_session"]
            assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
            page = await response.text()
            assert "Fleet health" in page and "ana" in page
            assert response.headers["X-Frame-Options"] == "DENY"
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        entries = await audit.entries(hub.console.hub.db, analyst="ana")
        assert [e.action for e in entries][-1] == "sign_in"


async def test_wrong_password_then_lockout(hub_cli: HubRunner, db_url: str) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.add_analyst("ana")
        async with await _client(hub) as http:
            for _ in range(MAX_FAILURES_PER_ACCOUNT):
                response = await hub.sign_in(http, "ana", "not the password")
                assert response.status == 401
                assert "do not match an active account" in await response.text()
            # Now even the right password is refused for a while, and the page says why.
            response = await hub.sign_in(http, "ana", PASSWORD)
            assert response.status == 429
            assert "Too many failed sign-ins" in await response.text()
            # The same answer for a name that does not exist: nothing tells them apart.
            response = await hub.sign_in(http, "nobody", "whatever it is")
            assert response.status == 401
        refused = await audit.entries(hub.console.hub.db, analyst="ana")
        assert sum(e.action == "sign_in_refused" for e in refused) == MAX_FAILURES_PER_ACCOUNT + 1


async def test_post_without_csrf_is_refused(hub_cli: HubRunner, db_url: str) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.add_analyst("ana")
        async with hub.signed_in("ana") as http:
            token = http.headers.pop("X-CSRF-Token")
            async with http.post(hub.url + "/logout", data={"csrf": "forged"}) as response:
                assert response.status == 403
                assert "Form expired" in await response.text()
            # From another origin, even with the token: refused.
            async with http.post(
                hub.url + "/logout",
                data={"csrf": token},
                headers={"Origin": "https://evil.example"},
            ) as response:
                assert response.status == 403
            async with http.post(
                hub.url + "/logout", data={"csrf": token}, allow_redirects=False
            ) as response:
                assert response.status == 303
            # Signed out: the old cookie opens nothing.
            async with http.get(hub.url + "/api/cameras") as response:
                assert response.status == 401


async def test_roles(hub_cli: HubRunner, db_url: str) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.add_analyst("ana")
        await hub.add_analyst("sam", role="supervisor")
        async with hub.signed_in("ana") as http, http.get(hub.url + "/audit") as response:
            assert response.status == 403
            assert "for a supervisor or above" in await response.text()
        async with hub.signed_in("sam") as http:
            async with http.get(hub.url + "/audit") as response:
                assert response.status == 200
                page = await response.text()
                assert "signed in" in page and "ana" in page
            async with http.get(hub.url + "/audit.csv") as response:
                assert response.status == 200
                text = await response.text()
                assert text.splitlines()[0].startswith("time (UTC),analyst,action")


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil"])
async def test_no_open_redirect(hub_cli: HubRunner, tmp_path: Path, target: str) -> None:
    async with running_console(hub_cli, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as hub:
        await hub.add_analyst("ana")
        async with await _client(hub) as http:
            async with http.get(hub.url + "/login") as form:
                page = await form.text()
            token = page.split('name="csrf" value="')[1].split('"')[0]
            async with http.post(
                hub.url + "/login",
                data={"csrf": token, "username": "ana", "password": PASSWORD, "next": target},
                allow_redirects=False,
            ) as response:
                assert response.status == 303
                assert response.headers["Location"] == "/"
