"""camsim's ONVIF service as onvif-zeep-async (the agent's library) and raw SOAP see it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
import zeep.exceptions

from tests.support.camsim import (
    CamsimRun,
    camera,
    http_post,
    onvif_client,
    run_cameras,
    run_camsim,  # noqa: F401 - a fixture
    soap_envelope,
    username_token,
)
from tests.support.ffprobe import ffprobe, video_stream

SKEW = 900.0  # seconds: well outside the ±300 s window


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="hik"),
        camera("reolink", id="reo"),
        camera("generic", id="skewed", clock_skew=SKEW),
        camera("generic", id="tolerant", clock_skew=SKEW, auth_window=SKEW + 60),
    ) as run:
        yield run


def stream_setup() -> dict[str, Any]:
    return {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


async def test_device_information_profiles_and_stream_uris(cams: CamsimRun) -> None:
    cam = cams["hik"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        assert device.xaddrs["http://www.onvif.org/ver10/media/wsdl"] == (
            f"http://{cam.host}:{cam.onvif_port}/onvif/Media"
        )
        mgmt = await device.create_devicemgmt_service()
        info = await mgmt.GetDeviceInformation()
        assert info.Manufacturer == "HIKVISION"
        assert info.Model == "DS-2CD2023G0-I"
        assert info.FirmwareVersion == "V5.7.3 build 220112"
        assert info.SerialNumber == cam.serial
        media = await device.create_media_service()
        profiles = await media.GetProfiles()
        assert [p.token for p in profiles] == ["Profile_1", "Profile_2"]
        sizes = [
            (
                p.VideoEncoderConfiguration.Resolution.Width,
                p.VideoEncoderConfiguration.Resolution.Height,
            )
            for p in profiles
        ]
        assert sizes == [(1920, 1080), (640, 360)]
        uris = []
        for profile in profiles:
            request = media.create_type("GetStreamUri")
            request.ProfileToken = profile.token
            request.StreamSetup = stream_setup()
            uris.append((await media.GetStreamUri(request)).Uri)
        assert uris == [cam.rtsp_url("main"), cam.rtsp_url("sub")]


async def test_device_management_operations(cams: CamsimRun) -> None:
    cam = cams["hik"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        mgmt = await device.create_devicemgmt_service()
        services = await mgmt.GetServices({"IncludeCapability": True})
        assert {s.Namespace for s in services} == {
            "http://www.onvif.org/ver10/device/wsdl",
            "http://www.onvif.org/ver10/media/wsdl",
        }
        capabilities = await mgmt.GetCapabilities({"Category": "All"})
        assert capabilities.Media.StreamingCapabilities.RTP_RTSP_TCP is True
        scopes = [s.ScopeItem for s in await mgmt.GetScopes()]
        assert "onvif://www.onvif.org/hardware/DS-2CD2023G0-I" in scopes
        assert "onvif://www.onvif.org/name/HIKVISION%20DS-2CD2023G0-I" in scopes
        assert any(s.startswith("onvif://www.onvif.org/location/") for s in scopes)
        interfaces = await mgmt.GetNetworkInterfaces()
        assert interfaces[0].Info.HwAddress == cam.mac
        assert interfaces[0].IPv4.Config.Manual[0].Address == cam.host
        assert (await mgmt.GetHostname()).Name == "hik"
        clock = await mgmt.GetSystemDateAndTime()
        assert clock.DateTimeType == "NTP"
        media = await device.create_media_service()
        sources = await media.GetVideoSources()
        assert (sources[0].Resolution.Width, sources[0].Resolution.Height) == (1920, 1080)
        encoders = await media.GetVideoEncoderConfigurations()
        assert [e.H264.GovLength for e in encoders] == [30, 30]
        one = await media.GetVideoEncoderConfiguration({"ConfigurationToken": encoders[1].token})
        assert one.Resolution.Width == 640
        assert (await media.GetProfile({"ProfileToken": "Profile_2"})).Name == "subStream"


async def test_wrong_password_is_not_authorized(cams: CamsimRun) -> None:
    cam = cams["hik"]
    async with onvif_client(cam, password="not-the-password") as device:
        # GetSystemDateAndTime needs no credentials, as on real cameras.
        mgmt = await device.create_devicemgmt_service()
        assert (await mgmt.GetSystemDateAndTime()).UTCDateTime.Date.Year >= 2024
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await mgmt.GetDeviceInformation()
    subcodes = [code.localname for code in caught.value.subcodes]
    assert subcodes == ["NotAuthorized"]


def test_wrong_password_status_and_missing_token(cams: CamsimRun) -> None:
    cam = cams["hik"]
    op = "<tds:GetDeviceInformation/>"
    bad = http_post(
        cam.onvif_url, soap_envelope(op, security=username_token(cam.username, "wrong"))
    )
    assert (bad.status, bad.fault_code, bad.subcodes) == (400, "Sender", ["NotAuthorized"])
    missing = http_post(cam.onvif_url, soap_envelope(op))
    assert (missing.status, missing.subcodes) == (400, ["NotAuthorized"])
    text = http_post(
        cam.onvif_url,
        soap_envelope(op, security=username_token(cam.username, cam.password, text=True)),
    )
    assert text.status == 200  # PasswordText is accepted too, as by most cameras


def test_nonce_cannot_be_reused(cams: CamsimRun) -> None:
    cam = cams["hik"]
    token = username_token(cam.username, cam.password, nonce=b"0123456789abcdef")
    body = soap_envelope("<tds:GetDeviceInformation/>", security=token)
    assert http_post(cam.onvif_url, body).status == 200
    replay = http_post(cam.onvif_url, body)
    assert (replay.status, replay.subcodes) == (400, ["NotAuthorized"])


def test_skewed_camera_checks_created_against_its_own_clock(cams: CamsimRun) -> None:
    cam = cams["skewed"]
    op = "<tds:GetDeviceInformation/>"
    now = datetime.now(UTC)
    on_our_clock = username_token(cam.username, cam.password, created=now)
    refused = http_post(cam.onvif_url, soap_envelope(op, security=on_our_clock))
    assert refused.subcodes == ["NotAuthorized"]
    assert b"time window" in refused.body
    on_its_clock = username_token(cam.username, cam.password, created=now + timedelta(seconds=SKEW))
    assert http_post(cam.onvif_url, soap_envelope(op, security=on_its_clock)).status == 200


async def test_skewed_camera_reports_its_clock_and_needs_adjust_time(cams: CamsimRun) -> None:
    cam = cams["skewed"]
    async with onvif_client(cam) as device:
        mgmt = await device.create_devicemgmt_service()
        reported = (await mgmt.GetSystemDateAndTime()).UTCDateTime
        camera_time = datetime(
            reported.Date.Year,
            reported.Date.Month,
            reported.Date.Day,
            reported.Time.Hour,
            reported.Time.Minute,
            reported.Time.Second,
            tzinfo=UTC,
        )
        offset = (camera_time - datetime.now(UTC)).total_seconds()
        assert SKEW - 60 < offset < SKEW + 60
        assert (await mgmt.GetSystemDateAndTime()).DateTimeType == "Manual"
        with pytest.raises(zeep.exceptions.Fault):
            await mgmt.GetDeviceInformation()
    async with onvif_client(cam, adjust_time=True) as device:
        await device.update_xaddrs()
        mgmt = await device.create_devicemgmt_service()
        assert (await mgmt.GetDeviceInformation()).Model == "IPC-1080P"


async def test_auth_window_is_configurable(cams: CamsimRun) -> None:
    async with onvif_client(cams["tolerant"]) as device:
        mgmt = await device.create_devicemgmt_service()
        assert (await mgmt.GetDeviceInformation()).Manufacturer == "Generic"


def _decode(url: str, frames: int = 5) -> tuple[str, int, int, int]:
    options = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32768"}
    with av.open(url, options=options, timeout=10) as container:
        stream = container.streams.video[0]
        decoded = 0
        for _frame in container.decode(stream):
            decoded += 1
            if decoded >= frames:
                break
        return (
            stream.codec_context.name,
            stream.codec_context.width,
            stream.codec_context.height,
            decoded,
        )


@pytest.mark.parametrize(("cam_id", "codec"), [("hik", "h264"), ("reo", "hevc")])
async def test_pyav_decodes_the_advertised_stream(cams: CamsimRun, cam_id: str, codec: str) -> None:
    cam = cams[cam_id]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        media = await device.create_media_service()
        profile = (await media.GetProfiles())[0]
        request = media.create_type("GetStreamUri")
        request.ProfileToken = profile.token
        request.StreamSetup = stream_setup()
        uri = (await media.GetStreamUri(request)).Uri
    credentialed = uri.replace("rtsp://", f"rtsp://{cam.username}:{cam.password}@", 1)
    name, width, height, decoded = await asyncio.to_thread(_decode, credentialed)
    resolution = profile.VideoEncoderConfiguration.Resolution
    assert (name, width, height) == (codec, resolution.Width, resolution.Height)
    assert decoded == 5


async def test_snapshot_is_a_jpeg_behind_digest_auth(cams: CamsimRun, tmp_path: Path) -> None:
    cam = cams["hik"]
    async with onvif_client(cam) as device:
        await device.update_xaddrs()
        media = await device.create_media_service()
        token = (await media.GetProfiles())[0].token
        assert await device.get_snapshot_uri(token) == cam.snapshot_url
        image = await device.get_snapshot(token)
    assert image is not None and image[:2] == b"\xff\xd8"
    path = tmp_path / "snapshot.jpg"
    path.write_bytes(image)
    stream = video_stream(ffprobe(path))
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 1920, 1080)
    assert cam.snapshot_url is not None
    anonymous = http_post(cam.snapshot_url, b"", method="GET")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Digest ")


async def test_run_camsim_fixture_starts_and_stops_cameras(
    run_camsim: Callable[..., CamsimRun],  # noqa: F811 - the fixture imported above
) -> None:
    cams = run_camsim("tapo", camera("hanwha", id="wisenet"), control=True)
    assert [c.id for c in cams] == ["cam1", "wisenet"]
    assert cams.control_url is not None
    async with onvif_client(cams["wisenet"]) as device:
        mgmt = await device.create_devicemgmt_service()
        assert (await mgmt.GetDeviceInformation()).Manufacturer == "Hanwha Techwin"
