"""Facts → pass / warn / fail: the thresholds of the issue, and "cannot tell" is never a pass."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.compat import verdicts
from agent.compat.report import (
    CameraReport,
    Clock,
    ErrorInfo,
    FirmwareCoverage,
    FirmwareFinding,
    Identity,
    Onvif,
    Profile,
    QuirkFound,
    Storage,
    Stream,
    Vendor,
    json_schema,
    worst,
)
from agent.config import CompatConfig

COMPAT = CompatConfig()
DOC = Path(__file__).resolve().parents[2] / "docs" / "compat-json.md"


def stream(**fields: object) -> Stream:
    values: dict[str, object] = {
        "role": "main",
        "url": "rtsp://10.0.0.5:554/s",
        "url_source": "onvif",
        "codec": "h264",
        "width": 2560,
        "height": 1440,
        "fps": 15.0,
        "keyframe_interval_s": 2.0,
        "bitrate_bps": 2_000_000,
        "time_to_first_frame_s": 0.3,
    }
    values.update(fields)
    return Stream.model_validate(values)


def storage(capacity: int, *, cameras: int = 1, max_age_days: float = 30) -> Storage:
    return Storage(
        budget_bytes=capacity,
        free_bytes=None,
        reserve_bytes=0,
        capacity_bytes=capacity,
        cameras_sharing=cameras,
        max_age_s=max_age_days * 86400,
    )


def test_worst() -> None:
    assert worst(["pass", "skip", "warn"]) == "warn"
    assert worst(["skip", "skip"]) == "pass"
    assert worst(["warn", "fail", "pass"]) == "fail"


@pytest.mark.parametrize(
    ("width", "height", "status"),
    [
        (640, 480, "fail"),
        (1280, 720, "fail"),
        (1280, 960, "warn"),
        (1920, 1080, "warn"),
        (2048, 1536, "pass"),
        (3840, 2160, "pass"),
    ],
)
def test_resolution_against_1_and_3_megapixels(width: int, height: int, status: str) -> None:
    assert verdicts.resolution_check(stream(width=width, height=height), COMPAT).status == status


@pytest.mark.parametrize(
    ("fps", "status"),
    [(1.0, "fail"), (4.0, "fail"), (4.95, "warn"), (10.0, "warn"), (14.9, "pass"), (25.0, "pass")],
)
def test_frame_rate_against_5_and_15(fps: float, status: str) -> None:
    assert verdicts.frame_rate_check(stream(fps=fps), COMPAT).status == status


def test_thresholds_come_from_the_configuration() -> None:
    strict = CompatConfig(min_megapixels=4.0, recommended_megapixels=8.0, min_fps=20)
    assert verdicts.resolution_check(stream(), strict).status == "fail"
    assert verdicts.frame_rate_check(stream(), strict).status == "fail"


def test_codec() -> None:
    assert verdicts.codec_check(stream(codec="h264")).status == "pass"
    hevc = verdicts.codec_check(stream(codec="hevc"), claimed="H264")
    assert hevc.status == "warn" and "browsers" in hevc.reason and "H264" in hevc.reason
    assert verdicts.codec_check(stream(codec="mjpeg")).status == "fail"


def test_keyframe_interval() -> None:
    assert verdicts.keyframe_check(stream(keyframe_interval_s=4.0), COMPAT).status == "pass"
    long = verdicts.keyframe_check(stream(keyframe_interval_s=8.0), COMPAT)
    assert long.status == "warn" and long.remedy
    unknown = verdicts.keyframe_check(
        stream(keyframe_interval_s=None, keyframe_interval_at_least_s=6.0), COMPAT
    )
    assert unknown.status == "warn" and "6.0 s" in unknown.reason


@pytest.mark.parametrize(
    ("bitrate", "status"), [(2_000_000, "pass"), (6_000_000, "warn"), (12_000_000, "fail")]
)
def test_bitrate_against_the_upload_budget(bitrate: int, status: str) -> None:
    assert verdicts.bitrate_check(stream(bitrate_bps=bitrate), COMPAT).status == status


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (0.4, "pass"),
        (-2.0, "pass"),
        (3.5, "warn"),
        (-29.0, "warn"),
        (31.0, "fail"),
        (-437.0, "fail"),
    ],
)
def test_camera_clock(offset: float, status: str) -> None:
    result = verdicts.clock_check(Clock(offset_s=offset), onvif_failed=False)
    assert result.status == status
    assert ("ahead" if offset > 0 else "behind") in result.reason


def test_an_unknown_camera_clock_is_not_a_pass() -> None:
    assert verdicts.clock_check(Clock(offset_s=None), onvif_failed=False).status == "warn"
    assert verdicts.clock_check(None, onvif_failed=True).status == "skip"


def test_the_clock_advice_fits_what_failed() -> None:
    """Issue 13, item 3: a camera that keeps its time to logged-in clients and refused the login
    gets login advice, not "enable NTP"; one that answered without UTC gets time-zone advice."""
    locked = Clock(needs_auth=True, error="the camera tells its time only to a logged-in client")
    refused = verdicts.clock_check(locked, onvif_failed=True)
    assert refused.status == "warn" and "logged-in" in refused.reason
    assert refused.remedy is not None and "ONVIF login" in refused.remedy
    assert "Enable NTP" not in refused.remedy
    no_utc = verdicts.clock_check(Clock(ntp=False), onvif_failed=False)
    assert no_utc.status == "warn" and "time zone" in (no_utc.remedy or "")
    read = verdicts.clock_check(Clock(offset_s=1200.0, needs_auth=True), onvif_failed=False)
    assert read.status == "fail" and "read with credentials" in read.reason


def test_retention_at_the_measured_bitrate() -> None:
    # 4 Mbit/s = 0.5 MB/s = 43.2 GB a day.
    four = stream(bitrate_bps=4_000_000)
    assert verdicts.retention_check(four, storage(60 * 10**9), COMPAT).status == "fail"
    assert verdicts.retention_check(four, storage(200 * 10**9), COMPAT).status == "warn"
    assert verdicts.retention_check(four, storage(500 * 10**9), COMPAT).status == "pass"
    shared = verdicts.retention_check(four, storage(150 * 10**9, cameras=4), COMPAT)
    assert shared.status == "fail" and "4 camera(s)" in shared.reason
    short_age = verdicts.retention_check(four, storage(10**13, max_age_days=1), COMPAT)
    assert short_age.status == "fail" and "max_age" in short_age.reason
    recommended = CompatConfig(recommended_retention=timedelta(days=3))
    assert verdicts.retention_check(four, storage(200 * 10**9), recommended).status == "pass"


def test_site_retention_adds_up_the_cameras() -> None:
    site = verdicts.site_retention_check([4e6, 4e6], storage(200 * 10**9), COMPAT)
    assert site.status == "warn" and "8.0 Mbit/s" in site.reason
    assert verdicts.site_retention_check([], storage(1), COMPAT).status == "skip"


def test_storage_capacity() -> None:
    assert verdicts.storage_capacity(budget=100, used=10, free=None, reserve=5) == 100
    assert verdicts.storage_capacity(budget=100, used=10, free=50, reserve=5) == 55
    assert verdicts.storage_capacity(budget=100, used=0, free=3, reserve=5) == 0


def finding(status: str, *, kind: str = "vulnerability") -> FirmwareFinding:
    return FirmwareFinding.model_validate(
        {
            "kind": kind,
            "id": "CVE-2021-36260" if kind == "vulnerability" else "bad_events",
            "status": status,
            "summary": "Command injection in the web server",
            "reason": "firmware is in the published affected range",
            "remedy": "Update to V5.5.800 build 210628 or later.",
            "severity": "critical",
            "known_exploited": True,
            "source": "https://nvd.nist.gov/vuln/detail/CVE-2021-36260",
        }
    )


IDENTITY = Identity(
    manufacturer="HIKVISION", model="DS-2CD2143G0-I", firmware="V5.5.0 build 170725"
)
VENDOR = Vendor(id="hikvision", name="Hikvision", confidence="high", reasons=[])


def test_a_vulnerable_firmware_fails_naming_the_cve_and_the_fix() -> None:
    result = verdicts.firmware_check(IDENTITY, VENDOR, [finding("affected")], firmware_parses=True)
    assert result.status == "fail"
    assert "CVE-2021-36260" in result.reason and "exploited" in result.reason
    assert result.remedy == "Update to V5.5.800 build 210628 or later."


COVERED = FirmwareCoverage(
    covered=True,
    reason="the Hikvision advisories on file cover this model and firmware line",
    advisories_reviewed=date(2026, 11, 22),
)
NOT_COVERED = FirmwareCoverage(
    covered=False,
    reason="no published Hikvision advisory on file names model DS-2CD2143G0-I (advisories "
    "reviewed 2026-11-22)",
    advisories_reviewed=date(2026, 11, 22),
)


def test_firmware_that_cannot_be_judged_is_a_warning_never_a_pass() -> None:
    unknown = verdicts.firmware_check(
        IDENTITY, VENDOR, [finding("unknown")], firmware_parses=True, coverage=COVERED
    )
    assert unknown.status == "warn" and unknown.reason.startswith("Cannot tell")
    unparsed = verdicts.firmware_check(IDENTITY, VENDOR, [], firmware_parses=False)
    assert unparsed.status == "warn" and unparsed.reason.startswith("Cannot tell")
    no_vendor = verdicts.firmware_check(IDENTITY, None, [], firmware_parses=False)
    assert no_vendor.status == "warn" and no_vendor.reason.startswith("Cannot tell")
    no_identity = verdicts.firmware_check(None, None, [], firmware_parses=False)
    assert no_identity.status == "warn" and "ONVIF did not report" in no_identity.reason
    rtsp_only = verdicts.firmware_check(None, None, [], firmware_parses=False, onvif=False)
    assert rtsp_only.status == "warn" and "RTSP alone" in rtsp_only.reason
    clean = verdicts.firmware_check(IDENTITY, VENDOR, [], firmware_parses=True, coverage=COVERED)
    assert clean.status == "pass" and "cover this model" in clean.reason
    defect = verdicts.firmware_check(
        IDENTITY,
        VENDOR,
        [finding("affected", kind="onvif_defect")],
        firmware_parses=True,
        coverage=COVERED,
    )
    assert defect.status == "warn"


def test_no_published_vulnerability_without_data_is_no_pass() -> None:
    """Issue 13, item 4: a vendor whose profile names no CVE for the model (or none at all)
    gives "cannot tell", with what was known and as of which date."""
    uncovered = verdicts.firmware_check(
        IDENTITY, VENDOR, [], firmware_parses=True, coverage=NOT_COVERED
    )
    assert uncovered.status == "warn" and uncovered.reason.startswith("Cannot tell")
    assert "DS-2CD2143G0-I" in uncovered.reason and "2026-11-22" in uncovered.reason
    assert uncovered.remedy is not None and "advisories" in uncovered.remedy
    no_data = verdicts.firmware_check(IDENTITY, VENDOR, [], firmware_parses=True)
    assert no_data.status == "warn"


def test_onvif_verdicts() -> None:
    ok = Onvif(device_url="http://c/onvif/device_service", auth="password_digest")
    assert verdicts.onvif_check(ok, []).status == "pass"
    text = Onvif(device_url="http://c/onvif/device_service", auth="password_text")
    assert verdicts.onvif_check(text, []).status == "warn"
    zero = QuirkFound(id="xaddr_zero_host", detail="advertises 0.0.0.0", workaround="rewritten")
    assert "0.0.0.0" in verdicts.onvif_check(ok, [zero]).reason
    for kind in ("unreachable", "timeout", "not_onvif", "malformed", "auth", "fault"):
        failed = Onvif(device_url="http://c/x", error=ErrorInfo(kind=kind, message="m"))
        result = verdicts.onvif_check(failed, [])
        assert result.status == "fail" and result.remedy
    assert verdicts.onvif_check(None, []).status == "skip"


def test_streaming_verdicts() -> None:
    assert verdicts.streaming_check(stream(), None).status == "pass"
    fallback = verdicts.streaming_check(stream(url_source="firmware_profile"), None)
    assert fallback.status == "warn" and "rtsp_url" in (fallback.remedy or "")
    for kind in ("auth", "not_found", "refused", "timeout", "no_video", "error"):
        broken = stream(codec=None, error=ErrorInfo(kind=kind, message="m"))
        assert verdicts.streaming_check(broken, None).status == "fail"
    assert verdicts.streaming_check(None, None).status == "fail"


def test_checks_without_a_stream_are_skipped() -> None:
    broken = stream(codec=None, error=ErrorInfo(kind="timeout", message="m"))
    for result in (
        verdicts.codec_check(broken),
        verdicts.resolution_check(broken, COMPAT),
        verdicts.frame_rate_check(None, COMPAT),
        verdicts.keyframe_check(None, COMPAT),
        verdicts.bitrate_check(broken, COMPAT),
        verdicts.retention_check(broken, storage(10**12), COMPAT),
        verdicts.snapshot_check(None, has_snapshot=False, onvif_snapshot=False),
    ):
        assert result.status == "skip"


def test_sub_stream() -> None:
    cif = stream(role="sub", width=352, height=240)
    assert verdicts.sub_stream_check(cif).status == "warn"
    assert verdicts.sub_stream_check(stream(role="sub", width=640, height=360)).status == "pass"
    assert verdicts.sub_stream_check(None).status == "skip"


def test_the_sub_stream_says_only_what_was_observed() -> None:
    """Issue 13, items 5 and 6."""
    unknown = verdicts.sub_stream_check(None, profiles_listed=False)
    assert unknown.status == "skip" and unknown.reason.startswith("Cannot tell")
    assert "single" not in unknown.reason
    single = verdicts.sub_stream_check(None, profiles_listed=True)
    assert "single" in single.reason
    jpeg = Profile(token="profile_2_jpeg", encoding="JPEG", width=640, height=360)
    mjpeg = verdicts.sub_stream_check(None, mjpeg=jpeg)
    assert mjpeg.status == "warn" and "JPEG 640x360" in mjpeg.reason
    assert mjpeg.remedy is not None and "H.264" in mjpeg.remedy


@given(
    st.floats(0.01, 100_000_000),
    st.integers(0, 10**14),
    st.integers(1, 64),
    st.floats(3600, 400 * 86400),
)
def test_retention_never_crashes_and_never_passes_under_48_hours(
    bitrate: float, capacity: int, cameras: int, max_age: float
) -> None:
    result = verdicts.retention_check(
        stream(bitrate_bps=int(bitrate) or 1),
        storage(capacity, cameras=cameras, max_age_days=max_age / 86400),
        COMPAT,
    )
    hours = verdicts.retention_hours(int(bitrate) or 1, capacity / cameras, max_age)
    if hours < 48:
        assert result.status == "fail"


def test_the_documented_schema_is_the_models_schema() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- schema:begin -->\n```json\n(.*?)\n```\n<!-- schema:end -->", text, re.S
    )
    assert block is not None, "docs/compat-json.md lost its schema block"
    assert json.loads(block.group(1)) == json_schema(), (
        "the JSON Schema in docs/compat-json.md is stale: regenerate it with "
        "`python -m agent.compat.report`"
    )
    assert CameraReport.model_json_schema()["properties"]["kind"]["const"] == "camera_check"
