"""The manifest's facts: camera facts read from the state dir (or None, never invented), the
mapping from an extracted clip, and the signature with its own `typ`."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.camera_info import remember_camera_facts
from agent.delivery import CAMERA_INFO_FILE, CameraFacts, read_camera_facts, sign_manifest
from agent.delivery.manifest import clip_manifest, manifest_camera
from agent.identity import DeviceKey, verify_device_jws
from agent.store import ClipResult, Gap, SegmentRef
from agent.wire import Manifest
from agent.wire.manifest import MANIFEST_TYP, ClockFacts
from tests.delivery.site import CAMERA, delivery_config

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def test_facts_are_none_without_a_cache(tmp_path: Path) -> None:
    assert read_camera_facts(tmp_path, CAMERA) == CameraFacts()


def test_facts_from_the_cache(tmp_path: Path) -> None:
    (tmp_path / CAMERA_INFO_FILE).write_text(
        json.dumps(
            {
                CAMERA: {
                    "vendor": "Hikvision",
                    "model": "DS-2CD2143G2-I",
                    "firmware": "V5.7.3",
                    "clock_offset_s": -1.5,
                    "extra": "ignored",
                },
                "other": {"vendor": "Axis"},
            }
        )
    )
    assert read_camera_facts(tmp_path, CAMERA) == CameraFacts(
        "Hikvision", "DS-2CD2143G2-I", "V5.7.3", -1.5
    )
    assert read_camera_facts(tmp_path, "nope") == CameraFacts()


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"front-door": "x"}',
        b'{"front-door": {"vendor": 5, "model": "\\u0000bad", "clock_offset_s": "3"}}',
        b'{"front-door": {"clock_offset_s": NaN}}',
        b"[" * 100_000,
    ],
)
def test_bad_cache_content_means_unknown(tmp_path: Path, content: bytes) -> None:
    (tmp_path / CAMERA_INFO_FILE).write_bytes(content)
    assert read_camera_facts(tmp_path, CAMERA) == CameraFacts()


@given(st.binary(max_size=300))
def test_any_cache_bytes_never_raise(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / CAMERA_INFO_FILE).write_bytes(data)
        facts = read_camera_facts(Path(directory), CAMERA)
    assert isinstance(facts, CameraFacts)


def _clip() -> ClipResult:
    segment = SegmentRef("front-door/x.mp4", "c" * 64, 1000, T0, T0 + timedelta(seconds=10), False)
    return ClipResult(
        path=Path("/tmp/clip.mp4"),
        camera=CAMERA,
        requested_start=T0,
        requested_end=T0 + timedelta(seconds=8),
        sha256="a" * 64,
        bytes=1234,
        codec="h264",
        width=320,
        height=240,
        duration=9.0,
        frames=135,
        first_frame=T0 - timedelta(seconds=1),
        last_frame=T0 + timedelta(seconds=8),
        gaps=(Gap(T0 + timedelta(seconds=2), T0 + timedelta(seconds=3)),),
        segments=(segment,),
        notes=("segment y: altered since it was recorded (hash differs); left out",),
    )


def test_clip_manifest_states_what_the_clip_is(tmp_path: Path) -> None:
    config = delivery_config(tmp_path)
    camera = config.camera(CAMERA)
    assert camera is not None
    manifest = clip_manifest(
        site="site-1",
        request_id="r",
        case="c",
        camera=manifest_camera(camera, CameraFacts(vendor="Axis")),
        requested=(T0, T0 + timedelta(seconds=8)),
        clip=_clip(),
        clock=ClockFacts(ntp_synchronized=True, camera_offset_s=None),
        issued=100,
    )
    assert manifest.camera.vendor == "Axis" and manifest.camera.model is None
    assert manifest.camera.location is not None and manifest.camera.location.heading == 270
    assert manifest.actual.start == T0 - timedelta(seconds=1)
    assert [(g.start, g.end) for g in manifest.gaps] == [
        (T0 + timedelta(seconds=2), T0 + timedelta(seconds=3))
    ]
    assert manifest.segments[0].complete is False and manifest.notes
    assert (manifest.file.frames, manifest.file.duration, manifest.file.container) == (
        135,
        9.0,
        "mp4",
    )
    key = DeviceKey.generate()
    token = sign_manifest(key, manifest)
    assert jwt.get_unverified_header(token)["typ"] == MANIFEST_TYP
    assert Manifest.model_validate(verify_device_jws(token, key.public_jwk)) == manifest


def test_check_advice_is_kept_for_the_owner(tmp_path: Path) -> None:
    advice = ("The camera sends 4 frames a second. Set it to at least 5 in its video settings.",)
    remember_camera_facts(tmp_path, CAMERA, CameraFacts(verdict="warn", advice=advice))
    facts = read_camera_facts(tmp_path, CAMERA)
    assert (facts.verdict, facts.advice) == ("warn", advice)
    assert facts.checked is not None
    # What the file says is only trusted as printable text, and not without bound.
    (tmp_path / "camera-info.json").write_text(
        '{"front-door": {"advice": ["ok", 5, "\\u0000bad", "' + "x" * 1900 + '"]}}'
    )
    assert read_camera_facts(tmp_path, CAMERA).advice == ("ok", "x" * 1000)
