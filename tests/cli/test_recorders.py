"""Recorders (NVRs) and RTSP-only cameras as a technician adds and checks them, against camsim's
8-channel NVR persona and cameras over real ONVIF and RTSP (issue 13)."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.compat.report import CameraReport, DiscoveryReport, RecorderReport
from agent.config import load_config
from agent.secretbox import SecretBox
from camsim.persona import Quirk
from tests.support.camsim import CamsimRun, camera, run_cameras
from tests.support.ffprobe import ffprobe, video_stream

PASSWORD = "Nvr-Visit-4417"


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision-nvr", id="nvr", host="127.0.0.60", password=PASSWORD),
        # The same recorder model, but its GetStreamUri faults: the channel paths come from
        # the Hikvision firmware profile.
        camera(
            "hikvision-nvr",
            id="nvr-nouri",
            host="127.0.0.61",
            password=PASSWORD,
            add_quirks=[Quirk.STREAM_URI_FAILS],
        ),
        camera("generic", id="rtsp-cam", host="127.0.0.62", password=PASSWORD),
        camera("hikvision", id="hik", host="127.0.0.63", password=PASSWORD),
        camera("uniview-locked", id="locked", host="127.0.0.64", password=PASSWORD),
    ) as run:
        yield run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        "# Corner Grocery\n"
        f'state_dir = "{tmp_path / "state"}"\n\n'
        '[site]\nid = "corner"\nname = "Corner Grocery"\n'
    )
    return path


def run_cli(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
    finally:
        sys.stdin = old_stdin
    assert "Traceback" not in err.getvalue()
    return status, out.getvalue(), err.getvalue()


# -- discover ------------------------------------------------------------------------------------


def test_discover_lists_a_recorders_channels_with_a_login(config: Path, cams: CamsimRun) -> None:
    nvr = cams["nvr"]
    status, out, err = run_cli(
        "--config", str(config), "discover", "--scan", f"{nvr.host}/32", "--no-multicast",
        "--ws-port", str(cams.discovery_port), "--ports", str(nvr.onvif_port), "--wait", "0.5",
        "--username", nvr.username, "--password-stdin", "--json", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 0, err
    report = DiscoveryReport.model_validate_json(out)
    [found] = report.cameras
    assert found.identity is not None and found.identity.model == "DS-7608NI-K2"
    assert found.recorder is not None and found.recorder.reason == "ONVIF lists 8 video sources"
    assert [c.number for c in found.recorder.channels] == list(range(1, 9))
    assert found.recorder.channels[2].main_profile == "Profile_301"
    assert PASSWORD not in out


def test_discover_knows_a_recorder_model_without_a_login(
    config: Path, cams: CamsimRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    nvr = cams["nvr"]
    status, out, _err = run_cli(
        "--config", str(config), "discover", "--scan", f"{nvr.host}/32", "--no-multicast",
        "--ws-port", str(cams.discovery_port), "--ports", str(nvr.onvif_port), "--wait", "0.5",
    )  # fmt: skip
    assert status == 0
    said = " ".join(out.split())
    assert "recorder" in said and "firmware profiles" in said and "--channels" in said


# -- check ---------------------------------------------------------------------------------------


def test_check_a_recorder_checks_every_channel(cams: CamsimRun) -> None:
    nvr = cams["nvr"]
    status, out, _err = run_cli(
        "check", f"{nvr.host}:{nvr.onvif_port}", "--username", nvr.username,
        "--password-stdin", "--channel", "2,7", "--json", stdin=PASSWORD,
    )  # fmt: skip
    report = RecorderReport.model_validate_json(out)
    assert [c.channel for c in report.channels] == [2, 7]
    assert len(report.recorder.channels) == 8
    for channel in report.channels:
        assert channel.channel is not None
        assert channel.stream is not None and channel.stream.codec == "h264"
        assert channel.stream.url == nvr.rtsp_url("main", channel=channel.channel)
        assert channel.sub_stream is not None and channel.sub_stream.url is not None
        assert channel.sub_stream.url.endswith(f"/Streaming/Channels/{channel.channel}02")
    assert status == (1 if report.status == "fail" else 0)


def test_check_a_channel_the_recorder_does_not_have(cams: CamsimRun) -> None:
    nvr = cams["nvr"]
    status, out, err = run_cli(
        "check", nvr.onvif_url, "--username", nvr.username, "--password-stdin",
        "--channel", "9", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 2 and out == "" and "has 8 channel(s); there is no channel 9" in err


def test_a_failed_login_says_nothing_about_sub_streams_it_cannot_know(cams: CamsimRun) -> None:
    """Issue 13, item 6: "offers a single stream" only when ONVIF said so."""
    hik = cams["hik"]
    status, out, _err = run_cli(
        "check", hik.onvif_url, "--username", hik.username, "--password-stdin", "--json",
        stdin="wrong",
    )  # fmt: skip
    report = CameraReport.model_validate_json(out)
    sub = next(c for c in report.checks if c.id == "sub_stream")
    assert "single" not in sub.reason and sub.reason.startswith("Cannot tell")
    assert status == 1


def test_a_clock_kept_to_logged_in_clients_with_the_wrong_password(cams: CamsimRun) -> None:
    """Issue 13, item 3: the advice is about the login that failed, not about NTP."""
    locked = cams["locked"]
    status, out, _err = run_cli(
        "check", locked.onvif_url, "--username", locked.username, "--password-stdin", "--json",
        stdin="wrong",
    )  # fmt: skip
    report = CameraReport.model_validate_json(out)
    assert status == 1 and report.clock is not None and report.clock.needs_auth
    clock = next(c for c in report.checks if c.id == "clock")
    assert clock.status == "warn" and "logged-in client" in clock.reason
    assert clock.remedy is not None and "ONVIF login" in clock.remedy
    assert "NTP" not in clock.remedy
    onvif = next(c for c in report.checks if c.id == "onvif")
    assert onvif.status == "fail" and "clock" in onvif.reason


# -- cameras add: a recorder's channels ---------------------------------------------------------


def test_add_a_recorders_channels_over_onvif(config: Path, cams: CamsimRun) -> None:
    nvr = cams["nvr"]
    status, out, err = run_cli(
        "--config", str(config), "cameras", "add", nvr.onvif_url, "--channels", "1-3,8",
        "--username", nvr.username, "--password-stdin", "--id", "shop", "--sharing", "registry",
        "--location", "35.08,-106.65", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 0, err
    loaded = load_config(config)
    cameras = {c.id: c for c in loaded.cameras}
    assert list(cameras) == ["shop-ch1", "shop-ch2", "shop-ch3", "shop-ch8"]
    for number, added in zip((1, 2, 3, 8), cameras.values(), strict=True):
        assert added.channel == number and added.onvif_url == nvr.onvif_url
        assert added.rtsp_url is None and added.name.endswith(f"channel {number}")
        assert added.sharing.value == "registry" and added.location is not None
        assert added.secret is not None
        assert SecretBox.load(loaded.state_dir).decrypt(added.secret.get_secret_value()) == (
            PASSWORD
        )
    assert PASSWORD not in config.read_text() and "shop-ch8" in out
    # The same channel again is refused; a recorder without --channels is refused clearly.
    before = config.read_text()
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", nvr.onvif_url, "--channels", "3",
        "--username", nvr.username, "--password-stdin", "--id", "again", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 2 and "already configured" in err and config.read_text() == before
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", nvr.onvif_url, "--username", nvr.username,
        "--password-stdin", "--id", "whole", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 2 and "recorder with 8 channels" in err and "--channels 1-8" in err


def test_an_added_channel_is_checked_as_its_own_camera(config: Path, cams: CamsimRun) -> None:
    nvr = cams["nvr"]
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", nvr.onvif_url, "--channels", "5",
        "--username", nvr.username, "--password-stdin", "--id", "lot", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 0, err
    status, out, _err = run_cli("--config", str(config), "check", "lot-ch5", "--json")
    report = CameraReport.model_validate_json(out)
    assert report.channel == 5 and report.camera_id == "lot-ch5"
    assert report.stream is not None and report.stream.url == nvr.rtsp_url("main", channel=5)


def test_channels_without_onvif_stream_uris_come_from_the_firmware_profile(
    config: Path, cams: CamsimRun
) -> None:
    """A recorder whose ONVIF media will not give stream URIs: the Hikvision recorder paths
    (/Streaming/Channels/<n>01), each opened before it is added."""
    nvr = cams["nvr-nouri"]
    status, out, err = run_cli(
        "--config", str(config), "cameras", "add", nvr.onvif_url, "--channels", "2,4",
        "--rtsp-port", str(nvr.rtsp_port), "--username", nvr.username, "--password-stdin",
        "--id", "back", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 0, err
    cameras = {c.id: c for c in load_config(config).cameras}
    assert cameras["back-ch2"].rtsp_url == nvr.rtsp_url("main", channel=2)
    assert cameras["back-ch4"].rtsp_url == nvr.rtsp_url("main", channel=4)
    assert cameras["back-ch4"].channel == 4
    said = " ".join(out.split())
    assert "Hikvision's channel path" in said and "GetStreamUri failed" in said


# -- cameras add --rtsp --------------------------------------------------------------------------


def test_add_an_rtsp_only_camera_with_its_password_encrypted(
    config: Path, cams: CamsimRun, tmp_path: Path
) -> None:
    """Issue 13, item 7: the URL's password leaves the URL and is stored encrypted."""
    cam = cams["rtsp-cam"]
    url = cam.rtsp_url("main", credentials=True)
    status, out, err = run_cli(
        "--config", str(config), "cameras", "add", "--rtsp", url, "--id", "alley"
    )
    assert status == 0, err
    assert PASSWORD not in out and PASSWORD not in err and PASSWORD not in config.read_text()
    loaded = load_config(config)
    alley = loaded.camera("alley")
    assert alley is not None and alley.rtsp_url == cam.rtsp_url("main")
    assert alley.onvif_url is None and alley.username == cam.username
    assert alley.secret is not None and alley.secret.get_secret_value().startswith("enc:v1:")
    status, out, err = run_cli("--config", str(config), "config", "check")
    assert "in clear" not in out + err
    # The stored camera records: the check opens it with the decrypted password.
    snapshot = tmp_path / "alley.jpg"
    status, out, _err = run_cli(
        "--config", str(config), "check", "alley", "--json", "--snapshot", str(snapshot)
    )
    report = CameraReport.model_validate_json(out)
    assert report.stream is not None and report.stream.codec == "h264"
    assert video_stream(ffprobe(snapshot))["codec_name"] == "mjpeg"


