"""`rtcc-hub verify CLIP MANIFEST`: a real clip cut by the store and a manifest signed by a device
key; one changed byte, another key, a window that does not match, each caught."""

from __future__ import annotations

import base64
import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.camera_info import CameraFacts
from agent.config import AgentConfig
from agent.delivery.manifest import clip_manifest, manifest_camera, sign_manifest
from agent.identity import DeviceKey
from agent.store import ClipResult, ClipStore
from agent.wire import Manifest
from agent.wire.manifest import ClockFacts, Window
from hub.cli import main
from hub.state import HubHome
from hub.verify import verify_files
from tests.delivery.site import (
    CAMERA,
    delivery_config,
    footage_spec,
    recent,
    record_footage,
    rfc3339,
    wall,
)

SITE = "site-1"


@dataclass
class Evidence:
    clip: Path
    manifest: Path
    key: DeviceKey
    result: ClipResult
    requested: tuple[datetime, datetime]
    config: AgentConfig

    def sign(self, **changes: Any) -> str:
        """A manifest of this clip with `changes` made before signing."""
        return sign_manifest(self.key, self.build().model_copy(update=changes))

    def build(self) -> Manifest:
        camera = self.config.camera(CAMERA)
        assert camera is not None
        return clip_manifest(
            site=SITE,
            request_id="0b5d6c7e-2f51-4c5e-9a7e-6f0a4f3e2d1c",
            case="2026-000123",
            camera=manifest_camera(camera, CameraFacts()),
            requested=self.requested,
            clip=self.result,
            clock=ClockFacts(ntp_synchronized=None),
            issued=int(time.time()),
        )


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    root = tmp_path_factory.mktemp("verify")
    spec = footage_spec(recent(400), 30)
    config = delivery_config(root / "state")
    record_footage(config, root / "media", spec)
    start, end = wall(spec, 100), wall(spec, 300)
    with ClipStore.from_config(config) as store:
        result = store.extract(CAMERA, start, end, root / "clip.mp4")
    key = DeviceKey.generate()
    evidence = Evidence(root / "clip.mp4", root / "manifest.jws", key, result, (start, end), config)
    evidence.manifest.write_text(evidence.sign())
    return evidence


@pytest.fixture
def copies(evidence: Evidence, tmp_path: Path) -> Evidence:
    """The evidence copied to this test's own directory (tests alter files)."""
    clip, manifest = tmp_path / "clip.mp4", tmp_path / "manifest.jws"
    shutil.copy(evidence.clip, clip)
    shutil.copy(evidence.manifest, manifest)
    return Evidence(
        clip, manifest, evidence.key, evidence.result, evidence.requested, evidence.config
    )


