"""The owner's page refuses what is not the signed-in owner acting from the page: a real
aiohttp client over a real socket, on a running request service."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.config import AgentConfig
from agent.ledger import Kind, read_entries
from agent.owner_page.auth import local_path
from agent.owner_page.password import LoginLimiter
from tests.support.immutable import make_immutable, mutable_again
from tests.support.link_service import Site, running_service, site_config
from tests.support.owner_page import BY_PAGE, OWNER_PASSWORD, owner_jar, running_page
from tests.support.rtcc import jti_of, make_request


def paused(site: Site) -> bool:
    """Read afresh each time (a property mypy would otherwise take as fixed)."""
    return site.service.policy.paused


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return site_config(tmp_path / "state")


async def test_no_session_is_sent_to_sign_in(config: AgentConfig) -> None:
    async with (
        running_service(config) as site,
        running_page(site) as page,
        aiohttp.ClientSession() as http,
    ):
        for path in ("/", "/requests", "/pause"):
            async with http.get(page.url + path, allow_redirects=False) as response:
                assert response.status == 303
                assert response.headers["Location"] == f"/login?next={quote(path)}"
        async with http.post(
            page.url + "/pause", data={"duration": "1h"}, allow_redirects=False
        ) as response:
            assert response.status == 403
        assert not paused(site)


async def test_session_cookie_and_headers(config: AgentConfig) -> None:
    async with (
        running_service(config) as site,
        running_page(site) as page,
        aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
    ):
        token = await page.csrf_of(http, "/login")
        async with http.post(
            page.url + "/login",
            data={"csrf": token, "password": OWNER_PASSWORD},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            # Secure even on the machine's own plain-HTTP page (a secure origin to browsers).
            assert page.url.startswith("http://") and "Secure" in cookie
        async with http.get(page.url + "/") as response:
            assert response.status == 200
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert "Sharing is on." in await response.text()


async def test_missing_or_forged_csrf_is_refused(config: AgentConfig) -> None:
    async with (
        running_service(config) as site,
        running_page(site) as page,
        page.signed_in() as http,
    ):
        for form in ({"duration": "1h"}, {"duration": "1h", "csrf": "forged-token"}):
            async with http.post(
                page.url + "/pause", data=form, headers={"Origin": page.url}
            ) as response:
                assert response.status == 403
                assert "out of date" in await response.text()
        assert not paused(site)
        kinds = [entry.kind for entry in read_entries(config.state_dir / "ledger")]
        assert Kind.PAUSED not in kinds


async def test_cross_origin_post_is_refused(config: AgentConfig) -> None:
    async with (
        running_service(config) as site,
        running_page(site) as page,
        page.signed_in() as http,
    ):
        token = await page.csrf_of(http, "/pause")
        async with http.post(
            page.url + "/pause",
            data={"duration": "1h", "csrf": token},
            headers={"Origin": "http://evil.example"},
        ) as response:
            assert response.status == 403
            assert "another web site" in await response.text()
        assert not paused(site)
        # The same form from the page itself works, and the ledger says who did it.
        async with http.post(
            page.url + "/pause",
            data={"duration": "1h", "csrf": token},
            headers={"Origin": page.url},
        ) as response:
            assert response.status == 200
            assert "Sharing is paused until" in await response.text()
        assert paused(site)
        entries = [e for e in read_entries(config.state_dir / "ledger") if e.kind == Kind.PAUSED]
        assert entries[-1].data["by"] == BY_PAGE


async def test_wrong_passwords_are_rate_limited(config: AgentConfig) -> None:
    async with (
        running_service(config) as site,
        running_page(site) as page,
        aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
    ):
        for _ in range(5):
            assert await page.sign_in(http, "not the password") == 403
        # Past the limit even the right password is refused, unchecked.
        assert await page.sign_in(http, OWNER_PASSWORD) == 403
        token = await page.csrf_of(http, "/login")
        async with http.post(
            page.url + "/login", data={"csrf": token, "password": OWNER_PASSWORD}
        ) as response:
            assert "Too many wrong passwords" in await response.text()


async def test_login_form_needs_its_own_token(config: AgentConfig) -> None:
    async with (
        running_service(config) as site,
        running_page(site) as page,
        aiohttp.ClientSession() as http,
        http.post(
            page.url + "/login", data={"password": OWNER_PASSWORD}, allow_redirects=False
        ) as response,
    ):
        assert response.status == 403


async def test_logout_ends_the_session(config: AgentConfig) -> None:
    async with (
        running_service(config) as site,
        running_page(site) as page,
        page.signed_in() as http,
    ):
        token = await page.csrf_of(http, "/")
        async with http.post(
            page.url + "/logout", data={"csrf": token}, allow_redirects=False
        ) as response:
            assert response.status == 303
        async with http.get(page.url + "/", allow_redirects=False) as response:
            assert response.status == 303


async def test_pending_request_approved_through_the_page(config: AgentConfig) -> None:
    async with running_service(config) as site, running_page(site) as page:
        payload = make_request("clip", camera="parking-lot")
        jti = jti_of(payload)
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
        async with page.signed_in() as http:
            async with http.get(page.url + "/requests") as response:
                text = await response.text()
            assert "2026-000123" in text and "burglary nearby" in text
            token = await page.csrf_of(http, "/requests")
            async with http.post(
                page.url + f"/requests/{jti}/approve",
                data={"csrf": token},
                headers={"Origin": page.url},
            ) as response:
                assert "Approved" in await response.text()
        await site.sink.wait_for(jti, "approved")
        approval = [e for e in read_entries(config.state_dir / "ledger") if e.kind == Kind.APPROVAL]
        assert approval[-1].data["by"] == BY_PAGE


def test_limiter_forgets_after_its_window() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_address=2, total=3, window=60, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.blocked("a") and not limiter.blocked("b")
    limiter.failed("b")
    assert limiter.blocked("b"), "the total limit holds for every address"
    now[0] = 61
    assert not limiter.blocked("a")


async def test_sharing_changed_through_the_page(config: AgentConfig) -> None:
    async with running_service(config) as site, running_page(site) as page:
        async with page.signed_in() as http:
            async with http.get(page.url + "/cameras") as response:
                text = await response.text()
            assert "Parking lot" in text and 'value="registry" checked' in text
            token = await page.csrf_of(http, "/cameras")
            async with http.post(
                page.url + "/cameras/parking-lot/sharing",
                data={"csrf": token, "mode": "integrated"},
                headers={"Origin": page.url},
            ) as response:
                assert "Parking lot is now integrated." in await response.text()
            async with http.post(
                page.url + "/cameras/parking-lot/sharing",
                data={"csrf": token, "mode": "everything"},
                headers={"Origin": page.url},
            ) as response:
                assert "Choose private, registry or integrated." in await response.text()
            # No footage recorded: no picture, said plainly (no broken image on the page).
            async with http.get(page.url + "/cameras") as response:
                text = await response.text()
            assert "picture.jpg" not in text
            # Offline (the first camera): nothing lately; recording (the others): not yet.
            front = text[text.index('id="camera-front-door"') :]
            assert "No picture: nothing was recorded" in front[: front.index("</section>")]
            parking = text[text.index('id="camera-parking-lot"') :]
            assert "No picture yet" in parking[: parking.index("</section>")]
            async with http.get(page.url + "/cameras/parking-lot/picture.jpg") as response:
                assert response.status == 404
            async with http.get(page.url + "/cameras/..%2Fetc/picture.jpg") as response:
                assert response.status == 404
        sharing = {s.camera: s for s in site.owner.sharing()}
        assert sharing["parking-lot"].mode.value == "integrated"
        changed = [
            e for e in read_entries(config.state_dir / "ledger") if e.kind == Kind.SHARING_CHANGED
        ]
        assert changed[-1].data["by"] == BY_PAGE


async def test_a_choice_that_cannot_be_recorded_is_refused_in_plain_words(
    config: AgentConfig,
) -> None:
    """The page's process cannot write the owner directory (here: it is immutable, even to
    root): the page refuses the change with a sentence, and nothing is paused."""
    async with running_service(config) as site, running_page(site) as page:
        async with page.signed_in() as http:
            token = await page.csrf_of(http, "/pause")
            with mutable_again(config.owner_dir):
                make_immutable(config.owner_dir)
                async with http.post(
                    page.url + "/pause",
                    data={"duration": "1h", "csrf": token},
                    headers={"Origin": page.url},
                ) as response:
                    text = await response.text()
        assert response.status == 200 and "may not act as the owner" in text, text
        assert "Traceback" not in text
        assert not paused(site)


async def test_a_notification_link_leads_to_its_request_after_signing_in(
    config: AgentConfig,
) -> None:
    """The link an e-mail or the webhook gives (`/requests/ID`): signed out, through the sign-in
    page and back to that request's card; never to another site, whatever `next` says."""
    async with (
        running_service(config) as site,
        running_page(site) as page,
        aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
    ):
        payload = make_request("clip", camera="parking-lot")
        jti = jti_of(payload)
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
        link = f"{page.url}/requests/{jti}"
        async with http.get(link, allow_redirects=False) as response:
            assert response.status == 303
            login = response.headers["Location"]
        assert login == f"/login?next={quote('/requests/' + jti)}"
        token = await page.csrf_of(http, login)
        form = {"csrf": token, "password": OWNER_PASSWORD, "next": f"/requests/{jti}"}
        async with http.post(
            page.url + "/login", data=form, headers={"Origin": page.url}, allow_redirects=False
        ) as response:
            assert response.headers["Location"] == f"/requests/{jti}"
        async with http.get(link, allow_redirects=False) as response:
            assert response.headers["Location"] == f"/requests#request-{jti}"
        async with http.get(page.url + "/requests") as response:
            assert f'id="request-{jti}"' in await response.text()
        async with http.get(page.url + "/requests/..%2F..", allow_redirects=False) as response:
            assert response.status == 404


@given(st.text(max_size=80))
@example("//evil.example/x")
@example("/\\evil.example")
@example("https://evil.example/")
@example("/requests/abcd?x=1")
def test_after_signing_in_only_this_page(text: str) -> None:
    after = local_path(text)
    assert after == "/" or (after == text and after.startswith("/"))
    assert not after.startswith("//") and "\\" not in after
