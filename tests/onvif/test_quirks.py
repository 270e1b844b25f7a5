"""Every quirk camsim can play is detected, and either worked around or reported with the
right verdict: once per persona (as the vendor ships it) and once per quirk on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agent.compat import load_profiles
from agent.compat.check import CheckOptions, CheckResult, Target, check_cameras
from agent.compat.report import CameraReport, Status
from agent.onvif import find_cameras
from camsim.persona import PERSONAS, Quirk
from tests.support.camsim import CamsimRun, camera, run_cameras

# quirk -> (persona to add it to, {check id: expected status}, worked around?)
ALONE: dict[Quirk, tuple[str, dict[str, Status], bool]] = {
    Quirk.XADDR_ZERO_HOST: ("generic", {"onvif": "pass", "streaming": "pass"}, True),
    Quirk.XADDR_DUPLICATE_PORT: ("generic", {"onvif": "pass", "streaming": "pass"}, True),
    Quirk.ESCAPED_STREAM_URI: ("dahua", {"streaming": "pass"}, True),
    Quirk.NO_GET_SERVICES: ("generic", {"onvif": "pass", "streaming": "pass"}, True),
    Quirk.PASSWORD_TEXT_ONLY: ("generic", {"onvif": "warn", "streaming": "pass"}, True),
    Quirk.HTTP_DIGEST_AUTH: ("generic", {"onvif": "pass", "streaming": "pass"}, True),
    Quirk.H265_MAIN: ("generic", {"codec": "warn", "streaming": "pass"}, False),
    Quirk.SUB_352X240: ("generic", {"sub_stream": "warn", "streaming": "pass"}, False),
    Quirk.NO_SNAPSHOT: ("generic", {"snapshot": "pass"}, True),
    # Hikvision: the firmware profile knows its paths, so the fallback finds the stream.
    Quirk.STREAM_URI_FAILS: ("hikvision", {"streaming": "warn", "codec": "pass"}, True),
    # Neither GetServices nor GetCapabilities: the media service is asked at the device address.
    Quirk.NO_GET_CAPABILITIES: ("generic", {"onvif": "pass", "streaming": "pass"}, True),
    Quirk.CLOCK_NEEDS_AUTH: ("generic", {"onvif": "pass", "clock": "pass"}, True),
    Quirk.MJPEG_SUB: ("generic", {"sub_stream": "warn", "streaming": "pass"}, False),
}
# What a quirk needs next to it to show at all.
COMPANIONS: dict[Quirk, list[Quirk]] = {Quirk.NO_GET_CAPABILITIES: [Quirk.NO_GET_SERVICES]}
# Seen while finding cameras, not while checking one (tests/onvif/test_discovery.py).
DISCOVERY_ONLY = {Quirk.NO_WS_DISCOVERY, Quirk.WSD_LOOSE_REPLY}
FIRST_HOST = 20


def host(index: int) -> str:
    return f"127.0.0.{FIRST_HOST + index}"


def specs() -> list[dict[str, object]]:
    cams: list[dict[str, object]] = [
        camera(name, id=f"p-{name}", host=host(i)) for i, name in enumerate(PERSONAS)
    ]
    base = len(cams)
    for i, (quirk, (persona, _checks, _fixed)) in enumerate(ALONE.items()):
        cams.append(
            camera(
                persona,
                id=f"q-{quirk.value}".replace("_", "-"),
                host=host(base + i),
                quirks=[quirk, *COMPANIONS.get(quirk, [])],
            )
        )
    # A model and firmware line the Hikvision advisories cover, on a fixed release.
    cams.append(camera("hikvision", id="hik-covered", host=host(len(cams)), model="DS-2CD2143G2-I"))
    # No vendor profile to fall back on: reported, not worked around.
    cams.append(
        camera(
            "generic", id="q-no-uri-unknown", host=host(len(cams)), quirks=[Quirk.STREAM_URI_FAILS]
        )
    )
    return cams


@pytest.fixture(scope="module")
def checked() -> Iterator[tuple[CamsimRun, dict[str, CameraReport]]]:
    with run_cameras(*specs()) as cams:
        targets = [
            Target(label=c.id, onvif_url=c.onvif_url, username=c.username, password=c.password)
            for c in cams
        ]
        options = CheckOptions(rtsp_ports=(cams["q-stream-uri-fails"].rtsp_port,))
        results: list[CheckResult] = asyncio.run(
            check_cameras(targets, options=options, profiles=load_profiles(), concurrency=12)
        )
        yield cams, {r.report.target: r.report for r in results}


def statuses(report: CameraReport) -> dict[str, Status]:
    return {c.id: c.status for c in report.checks}


def test_every_camsim_quirk_has_a_case() -> None:
    assert set(ALONE) | DISCOVERY_ONLY == set(Quirk)


@pytest.mark.parametrize("name", list(PERSONAS))
def test_each_persona_has_its_quirks_detected(
    checked: tuple[CamsimRun, dict[str, CameraReport]], name: str
) -> None:
    _cams, reports = checked
    report = reports[f"p-{name}"]
    expected = {q.value for q in PERSONAS[name].quirks - DISCOVERY_ONLY}
    assert expected <= {q.id for q in report.quirks}, report.quirks
    assert report.onvif is not None and report.onvif.error is None


@pytest.mark.parametrize("quirk", list(ALONE))
def test_each_quirk_alone_gets_the_right_verdicts(
    checked: tuple[CamsimRun, dict[str, CameraReport]], quirk: Quirk
) -> None:
    _cams, reports = checked
    _persona, expected, worked_around = ALONE[quirk]
    report = reports[f"q-{quirk.value}".replace("_", "-")]
    found = {q.id: q for q in report.quirks}
    assert quirk.value in found, report.quirks
    assert (found[quirk.value].workaround is not None) == worked_around
    got = statuses(report)
    assert {k: got[k] for k in expected} == expected, report.checks


def test_what_each_workaround_achieved(checked: tuple[CamsimRun, dict[str, CameraReport]]) -> None:
    cams, reports = checked
    escaped = reports["q-escaped-stream-uri"]
    assert escaped.stream is not None and escaped.stream.url is not None
    assert escaped.stream.url.endswith("channel=1&subtype=0")
    digest = reports["q-http-digest-auth"]
    assert digest.onvif is not None and digest.onvif.auth == "http_digest"
    text = reports["q-password-text-only"]
    assert text.onvif is not None and text.onvif.auth == "password_text"
    hevc = reports["q-h265-main"]
    assert hevc.stream is not None and hevc.stream.codec == "hevc"
    assert hevc.onvif is not None
    main_profile = next(p for p in hevc.onvif.profiles if p.role == "main")
    assert main_profile.encoding == "H264"  # what ONVIF claims
    cif = reports["q-sub-352x240"]
    assert cif.sub_stream is not None and (cif.sub_stream.width, cif.sub_stream.height) == (
        352,
        240,
    )
    fallback = reports["q-stream-uri-fails"]
    assert fallback.stream is not None
    assert fallback.stream.url_source == "firmware_profile"
    assert fallback.stream.url == cams["q-stream-uri-fails"].rtsp_url("main")
    zero = reports["q-xaddr-zero-host"]
    assert zero.onvif is not None
    assert zero.onvif.services["media"].startswith(f"http://{cams['q-xaddr-zero-host'].host}:")


def test_no_vendor_path_to_fall_back_on_is_a_failure_with_a_remedy(
    checked: tuple[CamsimRun, dict[str, CameraReport]],
) -> None:
    _cams, reports = checked
    report = reports["q-no-uri-unknown"]
    streaming = next(c for c in report.checks if c.id == "streaming")
    assert streaming.status == "fail" and streaming.remedy and "rtsp_url" in streaming.remedy
    assert "Validation constraint violation" in streaming.reason
    assert report.status == "fail"


def test_clock_and_firmware_verdicts_of_the_personas(
    checked: tuple[CamsimRun, dict[str, CameraReport]],
) -> None:
    _cams, reports = checked
    assert statuses(reports["p-hanwha"])["clock"] == "warn"  # 3.5 s
    budget = reports["p-budget"]
    assert statuses(budget)["clock"] == "fail" and budget.clock and budget.clock.compensated
    assert statuses(reports["p-hikvision"])["clock"] == "pass"
    vulnerable = next(c for c in reports["p-hikvision-vulnerable"].checks if c.id == "firmware")
    assert vulnerable.status == "fail" and "CVE-2021-36260" in vulnerable.reason
    assert vulnerable.remedy
    # No Hikvision advisory on file names the DS-2CD2023G0-I: no data, so no pass.
    unknown = next(c for c in reports["p-hikvision"].checks if c.id == "firmware")
    assert unknown.status == "warn" and unknown.reason.startswith("Cannot tell")
    assert "DS-2CD2023G0-I" in unknown.reason and "2026-11-22" in unknown.reason
    covered = next(c for c in reports["hik-covered"].checks if c.id == "firmware")
    assert covered.status == "pass" and "cover this model" in covered.reason
    assert statuses(reports["p-reolink"])["codec"] == "warn"


def test_a_camera_without_service_addresses_keeps_its_identity(
    checked: tuple[CamsimRun, dict[str, CameraReport]],
) -> None:
    """Issue 13, item 2: identity survives GetServices and GetCapabilities both failing, so the
    known vulnerability of its firmware is reported."""
    _cams, reports = checked
    bare = reports["p-hikvision-bare"]
    assert bare.identity is not None and bare.identity.firmware == "V5.5.113 build 210317"
    firmware = next(c for c in bare.checks if c.id == "firmware")
    assert firmware.status == "fail" and "CVE-2021-36260" in firmware.reason
    assert {"no_get_services", "no_get_capabilities"} <= {q.id for q in bare.quirks}
    assert statuses(bare)["streaming"] == "pass"


def test_a_clock_told_only_with_credentials_is_read_and_corrected(
    checked: tuple[CamsimRun, dict[str, CameraReport]],
) -> None:
    """Issue 13, item 3: asked again logged in; 20 minutes off, so WS-Security is corrected by
    it, and the advice is about the clock (NTP) because the clock is what is wrong."""
    _cams, reports = checked
    locked = reports["p-uniview-locked"]
    assert locked.clock is not None and locked.clock.needs_auth and locked.clock.compensated
    assert locked.clock.offset_s is not None and 1190 < locked.clock.offset_s < 1210
    assert locked.onvif is not None and locked.onvif.auth == "password_digest"
    clock = next(c for c in locked.checks if c.id == "clock")
    assert clock.status == "fail" and "read with credentials" in clock.reason
    assert clock.remedy is not None and "NTP" in clock.remedy


def test_mjpeg_is_never_the_sub_stream_when_h264_exists(
    checked: tuple[CamsimRun, dict[str, CameraReport]],
) -> None:
    """Issue 13, item 5: Dahua's smaller MJPEG third profile is not taken for the sub stream;
    an Axis whose only second profile is MJPEG says so, without opening it."""
    _cams, reports = checked
    dahua = reports["p-dahua-mjpeg"]
    assert dahua.onvif is not None
    roles = {p.token: p.role for p in dahua.onvif.profiles}
    assert roles == {
        "MediaProfile00000": "main",
        "MediaProfile00001": "sub",
        "MediaProfile00002": None,
    }
    assert dahua.sub_stream is not None and dahua.sub_stream.codec == "h264"
    assert statuses(dahua)["sub_stream"] == "pass"
    axis = reports["p-axis-mjpeg"]
    sub = next(c for c in axis.checks if c.id == "sub_stream")
    assert sub.status == "warn" and "JPEG" in sub.reason
    assert axis.sub_stream is None  # never opened
    assert "mjpeg_sub" in {q.id for q in axis.quirks}


def test_a_recorder_is_checked_channel_by_channel(
    checked: tuple[CamsimRun, dict[str, CameraReport]],
) -> None:
    _cams, reports = checked
    nvr = reports["p-hikvision-nvr"]
    assert nvr.recorder is not None and len(nvr.recorder.channels) == 8
    assert nvr.recorder.reason == "ONVIF lists 8 video sources"
    assert [c.main_profile for c in nvr.recorder.channels][:2] == ["Profile_101", "Profile_201"]
    assert nvr.stream is not None and nvr.stream.url is not None
    assert nvr.stream.url.endswith("/Streaming/Channels/101")


def test_a_camera_that_ignores_probes_is_found_by_the_sweep(
    checked: tuple[CamsimRun, dict[str, CameraReport]],
) -> None:
    cams, _reports = checked
    hidden = cams["p-budget-dvr"]
    result = asyncio.run(
        find_cameras(
            scan=[f"{hidden.host}/32"],
            multicast=False,
            ws_port=cams.discovery_port or 0,
            sweep_ports=[hidden.onvif_port],
            wait=0.5,
        )
    )
    assert [(c.host, c.found_by, c.quirks) for c in result.cameras] == [
        (hidden.host, ["port_sweep"], ["no_ws_discovery"])
    ]