def run(home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(["--home", str(home), "verify", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out


def checks(out: str) -> dict[str, str]:
    report = json.loads(out)
    return {c["check"]: c["status"] for c in report["checks"]}


def key_arg(key: DeviceKey) -> str:
    return json.dumps(key.public_jwk)


def test_genuine_evidence_verifies(
    copies: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        tmp_path / "hub",
        capsys,
        str(copies.clip),
        str(copies.manifest),
        "--site-key",
        key_arg(copies.key),
        "--json",
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] and report["site"] == SITE and report["gaps"] == []
    assert checks(out) == {
        "signature": "ok",
        "manifest": "ok",
        "sha256": "ok",
        "size": "ok",
        "media": "ok",
        "window": "ok",
    }
    code, text = run(
        tmp_path / "hub",
        capsys,
        str(copies.clip),
        str(copies.manifest),
        "--site-key",
        key_arg(copies.key),
    )
    assert code == 0 and "verified" in text and "NOT" not in text


def test_the_registered_site_key_is_used(
    copies: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = HubHome(tmp_path / "hub")
    home.trust_site(SITE, copies.key.public_jwk)
    assert run(home.root, capsys, str(copies.clip), str(copies.manifest))[0] == 0
    other = HubHome(tmp_path / "other")
    other.trust_site(SITE, DeviceKey.generate().public_jwk)
    code, out = run(other.root, capsys, str(copies.clip), str(copies.manifest), "--json")
    assert code == 1 and checks(out)["signature"] == "fail"
    code, out = run(tmp_path / "nobody", capsys, str(copies.clip), str(copies.manifest), "--json")
    assert code == 1 and "no device key is registered" in out


def test_one_changed_byte_in_the_clip_fails(
    copies: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(copies.clip.read_bytes())
    data[len(data) // 2] ^= 0x01
    copies.clip.write_bytes(bytes(data))
    code, out = run(
        tmp_path,
        capsys,
        str(copies.clip),
        str(copies.manifest),
        "--site-key",
        key_arg(copies.key),
        "--json",
    )
    assert code == 1
    assert checks(out)["sha256"] == "fail" and checks(out)["size"] == "ok"


def test_a_truncated_clip_fails(
    copies: Evidence, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = copies.clip.read_bytes()
    copies.clip.write_bytes(data[:-1000])
    code, out = run(
        tmp_path,
        capsys,
        str(copies.clip),
        str(copies.manifest),
        "--site-key",
        key_arg(copies.key),
        "--json",
    )
    assert code == 1 and checks(out)["size"] == "fail"


def test_a_manifest_signed_by_another_key_fails(
    copies: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    impostor = DeviceKey.generate()
    copies.manifest.write_text(sign_manifest(impostor, copies.build()))
    code, out = run(
        tmp_path,
        capsys,
        str(copies.clip),
        str(copies.manifest),
        "--site-key",
        key_arg(copies.key),
        "--json",
    )
    assert code == 1 and checks(out) == {"signature": "fail"}


def test_a_manifest_edited_after_signing_fails(
    copies: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, payload, signature = copies.manifest.read_text().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["case"] = "2026-999999"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    copies.manifest.write_text(f"{header}.{forged}.{signature}")
    code, out = run(
        tmp_path,
        capsys,
        str(copies.clip),
        str(copies.manifest),
        "--site-key",
        key_arg(copies.key),
        "--json",
    )
    assert code == 1 and checks(out)["signature"] == "fail"


def test_a_window_the_clip_does_not_cover_fails(copies: Evidence) -> None:
    start, end = copies.requested
    wider = Window(start=start - timedelta(seconds=20), end=end)  # 20 s before the footage
    result = verify_files(
        copies.clip, copies.sign(requested=wider), trusted={}, site_key=copies.key.public_jwk
    )
    assert not result.ok
    [window] = [c for c in result.checks if c.name == "window"]
    assert window.status == "fail" and "does not say why" in window.detail
    # The same shortfall declared as a gap is reported, not failed.
    gap = Window(start=wider.start, end=copies.result.first_frame)
    declared = copies.sign(requested=wider, gaps=[gap])
    result = verify_files(copies.clip, declared, trusted={}, site_key=copies.key.public_jwk)
    assert result.ok
    assert [c.status for c in result.checks if c.name == "gap"] == ["warn"]


def test_a_manifest_whose_window_is_not_the_clips_fails(copies: Evidence) -> None:
    actual = Window(
        start=copies.result.first_frame, end=copies.result.last_frame + timedelta(seconds=30)
    )
    result = verify_files(
        copies.clip, copies.sign(actual=actual), trusted={}, site_key=copies.key.public_jwk
    )
    assert not result.ok
    assert [c.status for c in result.checks if c.name == "media"] == ["fail"]


def test_the_window_asked_for_is_compared(
    copies: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, end = copies.requested
    argv = [str(copies.clip), str(copies.manifest), "--site-key", key_arg(copies.key), "--json"]
    code, out = run(tmp_path, capsys, *argv, "--from", rfc3339(start), "--to", rfc3339(end))
    assert code == 0 and checks(out)["request"] == "ok"
    later = rfc3339(end + timedelta(minutes=1))
    code, out = run(tmp_path, capsys, *argv, "--from", rfc3339(start), "--to", later)
    assert code == 1 and checks(out)["request"] == "fail"


@pytest.mark.parametrize(
    "text",
    ["", "not a jws", "a.b.c", "eyJhbGciOiJub25lIn0.e30."],
    ids=["empty", "words", "junk-parts", "alg-none"],
)
def test_what_is_not_a_manifest_fails(copies: Evidence, text: str) -> None:
    result = verify_files(copies.clip, text, trusted={}, site_key=copies.key.public_jwk)
    assert not result.ok


def test_an_event_is_not_a_manifest(copies: Evidence) -> None:
    event = copies.key.sign({"iss": SITE, "req": "x", "state": "completed", "seq": 1})
    result = verify_files(copies.clip, event, trusted={}, site_key=copies.key.public_jwk)
    assert [c.name for c in result.checks] == ["manifest"] and not result.ok


def test_missing_files_are_usage_errors(
    copies: Evidence, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, capsys, str(tmp_path / "nope.mp4"), str(copies.manifest))[0] == 2
    assert run(tmp_path, capsys, str(copies.clip), str(tmp_path / "nope.jws"))[0] == 2
    assert run(tmp_path, capsys, str(copies.clip), str(copies.manifest), "--from", "now")[0] == 2
