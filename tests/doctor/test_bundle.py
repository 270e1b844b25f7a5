"""The support bundle never holds a secret, whatever form it takes in the configuration."""

from __future__ import annotations

import tarfile
from pathlib import Path
from urllib.parse import quote, quote_plus

from agent.doctor.bundle import redact_config_text
from tests.doctor.site_setup import (
    BROKER_PASSWORD,
    checks_of,
    member_bytes,
    run_json,
    site_config,
)
from tests.support.broker import MosquittoBroker
from tests.support.camsim import CamsimRun


def test_a_broker_password_never_reaches_the_bundle(tmp_path: Path, mqtt: MosquittoBroker) -> None:
    config = site_config(tmp_path, mqtt=mqtt, password_login=True)
    bundle = tmp_path / "b.tgz"
    status, report = run_json("--config", str(config), "doctor", "--json", "--bundle", str(bundle))
    assert checks_of(report)["broker"]["status"] == "pass"
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            data = member_bytes(tar, member)
            assert BROKER_PASSWORD.encode() not in data, member.name
    assert status in (0, 1)


def test_an_invalid_configuration(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[site]\nid = "Bad Id"\npassword = "hunter22"\n[[cameras]\n')
    bundle = tmp_path / "b.tgz"
    status, report = run_json("--config", str(config), "doctor", "--json", "--bundle", str(bundle))
    assert status == 1
    assert checks_of(report)["config"]["status"] == "fail" and report["cameras"] == []
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("rtcc-edge-support/agent.toml")
        assert member is not None
        text = member.read().decode()
    assert "hunter22" not in text and "password = [redacted]" in text


def test_redaction_keeps_comments_and_drops_secrets() -> None:
    text = (
        '# keep me\n[rtcc]\npassword = "p4ss"\n[[cameras]]\nid = "a"\n'
        'secret = "enc:v1:abc"\nrtsp_url = "rtsp://u:hunter2@10.0.0.1/x"\n'
    )
    out = redact_config_text(text, ["hunter2"])
    assert "# keep me" in out and "p4ss" not in out and "enc:v1" not in out
    assert "hunter2" not in out and 'id = "a"' in out


QUERY_PASSWORD = "Qry-Secret#5521"


def test_passwords_in_camera_url_queries_never_reach_the_bundle(
    tmp_path: Path, cams: CamsimRun
) -> None:
    """Issue 12 item 7: cheap cameras take `?user=…&password=…`; the bundle's agent.toml and
    report.json (and every other member) must hold neither that password nor one in a URL's
    userinfo, in any encoding."""
    front = cams["front"]
    config = site_config(tmp_path)
    encoded = quote(QUERY_PASSWORD, safe="")
    with config.open("a") as file:
        for n, url in enumerate(
            (
                f"{front.rtsp_url('main')}?user=admin&password={encoded}",
                f"{front.rtsp_url('sub')}?usr=admin&pwd={quote_plus(QUERY_PASSWORD)}#token={encoded}",
                front.rtsp_url("main").replace("rtsp://", f"rtsp://admin:{encoded}@"),
            )
        ):
            file.write(f'[[cameras]]\nid = "cheap-{n}"\nname = "Cheap {n}"\nrtsp_url = "{url}"\n')
    bundle = tmp_path / "b.tgz"
    status, report = run_json("--config", str(config), "doctor", "--json", "--bundle", str(bundle))
    assert {c["target"] for c in report["cameras"]} == {"cheap-0", "cheap-1", "cheap-2"}
    with tarfile.open(bundle) as tar:
        texts = {m.name: member_bytes(tar, m).decode() for m in tar.getmembers()}
    for form in (QUERY_PASSWORD, encoded, quote_plus(QUERY_PASSWORD)):
        for name, text in texts.items():
            assert form not in text, name
    agent_toml = texts["rtcc-edge-support/agent.toml"]
    assert "?user=admin&password=[redacted]" in agent_toml
    assert "pwd=[redacted]#token=[redacted]" in agent_toml
    assert "rtsp://admin:[redacted]@" in agent_toml
    assert "password=[redacted]" in texts["rtcc-edge-support/report.json"]
    assert status in (0, 1)
