"""`rtcc-edge doctor` on a whole site: real mosquitto, real camsim cameras, a real disk."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

from agent.config import load_config
from agent.secretbox import SecretBox
from tests.doctor.site_setup import (
    CAMERA_PASSWORD,
    SITE,
    checks_of,
    member_bytes,
    run_json,
    site_config,
)
from tests.support import tmpfs
from tests.support.broker import MosquittoBroker
from tests.support.camsim import CamsimRun


def test_the_whole_site_and_a_bundle_without_secrets(
    tmp_path: Path, mqtt: MosquittoBroker, cams: CamsimRun
) -> None:
    config = site_config(tmp_path, mqtt=mqtt, cams=cams)
    bundle = tmp_path / "support.tar.gz"
    status, report = run_json("--config", str(config), "doctor", "--json", "--bundle", str(bundle))
    assert report["kind"] == "doctor" and report["site_id"] == SITE
    site = checks_of(report)
    assert list(site) == ["config", "time_sync", "store", "broker", "site_retention"]
    # The RTSP-only camera keeps its password inside its URL: said, and how to fix it.
    assert site["config"]["status"] == "warn"
    assert "rtsp_url" in site["config"]["reason"] and "in clear" in site["config"]["reason"]
    assert site["store"]["status"] == "pass"
    assert site["broker"]["status"] == "pass", site["broker"]
    assert "MQTT login tested" in site["broker"]["reason"]
    assert site["time_sync"]["status"] in ("pass", "warn", "fail")
    # The budget is 2 TB; what the verdict says depends on this disk's free space.
    assert "for 3 camera(s)" in site["site_retention"]["reason"]
    cameras = {c["target"]: c for c in report["cameras"]}
    assert set(cameras) == {"front", "yard", "stream-only"}
    front, yard, stream_only = cameras["front"], cameras["yard"], cameras["stream-only"]
    assert checks_of(front)["onvif"]["status"] == "pass"
    assert checks_of(yard)["clock"]["status"] == "fail"  # budget persona: 437 s ahead
    assert checks_of(yard)["resolution"]["status"] == "fail"  # 720p
    assert checks_of(stream_only)["onvif"]["status"] == "skip"
    assert checks_of(stream_only)["streaming"]["status"] == "pass"
    assert stream_only["stream"]["url"] == cams["front"].rtsp_url("sub")
    assert status == 1  # yard fails

    with tarfile.open(bundle) as tar:
        names = sorted(m.name for m in tar.getmembers())
        texts = {m.name: member_bytes(tar, m).decode() for m in tar.getmembers()}
    assert names == [
        f"rtcc-edge-support/{n}"
        for n in ("README.txt", "agent.toml", "logs.txt", "report.json", "versions.json")
    ]
    raw = bundle.read_bytes()
    encrypted = load_config(config).cameras[0].secret
    assert encrypted is not None
    for secret in (CAMERA_PASSWORD, encrypted.get_secret_value()):
        assert secret.encode() not in raw
        for name, text in texts.items():
            assert secret not in text, name
    redacted = texts["rtcc-edge-support/agent.toml"]
    assert "# the owner's own notes" in redacted and 'secret = "[redacted]"' in redacted
    assert str(mqtt.ca_file) in redacted  # key paths stay, their contents never go in
    assert "BEGIN" not in "".join(texts.values())
    assert json.loads(texts["rtcc-edge-support/report.json"])["kind"] == "doctor"
    assert bundle.stat().st_mode & 0o777 == 0o600


def test_a_fresh_install_is_told_which_setting_to_change_and_to_what(
    tmp_path: Path, cams: CamsimRun
) -> None:
    """Issue 11 item 13: the default budget (50 GB) cannot hold 48 h of a 1080p camera at
    4 Mbit/s; doctor names store.max_bytes and the value that does, and that value passes."""
    with tmpfs.small_disk(tmp_path, size="500g", mode="0755", name="disk") as disk:
        state = disk / "state"
        state.mkdir()
        secret = SecretBox.load_or_create(state).encrypt(CAMERA_PASSWORD)
        front = cams["front"]
        base = [
            f'state_dir = "{state}"',
            "[site]",
            f'id = "{SITE}"',
            'name = "Fresh Install Grocery"',
        ]
        camera_lines = [
            "[[cameras]]",
            'id = "front"',
            'name = "Front"',
            f'onvif_url = "{front.onvif_url}"',
            f'username = "{front.username}"',
            f'secret = "{secret}"',
        ]
        path = tmp_path / "agent.toml"
        path.write_text("\n".join(base + camera_lines) + "\n")
        _, report = run_json("--config", str(path), "doctor", "--json")
        verdict = checks_of(report)["site_retention"]
        assert verdict["status"] == "fail", verdict
        remedy = " ".join(str(verdict["remedy"]).split())
        print(verdict["reason"], remedy)
        found = re.search(
            r'Set store\.max_bytes = "(\d+)GB" in the configuration \(now 50GB\)', remedy
        )
        assert found, remedy
        assert "the disk has room for it" in remedy
        # 48 h at about 4 Mbit/s is 86 GB; with 10 % to spare, about 95 GB.
        assert 85 <= int(found.group(1)) <= 110
        path.write_text(
            "\n".join([*base, "[store]", f'max_bytes = "{found.group(1)}GB"', *camera_lines]) + "\n"
        )
        _, report = run_json("--config", str(path), "doctor", "--json")
        assert checks_of(report)["site_retention"]["status"] != "fail", checks_of(report)
