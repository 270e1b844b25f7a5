"""The upload receiver of `rtcc-hub serve` over real HTTPS: signed URLs, limits, broken bodies."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from hub.ca import site_ca
from hub.presign import (
    PresignError,
    UploadSigner,
    case_directory,
    load_upload_key,
    mint_upload,
    upload_path,
)
from hub.receiver import add_routes
from hub.server import hub_server_certificate, server_tls_context, update_serve_settings
from hub.state import HubHome
from tests.hub.conftest import HubRunner
from tests.support.hub_receiver import RunningReceiver, running_receiver

CASE = "2026-000123"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with running_receiver(tmp_path / "hub") as running:
        yield running


def _tls(hub: RunningReceiver) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(hub.ca_file))


async def _put(
    hub: RunningReceiver, url: str, body: bytes, **headers: str
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.put(URL(url, encoded=True), data=body, headers=headers, ssl=_tls(hub)) as reply,
    ):
        data = await reply.json(content_type=None)
        return reply.status, data


def _leftovers(hub: RunningReceiver) -> list[Path]:
    root = hub.home.root / "cases"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_a_signed_put_is_stored_with_its_hash(hub: RunningReceiver) -> None:
    jti = str(uuid.uuid4())
    body = bytes(range(256)) * 4000
    code, answer = await _put(hub, hub.mint(CASE, jti, "clip.mp4"), body)
    assert code == 200
    assert answer == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    stored = hub.stored(CASE, jti, "clip.mp4")
    assert stored.read_bytes() == body
    check = await asyncio.to_thread(
        subprocess.run,
        ["sha256sum", "-c", "clip.mp4.sha256"],
        cwd=stored.parent,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(p.name for p in stored.parent.iterdir()) == ["clip.mp4", "clip.mp4.sha256"]


async def test_a_second_upload_replaces_the_first(hub: RunningReceiver) -> None:
    jti = str(uuid.uuid4())
    url = hub.mint(CASE, jti, "manifest.jws")
    assert (await _put(hub, url, b"first"))[0] == 200
    assert (await _put(hub, url, b"second"))[0] == 200
    assert hub.stored(CASE, jti, "manifest.jws").read_bytes() == b"second"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda u: u.replace("sig=", "sig=0"),
        lambda u: u.split("&sig=")[0],
        lambda u: u.split("?")[0],
        lambda u: u.replace("clip.mp4", "clip.mp5"),
        lambda u: u.replace(CASE, "2026-000124"),
        lambda u: u.replace("expires=", "expires=9"),
    ],
    ids=["bad-sig", "no-sig", "unsigned", "other-name", "other-case", "other-expiry"],
)
async def test_a_url_that_does_not_grant_the_upload_is_403(
    hub: RunningReceiver, spoil: Callable[[str], str]
) -> None:
    jti = str(uuid.uuid4())
    url = spoil(hub.mint(CASE, jti, "clip.mp4"))
    code, answer = await _put(hub, url, b"evidence")
    assert code == 403 and answer["error"] == "forbidden"
    assert _leftovers(hub) == []


async def test_an_expired_url_is_403(hub: RunningReceiver) -> None:
    jti = str(uuid.uuid4())
    code, answer = await _put(hub, hub.mint(CASE, jti, "clip.mp4", ttl=-1), b"late")
    assert code == 403 and "expired" in str(answer["message"])
    assert _leftovers(hub) == []


async def test_a_url_for_another_hub_key_is_403(hub: RunningReceiver) -> None:
    other = UploadSigner(b"k" * 32)
    path = upload_path(CASE, str(uuid.uuid4()), "clip.mp4")
    code, _ = await _put(hub, other.url(hub.url, path, expires=int(time.time()) + 60), b"x")
    assert code == 403


@pytest.mark.parametrize(
    "case", ["..", ".hidden", "a b", "a%2Fb", "x" * 129, "%2e%2e", "caf%C3%A9"]
)
async def test_unsafe_path_segments_are_refused(hub: RunningReceiver, case: str) -> None:
    url = f"{hub.url}/upload/{case}/{uuid.uuid4()}/clip.mp4?expires=9999999999&sig=00"
    async with (
        aiohttp.ClientSession() as session,
        session.put(URL(url, encoded=True), data=b"x", ssl=_tls(hub)) as reply,
    ):
        assert reply.status in (400, 404)
    assert _leftovers(hub) == []


async def test_content_length_is_required(hub: RunningReceiver) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"streamed without a length"

    url = hub.mint(CASE, str(uuid.uuid4()), "clip.mp4")
    async with (
        aiohttp.ClientSession() as session,
        session.put(URL(url, encoded=True), data=chunks(), ssl=_tls(hub)) as reply,
    ):
        assert reply.status == 411
    assert _leftovers(hub) == []


def _send_half_and_hang_up(port: int, target: str, context: ssl.SSLContext) -> None:
    raw = socket.create_connection(("127.0.0.1", port))
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        head = f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
        tls.sendall(head.encode() + b"x" * 300_000)
        time.sleep(0.3)


async def test_a_body_that_breaks_off_leaves_nothing(hub: RunningReceiver) -> None:
    jti = str(uuid.uuid4())
    url = urlsplit(hub.mint(CASE, jti, "clip.mp4"))
    assert url.port is not None
    # In a thread: the server runs on this event loop and must read meanwhile.
    await asyncio.to_thread(_send_half_and_hang_up, url.port, f"{url.path}?{url.query}", _tls(hub))
    directory = case_directory(hub.home, CASE, jti)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(directory.glob(".*")):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert _leftovers(hub) == []


async def test_size_limit(tmp_path: Path) -> None:
    home = HubHome(tmp_path / "hub")
    home.root.mkdir()
    app = web.Application()
    add_routes(app, home, max_bytes=1000)
    async with running_app(app, home) as (base, tls):
        signer = UploadSigner(load_upload_key(home))
        jti = str(uuid.uuid4())
        url = signer.upload_url(base, CASE, jti, "clip.mp4", expires=int(time.time()) + 60)
        async with aiohttp.ClientSession() as session:
            async with session.put(URL(url, encoded=True), data=b"x" * 1001, ssl=tls) as reply:
                assert reply.status == 413
            async with session.put(URL(url, encoded=True), data=b"x" * 1000, ssl=tls) as reply:
                assert reply.status == 200
    assert (case_directory(home, CASE, jti) / "clip.mp4").stat().st_size == 1000


@contextlib.asynccontextmanager
async def running_app(
    app: web.Application, home: HubHome
) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """An aiohttp app on HTTPS with the hub's own server certificate."""
    cert, key = hub_server_certificate(home, ["127.0.0.1"])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls_context(cert, key))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = ssl.create_default_context(cafile=str(site_ca(home).cert_path))
        yield f"https://127.0.0.1:{port}", client
    finally:
        await runner.cleanup()