def test_add_rtsp_with_the_password_on_stdin_and_a_wrong_one(config: Path, cams: CamsimRun) -> None:
    cam = cams["rtsp-cam"]
    before = config.read_text()
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", "--rtsp", cam.rtsp_url("sub"),
        "--username", cam.username, "--password-stdin", stdin="not-it\n",
    )  # fmt: skip
    assert status == 1 and "refused the RTSP username or password" in " ".join(err.split())
    assert config.read_text() == before
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", "--rtsp", cam.rtsp_url("sub"),
        "--username", cam.username, "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 0, err
    [added] = load_config(config).cameras
    assert added.id == f"cam-127-0-0-62-{cam.rtsp_port}" and added.rtsp_url == cam.rtsp_url("sub")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("rtsp://127.0.0.62:554/user=admin&password=hunter22&channel=1&stream=0.sdp", "encrypted"),
        ("rtsp://127.0.0.62/live?pwd=hunter22", "encrypted"),
        ("http://127.0.0.62/live", "not an rtsp:// URL"),
    ],
)
def test_add_rtsp_refuses_what_it_cannot_store_safely(config: Path, url: str, words: str) -> None:
    before = config.read_text()
    status, out, err = run_cli("--config", str(config), "cameras", "add", "--rtsp", url)
    assert status == 2 and words in err and "hunter22" not in out + err
    assert config.read_text() == before


def test_add_recorder_channels_by_rtsp(config: Path, cams: CamsimRun) -> None:
    """A recorder without ONVIF: one channel's URL, and the others worked out from the vendor's
    recorder paths; a channel that does not open is reported and left out."""
    nvr = cams["nvr"]
    url = nvr.rtsp_url("main", channel=1, credentials=True)
    status, out, err = run_cli(
        "--config", str(config), "cameras", "add", "--rtsp", url, "--channels", "1,6,12",
        "--id", "dvr",
    )  # fmt: skip
    assert status == 0, err
    cameras = {c.id: c for c in load_config(config).cameras}
    assert list(cameras) == ["dvr-ch1", "dvr-ch6"]
    assert cameras["dvr-ch6"].rtsp_url == nvr.rtsp_url("main", channel=6)
    assert "channel 12 not added" in " ".join(err.split()) and "404" in err
    assert PASSWORD not in out + err + config.read_text()
