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
}
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
                quirks=[quirk],
            )
        )
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
    assert set(ALONE) | {Quirk.NO_WS_DISCOVERY} == set(Quirk)


@pytest.mark.parametrize("name", list(PERSONAS))
def test_each_persona_has_its_quirks_detected(
    checked: tuple[CamsimRun, dict[str, CameraReport]], name: str
) -> None:
    _cams, reports = checked
    report = reports[f"p-{name}"]
    expected = {q.value for q in PERSONAS[name].quirks} - {Quirk.NO_WS_DISCOVERY.value}
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
    main_profile = next(p for p in hevc.onvif.profiles if p.role == "main")  # type: ignore[union-attr]
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
    assert statuses(reports["p-hikvision"])["firmware"] == "pass"
    assert statuses(reports["p-reolink"])["codec"] == "warn"


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
