"""Each persona quirk is observable the way the agent will meet it: through onvif-zeep-async or
raw SOAP (discovery quirks are in test_discovery.py)."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterator

import aiohttp
import av
import pytest
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError

from tests.support.camsim import (
    CamsimRun,
    camera,
    http_post,
    onvif_client,
    run_cameras,
    soap_envelope,
    username_token,
)

MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
GET_STREAM_URI = (
    "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
    "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
    "<trt:ProfileToken>{token}</trt:ProfileToken></trt:GetStreamUri>"
)


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        # Its own address, so following a 0.0.0.0 service address (= 127.0.0.1) misses it.
        camera("budget", id="zero", host="127.0.0.7"),
        camera("generic", id="dup", quirks=["xaddr_duplicate_port"]),
        camera("amcrest", id="escaped"),
        camera("axis-legacy", id="noservices"),
        camera("generic", id="textonly", quirks=["password_text_only"]),
        camera("axis", id="httpdigest"),
        camera("reolink", id="h265"),
        camera("dahua", id="cif"),
        camera("tapo", id="nosnap"),
        camera("budget-dvr", id="nouri"),
    ) as run:
        yield run


def subcodes(fault: zeep.exceptions.Fault) -> list[str]:
    return [code.localname for code in fault.subcodes or []]


async def stream_uri(device: ONVIFCamera, token: str) -> str:
    media = await device.create_media_service()
    request = media.create_type("GetStreamUri")
    request.ProfileToken = token
    request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    return str((await media.GetStreamUri(request)).Uri)


# onvif-zeep-async's basic_auth path uses aiohttp APIs that aiohttp now deprecates.
@pytest.mark.filterwarnings("ignore:.*(BasicAuth|'auth' parameter).*:DeprecationWarning")
async def test_xaddr_zero_host(cams: CamsimRun) -> None:
    cam = cams["zero"]
    # PasswordText: the budget persona also refuses PasswordDigest.
    async with onvif_client(cam, encrypt=False, adjust_time=True) as device:
        await device.update_xaddrs()
        assert device.xaddrs[MEDIA_NS] == f"http://0.0.0.0:{cam.onvif_port}/onvif/Media"
    # Rewriting service addresses to the host we reached is the workaround.
    async with onvif_client(cam, encrypt=False, adjust_time=True, nat_override=True) as device:
        await device.update_xaddrs()
        assert device.xaddrs[MEDIA_NS] == f"http://{cam.host}:{cam.onvif_port}/onvif/Media"
        media = await device.create_media_service()
        assert len(await media.GetProfiles()) == 2
        # This persona's snapshot URL wants HTTP Basic, not Digest.
        image = await device.get_snapshot("000", basic_auth=True)
        assert image is not None and image[:2] == b"\xff\xd8"
        with pytest.raises(ONVIFAuthError):
            await device.get_snapshot("000")


def test_xaddr_duplicate_port(cams: CamsimRun) -> None:
    cam = cams["dup"]
    token = username_token(cam.username, cam.password)
    reply = http_post(
        cam.onvif_url,
        soap_envelope(
            "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
            security=token,
        ),
    )
    assert reply.status == 200
    port = cam.onvif_port
    assert f"http://127.0.0.1:{port}:{port}/onvif/media_service".encode() in reply.body


async def test_xaddr_duplicate_port_is_normalised_by_the_client(cams: CamsimRun) -> None:
    cam = cams["dup"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        media = await device.create_media_service()
        assert len(await media.GetProfiles()) == 2


async def test_escaped_stream_uri(cams: CamsimRun) -> None:
    cam = cams["escaped"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        uri = await stream_uri(device, "MediaProfile00000")
    assert uri == cam.rtsp_url("main").replace("&", "&amp;")
    assert html.unescape(uri) == cam.rtsp_url("main")


async def test_no_get_services_falls_back_to_capabilities(cams: CamsimRun) -> None:
    cam = cams["noservices"]
    async with onvif_client(cam) as device:
        mgmt = await device.create_devicemgmt_service()
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await mgmt.GetServices({"IncludeCapability": False})
        assert subcodes(caught.value) == ["ActionNotSupported"]
        await device.update_xaddrs()  # onvif-zeep-async falls back to GetCapabilities
        assert device.xaddrs[MEDIA_NS].endswith("/onvif/services")
        media = await device.create_media_service()
        assert len(await media.GetProfiles()) == 2


async def test_password_text_only(cams: CamsimRun) -> None:
    cam = cams["textonly"]
    async with onvif_client(cam) as device:
        mgmt = await device.create_devicemgmt_service()
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await mgmt.GetDeviceInformation()
        assert subcodes(caught.value) == ["NotAuthorized"]
    async with onvif_client(cam, encrypt=False) as device:
        mgmt = await device.create_devicemgmt_service()
        assert (await mgmt.GetDeviceInformation()).Manufacturer == "Generic"


async def test_http_digest_auth(cams: CamsimRun) -> None:
    cam = cams["httpdigest"]
    body = soap_envelope(
        "<tds:GetDeviceInformation/>", security=username_token(cam.username, cam.password)
    )
    refused = http_post(cam.onvif_url, body)
    assert (refused.status, refused.subcodes) == (401, ["NotAuthorized"])
    assert refused.headers["WWW-Authenticate"].startswith("Digest ")
    # No WS-Security at all, HTTP Digest instead: accepted.
    digest = aiohttp.DigestAuthMiddleware(cam.username, cam.password)
    async with (
        aiohttp.ClientSession(middlewares=(digest,)) as session,
        session.post(
            cam.onvif_url,
            data=soap_envelope("<tds:GetDeviceInformation/>"),
            headers={"Content-Type": "application/soap+xml"},
        ) as response,
    ):
        assert response.status == 200
        assert b"<tds:Manufacturer>AXIS</tds:Manufacturer>" in await response.read()


async def test_h265_main_is_reported_as_h264_in_media1(cams: CamsimRun) -> None:
    cam = cams["h265"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        media = await device.create_media_service()
        main = (await media.GetProfiles())[0]
    assert main.VideoEncoderConfiguration.Encoding == "H264"

    def codec() -> str:
        url = cam.rtsp_url("main", credentials=True)
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
            return str(container.streams.video[0].codec_context.name)

    assert await asyncio.to_thread(codec) == "hevc"


async def test_sub_stream_352x240(cams: CamsimRun) -> None:
    cam = cams["cif"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        media = await device.create_media_service()
        sub = (await media.GetProfiles())[1]
    resolution = sub.VideoEncoderConfiguration.Resolution
    assert (resolution.Width, resolution.Height) == (352, 240)


async def test_no_snapshot(cams: CamsimRun) -> None:
    cam = cams["nosnap"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        media = await device.create_media_service()
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await media.GetSnapshotUri({"ProfileToken": "profile_1"})
        assert subcodes(caught.value) == ["ActionNotSupported"]
        assert await device.get_snapshot("profile_1") is None
    assert cam.snapshot_url is None
    direct = f"http://{cam.host}:{cam.onvif_port}{cam.persona.snapshot_path}"
    assert http_post(direct, b"", method="GET").status == 404


async def test_stream_uri_fails_but_the_vendor_path_serves(cams: CamsimRun) -> None:
    cam = cams["nouri"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await stream_uri(device, "PROFILE_000")
    assert caught.value.code is not None and "Sender" in caught.value.code
    raw = http_post(
        f"http://{cam.host}:{cam.onvif_port}{cam.persona.media_path}",
        soap_envelope(
            GET_STREAM_URI.format(token="PROFILE_000"),
            security=username_token(cam.username, cam.password),
        ),
    )
    assert raw.status == 400 and b"Validation constraint violation" in raw.body

    def frames() -> int:
        url = cam.rtsp_url("main", credentials=True)  # the persona's known RTSP path
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
            for count, _frame in enumerate(container.decode(video=0), start=1):
                if count == 3:
                    return count
        return 0

    assert await asyncio.to_thread(frames) == 3