def test_signer_checks(tmp_path: Path) -> None:
    signer = UploadSigner(load_upload_key(HubHome(tmp_path)))
    path = upload_path(CASE, str(uuid.uuid4()), "clip.mp4")
    good = signer.signature("PUT", path, 2000)
    signer.check("PUT", path, "2000", good, now=1999)
    for method, expires, sig, now in [
        ("GET", "2000", good, 1999),
        ("PUT", "2000", good, 2000),
        ("PUT", "2001", good, 1999),
        ("PUT", "2000", good.upper(), 1999),
        ("PUT", "2e3", good, 1999),
        ("PUT", None, good, 1999),
        ("PUT", "2000", None, 1999),
        ("PUT", "2000", "é" * 64, 1999),
    ]:
        with pytest.raises(PresignError):
            signer.check(method, path, expires, sig, now=now)


def test_upload_key_is_private_and_kept(tmp_path: Path) -> None:
    home = HubHome(tmp_path)
    first = load_upload_key(home)
    assert load_upload_key(home) == first and len(first) == 32
    assert (tmp_path / "upload.key").stat().st_mode & 0o777 == 0o600


def test_minted_urls_name_the_request(tmp_path: Path) -> None:
    home = HubHome(tmp_path)
    jti = str(uuid.uuid4())
    minted = mint_upload(
        home, base_url="https://hub:8443", cmd="clip", case=CASE, request_id=jti, expires=100
    )
    assert minted.upload_url.startswith(f"https://hub:8443/upload/{CASE}/{jti}/clip.mp4?")
    assert f"/{jti}/manifest.jws?" in minted.manifest_url
    assert minted.directory == tmp_path / "cases" / CASE / jti
    with pytest.raises(ValueError, match="case"):
        mint_upload(home, base_url="https://h", cmd="clip", case="a/b", request_id=jti, expires=1)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.text(max_size=140), name=st.text(max_size=70))
def test_paths_never_leave_the_cases_directory(tmp_path: Path, case: str, name: str) -> None:
    home = HubHome(tmp_path)
    try:
        path = upload_path(case, str(uuid.uuid4()), name)
    except ValueError:
        return
    parts = path.split("/")
    assert parts[:2] == ["", "upload"] and len(parts) == 5
    assert all(part not in ("", ".", "..") and quote(part, safe="") == part for part in parts[2:])
    directory = case_directory(home, case, parts[3]).resolve()
    assert directory.is_relative_to((tmp_path / "cases").resolve())


def test_request_without_upload_url_needs_the_receiver(hub_cli: HubRunner) -> None:
    args = ("request", "clip", "--site", "site-1", "--camera", "front-door", "--no-wait",
            "--from", "now-6m", "--to", "now-1m")  # fmt: skip
    result = hub_cli.run(*args, "--case", CASE)
    assert result.code == 2 and "rtcc-hub serve" in result.err
    update_serve_settings(hub_cli.home, public_url="https://127.0.0.1:8443")
    result = hub_cli.run(*args, "--case", "CR 2026/42")
    assert result.code == 2 and "--case" in result.err and "cannot be used" in result.err
    result = hub_cli.run(*args)
    assert result.code == 2 and "needs --case" in result.err
