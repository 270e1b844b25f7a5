"""The ONVIF device wrapper against real camsim cameras, each with its quirks, and against servers
that are not cameras at all: every outcome is either a working camera or a named OnvifError."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.onvif import (
    AuthFailed,
    MediaProfile,
    NoAnswer,
    NotOnvif,
    OnvifCamera,
    OnvifError,
    OnvifFault,
    Unreachable,
    select_profile,
    stream_uri,
)
from tests.onvif.servers import closed_port, http_server, silent_server
from tests.support.camsim import CameraHandle, CamsimRun, camera, run_cameras


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="plain", host="127.0.0.2"),
        camera("budget", id="budget", host="127.0.0.3"),  # 0.0.0.0, PasswordText, clock +437 s
        camera("budget-dvr", id="dvr", host="127.0.0.4"),  # port twice, GetStreamUri faults
        camera("axis", id="axis", host="127.0.0.5"),  # HTTP Digest only
        camera("axis-legacy", id="legacy", host="127.0.0.6"),  # no GetServices
        camera("amcrest", id="amcrest", host="127.0.0.7"),  # &amp; in the stream URI
        camera("tapo", id="tapo", host="127.0.0.8"),  # no ONVIF snapshot
        # PasswordDigest only works if the clock offset is compensated: 437 s > 300 s window.
        camera("generic", id="skewed", host="127.0.0.9", clock_skew=437),
        camera("generic", id="strict", host="127.0.0.10", clock_skew=-40, auth_window=10),
        camera("generic", id="slow", host="127.0.0.11"),
    ) as run:
        yield run


def connected(cam: CameraHandle, **options: Any) -> OnvifCamera:
    options.setdefault("password", cam.password)
    options.setdefault("timeout", 5.0)
    return OnvifCamera(cam.host, cam.onvif_port, username=cam.username, **options)


async def interrogate(cam: CameraHandle, **options: Any) -> tuple[OnvifCamera, list[MediaProfile]]:
    async with connected(cam, **options) as device:
        return device, await device.profiles()


def quirk_ids(device: OnvifCamera) -> set[str]:
    return {q.id for q in device.quirks}


async def test_a_well_behaved_camera(cams: CamsimRun) -> None:
    cam = cams["plain"]
    async with connected(cam) as device:
        assert device.auth == "password_digest" and quirk_ids(device) == set()
        assert device.info is not None
        assert (device.info.manufacturer, device.info.model) == ("HIKVISION", "DS-2CD2023G0-I")
        assert device.services["media"] == f"http://{cam.host}:{cam.onvif_port}/onvif/Media"
        assert device.clock is not None and device.clock.offset is not None
        assert abs(device.clock.offset) < 2 and not device.compensated
        profiles = await device.profiles()
        main, sub = select_profile(profiles, "main"), select_profile(profiles, "sub")
        assert main is not None and (main.width, main.height) == (1920, 1080)
        assert sub is not None and (sub.width, sub.height) == (640, 360)
        assert await device.stream_uri(main.token) == cam.rtsp_url("main")
        assert await device.stream_uri(sub.token) == cam.rtsp_url("sub")
        assert await device.snapshot_uri(main.token) == cam.snapshot_url


async def test_zero_host_password_text_and_a_drifted_clock(cams: CamsimRun) -> None:
    cam = cams["budget"]
    device, profiles = await interrogate(cam)
    assert device.auth == "password_text"
    assert quirk_ids(device) == {"password_text_only", "xaddr_zero_host"}
    assert device.advertised_services["media"].startswith("http://0.0.0.0:")
    assert device.services["media"].startswith(f"http://{cam.host}:{cam.onvif_port}/")
    assert device.clock is not None and device.clock.offset is not None
    assert 430 < device.clock.offset < 445 and device.compensated
    assert profiles


async def test_a_duplicated_port_is_fixed_and_a_failing_stream_uri_is_a_fault(
    cams: CamsimRun,
) -> None:
    cam = cams["dvr"]
    async with connected(cam) as device:
        assert "xaddr_duplicate_port" in quirk_ids(device)
        assert device.services["media"].startswith(f"http://{cam.host}:{cam.onvif_port}/")
        main = select_profile(await device.profiles(), "main")
        assert main is not None
        with pytest.raises(OnvifFault) as caught:
            await device.stream_uri(main.token)
        assert not caught.value.not_supported
        assert "Validation constraint violation" in str(caught.value)


async def test_http_digest_only(cams: CamsimRun) -> None:
    device, profiles = await interrogate(cams["axis"])
    assert device.auth == "http_digest" and quirk_ids(device) == {"http_digest_auth"}
    assert select_profile(profiles, "main") is not None  # the media service answers too


async def test_get_capabilities_when_get_services_is_missing(cams: CamsimRun) -> None:
    cam = cams["legacy"]
    async with connected(cam) as device:
        assert quirk_ids(device) == {"no_get_services"}
        main = select_profile(await device.profiles(), "main")
        assert main is not None
        assert await device.stream_uri(main.token) == cam.rtsp_url("main")


async def test_an_escaped_stream_uri_is_unescaped(cams: CamsimRun) -> None:
    cam = cams["amcrest"]
    async with connected(cam) as device:
        main = select_profile(await device.profiles(), "main")
        assert main is not None
        uri = await device.stream_uri(main.token)
    assert uri == cam.rtsp_url("main") and uri.endswith("channel=1&subtype=0")
    assert "escaped_stream_uri" in quirk_ids(device)


async def test_no_snapshot_is_noted(cams: CamsimRun) -> None:
    async with connected(cams["tapo"]) as device:
        main = select_profile(await device.profiles(), "main")
        assert main is not None
        assert await device.snapshot_uri(main.token) is None
    assert quirk_ids(device) == {"no_snapshot"}


@pytest.mark.parametrize("name", ["skewed", "strict"])
async def test_a_clock_offset_is_compensated_for_password_digest(
    cams: CamsimRun, name: str
) -> None:
    device, _profiles = await interrogate(cams[name])
    assert device.compensated
    assert device.auth == "password_digest"  # without compensation only PasswordText would pass


async def test_wrong_credentials(cams: CamsimRun) -> None:
    with pytest.raises(AuthFailed) as caught:
        await interrogate(cams["plain"], password="not-the-password")
    assert "PasswordDigest" in str(caught.value) and "HTTP Digest" in str(caught.value)


async def test_wrong_credentials_on_an_http_digest_camera_skip_password_text(
    cams: CamsimRun,
) -> None:
    with pytest.raises(AuthFailed) as caught:
        await interrogate(cams["axis"], password="not-the-password")
    assert "PasswordText" not in str(caught.value)


async def test_an_unplugged_camera(run_camsim: Any) -> None:
    cam = run_camsim(camera("generic", host="127.0.0.12"))[0]
    cam.faults.unplug()
    await asyncio.sleep(0.3)  # camsim closes its listening socket within ~100 ms
    with pytest.raises((Unreachable, NoAnswer)):
        await interrogate(cam, timeout=1.0)


async def test_a_slow_camera_hits_our_timeout(cams: CamsimRun) -> None:
    cam = cams["slow"]
    cam.faults.soap_delay = 3.0
    try:
        with pytest.raises(NoAnswer) as caught:
            await interrogate(cam, timeout=0.5)
    finally:
        cam.faults.soap_delay = 0.0
    assert "0.5 s" in str(caught.value)


async def test_a_closed_port() -> None:
    device = OnvifCamera("127.0.0.1", closed_port(), username="u", password="p", timeout=1.0)
    with pytest.raises(Unreachable) as caught:
        async with device:
            pass
    assert "refused" in str(caught.value)


async def test_a_server_that_accepts_and_never_answers() -> None:
    with silent_server() as port:
        device = OnvifCamera("127.0.0.1", port, username="u", password="p", timeout=0.5)
        with pytest.raises(NoAnswer):
            async with device:
                pass


async def _web_page(_request: web.Request) -> web.Response:
    return web.Response(text="<html><body><h1>Router login</h1></body></html>", status=200)


async def test_a_web_server_that_is_not_onvif() -> None:
    with http_server(_web_page) as port:
        device = OnvifCamera("127.0.0.1", port, username="u", password="p", timeout=2.0)
        with pytest.raises(NotOnvif) as caught:
            async with device:
                pass
    assert "not an ONVIF device service" in str(caught.value)


async def test_the_proxy_settings_survive_the_library(
    cams: CamsimRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    await interrogate(cams["plain"])
    assert os.environ["http_proxy"] == "http://proxy.example:3128"


async def test_the_recorders_stream_uri(cams: CamsimRun) -> None:
    cam = cams["amcrest"]
    for stream in ("main", "sub"):
        uri = await stream_uri(
            cam.onvif_url, username=cam.username, password=cam.password, stream=stream
        )
        assert uri == cam.rtsp_url(stream)
    with pytest.raises(OnvifFault):
        await stream_uri(cam.onvif_url, username=cam.username, password=cam.password, stream="x")


def test_profile_selection() -> None:
    def profile(token: str, width: int | None, height: int | None) -> MediaProfile:
        return MediaProfile(token, None, "H264", width, height, None, None, None)

    small, big, audio = profile("s", 640, 360), profile("b", 2560, 1440), profile("a", None, None)
    assert select_profile([small, audio, big], "main") is big
    assert select_profile([small, audio, big], "sub") is small
    assert select_profile([big], "sub") is None
    assert select_profile([small, big], "s") is small
    assert select_profile([audio], "main") is None


# -- malformed SOAP, generated: a proxy in front of a real camera replaces one answer ------------

FUZZED_OPERATIONS = (
    "GetSystemDateAndTime",
    "GetDeviceInformation",
    "GetServices",
    "GetProfiles",
    "GetStreamUri",
)


class FuzzProxy:
    """Forwards SOAP to a camsim camera, except the answer to `operation`: that one is `body`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.operation = ""
        self.status = 200
        self.body = b""
        self.real: dict[str, bytes] = {}

    async def handle(self, request: web.Request) -> web.Response:
        data = await request.read()
        operation = next((op for op in FUZZED_OPERATIONS if op.encode() in data), "")
        if operation and operation == self.operation:
            return web.Response(
                body=self.body, status=self.status, content_type="application/soap+xml"
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream + request.path, data=data, headers=headers) as answer,
        ):
            body = await answer.read()
            if operation and answer.status == 200:
                self.real.setdefault(operation, body)
            return web.Response(
                body=body, status=answer.status, content_type="application/soap+xml"
            )


