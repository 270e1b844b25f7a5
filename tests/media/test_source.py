"""Stream URLs and their credentials: percent-encoding, decryption, redaction."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agent.config import CameraConfig
from agent.media.source import SourceError, resolve_source, rtsp_source
from agent.redact import REDACTED
from agent.secretbox import SecretBox


def test_credentials_go_into_userinfo_percent_encoded() -> None:
    source = rtsp_source(
        "rtsp://10.0.0.5:554/Streaming/Channels/101", username="ad min", password="p@ss:w/rd%"
    )
    parts = urlsplit(source.url)
    assert unquote(parts.username or "") == "ad min"
    assert unquote(parts.password or "") == "p@ss:w/rd%"
    assert parts.hostname == "10.0.0.5" and parts.port == 554
    assert source.display_url == "rtsp://10.0.0.5:554/Streaming/Channels/101"


def test_config_credentials_replace_those_in_the_url() -> None:
    source = rtsp_source(
        "rtsp://old:secret@cam/x?channel=1&subtype=0", username="new", password="fresh-pass"
    )
    assert source.url == "rtsp://new:fresh-pass@cam/x?channel=1&subtype=0"
    assert "secret" not in source.display_url and "fresh" not in source.display_url


def test_credentials_already_in_the_url_are_kept_and_redacted() -> None:
    source = rtsp_source("rtsp://admin:hunter22@cam:8554/live", username=None, password=None)
    assert source.url == "rtsp://admin:hunter22@cam:8554/live"
    message = f"Server returned 401 Unauthorized: '{source.url}' (password hunter22)"
    assert "hunter22" not in source.redact(message)
    assert "rtsp://cam:8554/live" in source.redact(message)


def test_secret_query_parameters_never_reach_the_display_url() -> None:
    source = rtsp_source(
        "rtsp://cam/live?user=admin&password=Str1pe%26s&channel=1", username=None, password=None
    )
    assert source.url.endswith("password=Str1pe%26s&channel=1")  # opened as configured
    assert source.display_url == "rtsp://cam/live?user=admin&password=[redacted]&channel=1"
    assert "Str1pe" not in source.redact(f"{source.url} failed; Str1pe&s was refused")


def test_no_credentials() -> None:
    source = rtsp_source("rtsp://cam/live", username=None, password=None)
    assert source.url == source.display_url == "rtsp://cam/live"
    assert source.redact("error at rtsp://cam/live") == "error at rtsp://cam/live"


def test_repr_never_shows_the_password() -> None:
    source = rtsp_source("rtsp://cam/live", username="u", password="topsecret")
    assert "topsecret" not in repr(source)


def test_not_rtsp_is_refused() -> None:
    with pytest.raises(SourceError):
        rtsp_source("http://cam/live", username=None, password=None)


@given(st.text(min_size=1, max_size=20), st.text(min_size=4, max_size=30))
def test_redaction_removes_any_password(username: str, password: str) -> None:
    source = rtsp_source("rtsp://cam:554/s", username=username, password=password)
    assert unquote(urlsplit(source.url).password or "") == password
    redacted = source.redact(f"failed {source.url}: {password}")
    assume(password not in "failed rtsp://cam:554/s: " + REDACTED)
    assert password not in redacted.replace(REDACTED, "\0")


async def test_encrypted_secret_is_decrypted(tmp_path: Path) -> None:
    box = SecretBox.load_or_create(tmp_path)
    camera = CameraConfig(
        id="cam",
        name="Cam",
        rtsp_url="rtsp://cam/live",
        username="admin",
        secret=box.encrypt("s3cr3t!"),
    )
    source = await resolve_source(camera, state_dir=tmp_path)
    assert unquote(urlsplit(source.url).password or "") == "s3cr3t!"


async def test_undecryptable_secret_is_a_source_error(tmp_path: Path) -> None:
    other = tmp_path / "other"
    token = SecretBox.load_or_create(other).encrypt("x")
    SecretBox.load_or_create(tmp_path)
    camera = CameraConfig(
        id="cam", name="Cam", rtsp_url="rtsp://cam/live", username="admin", secret=token
    )
    with pytest.raises(SourceError, match="decrypt"):
        await resolve_source(camera, state_dir=tmp_path)


async def test_onvif_only_camera_is_a_clear_not_yet(tmp_path: Path) -> None:
    camera = CameraConfig(id="cam", name="Cam", onvif_url="http://10.0.0.5/onvif/device_service")
    with pytest.raises(SourceError, match="rtsp_url"):
        await resolve_source(camera, state_dir=tmp_path)


async def test_a_camera_known_only_by_its_onvif_url_is_asked_for_its_stream(
    tmp_path: Path,
) -> None:
    from tests.support.camsim import camera, run_cameras

    # Amcrest leaves `&amp;` escaped in its stream URI: the recorder must get a usable URL.
    with run_cameras(camera("hikvision"), camera("amcrest")) as cams:
        for cam in cams:
            config = CameraConfig(
                id=cam.id,
                name=cam.id,
                onvif_url=cam.onvif_url,
                username=cam.username,
                secret=cam.password,
                stream="main",
            )
            source = await resolve_source(config, state_dir=tmp_path)
            assert source.display_url == cam.rtsp_url("main")
            assert "&amp;" not in source.url
            assert cam.password not in source.display_url

        wrong = CameraConfig(
            id="cam9",
            name="wrong password",
            onvif_url=cams[0].onvif_url,
            username=cams[0].username,
            secret="not-the-password",
        )
        with pytest.raises(SourceError, match="over ONVIF") as caught:
            await resolve_source(wrong, state_dir=tmp_path)
        assert "not-the-password" not in str(caught.value)
        assert not caught.value.camera_fault  # a configuration to fix, not to hammer

        cams[1].faults.unplug()
        unplugged = CameraConfig(
            id="cam8",
            name="unplugged",
            onvif_url=cams[1].onvif_url,
            username=cams[1].username,
            secret=cams[1].password,
        )
        await asyncio.sleep(0.2)  # camsim closes its ONVIF port on its next fault poll
        with pytest.raises(SourceError, match="over ONVIF") as caught:
            await resolve_source(unplugged, state_dir=tmp_path)
        assert caught.value.camera_fault  # no answer: retried like a lost stream, not `failed`