@pytest.fixture(scope="module")
def fuzz_proxy(cams: CamsimRun) -> Iterator[tuple[FuzzProxy, int, CameraHandle]]:
    cam = cams["plain"]
    proxy = FuzzProxy(f"http://{cam.host}:{cam.onvif_port}")
    with http_server(proxy.handle) as port:
        asyncio.run(_exercise(port, cam))  # records a real answer to every operation
        assert set(proxy.real) == set(FUZZED_OPERATIONS)
        yield proxy, port, cam


async def _exercise(port: int, cam: CameraHandle) -> str:
    device = OnvifCamera("127.0.0.1", port, username=cam.username, password=cam.password)
    async with device:
        main = select_profile(await device.profiles(), "main")
        if main is None:
            raise OnvifFault("GetProfiles", "no main profile")
        return await device.stream_uri(main.token)


@st.composite
def mangled(draw: st.DrawFn, real: bytes) -> bytes:
    how = draw(st.sampled_from(["truncate", "splice", "garbage", "swap_text", "huge_number"]))
    if how == "truncate":
        return real[: draw(st.integers(0, len(real)))]
    if how == "splice":
        at = draw(st.integers(0, len(real)))
        return real[:at] + draw(st.binary(max_size=64)) + real[at:]
    if how == "garbage":
        return draw(st.binary(max_size=512))
    if how == "swap_text":
        text = draw(st.text(max_size=40)).encode("utf-8", "replace")
        return real.replace(b">", b">" + text, draw(st.integers(1, 6)))
    return real.replace(b"1920", b"9" * draw(st.integers(1, 400)))


@given(data=st.data())
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_malformed_soap_gives_a_named_error_never_a_traceback(
    fuzz_proxy: tuple[FuzzProxy, int, CameraHandle], data: st.DataObject
) -> None:
    proxy, port, cam = fuzz_proxy
    proxy.operation = data.draw(st.sampled_from(FUZZED_OPERATIONS))
    proxy.status = data.draw(st.sampled_from([200, 200, 400, 401, 500]))
    proxy.body = data.draw(mangled(proxy.real[proxy.operation]))
    try:
        uri = asyncio.run(asyncio.wait_for(_exercise(port, cam), 30))
    except OnvifError as exc:
        assert str(exc) and exc.kind
    else:
        assert uri.startswith("rtsp://127.0.0.1:")
