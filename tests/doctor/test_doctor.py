"""`rtcc-edge doctor` against a real mosquitto (TLS, client certificates, ACL) and real camsim
cameras; the support bundle never holds a secret."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from pydantic import SecretStr

from agent.cli import main
from agent.clock import clock_sync
from agent.config import load_config
from agent.doctor.bundle import redact_config_text
from agent.doctor.checks import broker_check, store_check, time_sync_check
from agent.secretbox import SecretBox
from tests.support import tmpfs
from tests.support.broker import MosquittoBroker, next_message, running_broker
from tests.support.camsim import CamsimRun, camera, run_cameras

SITE = "site-doctor"
CAMERA_PASSWORD = "Cam-Secret-4417"
BROKER_PASSWORD = "Broker-Secret-9923"


@pytest.fixture(scope="module")
def mqtt() -> Iterator[MosquittoBroker]:
    with running_broker() as running:
        yield running


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="front", host="127.0.0.30", password=CAMERA_PASSWORD),
        camera("budget", id="yard", host="127.0.0.31", password=CAMERA_PASSWORD),
    ) as run:
        yield run


def site_config(
    tmp_path: Path,
    *,
    mqtt: MosquittoBroker | None = None,
    cams: CamsimRun | None = None,
    password_login: bool = False,
    store: str = "",
) -> Path:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    lines = [
        "# the owner's own notes",
        f'state_dir = "{state}"',
        "[site]",
        f'id = "{SITE}"',
        'name = "Doctor Test Grocery"',
        "[store]",
        'max_bytes = "2000GB"',
        'min_free = "1GB"',
        store,
        # Its own control socket: a daemon of another test on the default path would make the
        # broker check skip the MQTT login.
        "[control]",
        f'socket = "{state}/control.sock"',
    ]
    if mqtt is not None:
        jwks = tmp_path / "jwks.json"
        jwks.write_text('{"keys": []}')
        lines += ["[rtcc]", f'ca_file = "{mqtt.ca_file}"', 'issuer = "rtcc-test"']
        lines.append(f'jwks_file = "{jwks}"')
        if password_login:
            mqtt.add_password_user(SITE, BROKER_PASSWORD)
            lines += [
                f'broker_url = "{mqtt.url(password=True)}"',
                f'username = "{SITE}"',
                f'password = "{BROKER_PASSWORD}"',
            ]
        else:
            cert, key = mqtt.issue_client_cert(SITE)
            lines += [
                f'broker_url = "{mqtt.url()}"',
                f'cert_file = "{cert}"',
                f'key_file = "{key}"',
            ]
    if cams is not None:
        secret = SecretBox.load_or_create(state).encrypt(CAMERA_PASSWORD)
        for cam in cams:
            lines += [
                "[[cameras]]",
                f'id = "{cam.id}"',
                f'name = "{cam.id}"',
                f'onvif_url = "{cam.onvif_url}"',
                f'username = "{cam.username}"',
                f'secret = "{secret}"',
            ]
        front = cams["front"]
        lines += [
            "[[cameras]]",
            'id = "stream-only"',
            'name = "RTSP only"',
            # Credentials in the URL: a habit the bundle must not leak either.
            f'rtsp_url = "{front.rtsp_url("sub", credentials=True)}"',
        ]
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_json(*argv: str) -> tuple[int, dict[str, object]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    return status, json.loads(out.getvalue())


def checks_of(report: dict[str, object]) -> dict[str, dict[str, str]]:
    return {c["id"]: c for c in report["checks"]}  # type: ignore[index, union-attr]


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
    cameras = {c["target"]: c for c in report["cameras"]}  # type: ignore[union-attr]
    assert set(cameras) == {"front", "yard", "stream-only"}
    front, yard, stream_only = cameras["front"], cameras["yard"], cameras["stream-only"]
    assert checks_of(front)["onvif"]["status"] == "pass"
    assert checks_of(yard)["clock"]["status"] == "fail"  # budget persona: 437 s ahead
    assert checks_of(yard)["resolution"]["status"] == "fail"  # 720p
    assert checks_of(stream_only)["onvif"]["status"] == "skip"
    assert checks_of(stream_only)["streaming"]["status"] == "pass"
    assert stream_only["stream"]["url"] == cams["front"].rtsp_url("sub")  # type: ignore[index]
    assert status == 1  # yard fails

    with tarfile.open(bundle) as tar:
        names = sorted(m.name for m in tar.getmembers())
        texts = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
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


def test_a_broker_password_never_reaches_the_bundle(tmp_path: Path, mqtt: MosquittoBroker) -> None:
    config = site_config(tmp_path, mqtt=mqtt, password_login=True)
    bundle = tmp_path / "b.tgz"
    status, report = run_json("--config", str(config), "doctor", "--json", "--bundle", str(bundle))
    assert checks_of(report)["broker"]["status"] == "pass"
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            assert BROKER_PASSWORD.encode() not in data, member.name
    assert status in (0, 1)


def test_the_broker_check_leaves_queued_requests_for_the_daemon(
    tmp_path: Path, mqtt: MosquittoBroker
) -> None:
    config = load_config(site_config(tmp_path, mqtt=mqtt))
    topic = f"rtcc/v1/sites/{SITE}/req"

    async def scenario() -> bytes:
        # The site's persistent session exists (the daemon ran once) and the daemon is down.
        async with mqtt.client(SITE, identifier=SITE, clean_session=False) as site:
            await site.subscribe(topic, qos=1)
        async with mqtt.client() as hub:
            await hub.publish(topic, b"queued-request", qos=1)
        result = await broker_check(config)
        assert result.status == "pass" and "MQTT login tested" in result.reason
        async with mqtt.client(SITE, identifier=SITE, clean_session=False) as site:
            message = await next_message(site)
        return bytes(message.payload)

    assert asyncio.run(scenario()) == b"queued-request"


def test_broker_failures_are_named(tmp_path: Path, mqtt: MosquittoBroker) -> None:
    good = load_config(site_config(tmp_path, mqtt=mqtt))
    plain = tmp_path / "plain"
    plain.mkdir()
    not_enrolled = load_config(site_config(plain))
    assert asyncio.run(broker_check(not_enrolled)).status == "warn"

    closed = good.model_copy(
        update={"rtcc": good.rtcc.model_copy(update={"broker_url": "mqtts://127.0.0.1:1"})}
    )
    refused = asyncio.run(broker_check(closed))
    assert refused.status == "fail" and "Cannot connect" in refused.reason

    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(Path(good.rtcc.cert_file or "").read_bytes())  # not the mqtt's CA
    wrong_ca = good.model_copy(update={"rtcc": good.rtcc.model_copy(update={"ca_file": other_ca})})
    tls = asyncio.run(broker_check(wrong_ca))
    assert tls.status == "fail" and "TLS" in tls.reason

    wrong_password = load_config(site_config(tmp_path, mqtt=mqtt, password_login=True))
    bad = wrong_password.model_copy(
        update={"rtcc": wrong_password.rtcc.model_copy(update={"password": SecretStr("nope")})}
    )
    login = asyncio.run(broker_check(bad))
    assert login.status == "fail" and "refused the login" in login.reason


def test_store_checks(tmp_path: Path) -> None:
    ok = load_config(site_config(tmp_path))
    assert store_check(ok).status == "pass"
    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = load_config(site_config(tmp_path, store=f'path = "{blocker}/store"'))
    result = store_check(unwritable)
    assert result.status == "fail" and "not writable" in result.reason
    full = ok.model_copy(update={"store": ok.store.model_copy(update={"min_free": 10**18})})
    assert store_check(full).status == "fail"


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


def test_the_host_clock_without_timedatectl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = time_sync_check()
    assert result.status in ("pass", "fail", "warn")
    assert "adjtimex" in result.reason or result.reason.startswith("Unknown")


def test_doctor_and_the_manifests_read_the_same_clock() -> None:
    """Issue 13: the clock-sync check existed twice and the two could disagree; doctor now says
    what `agent.clock` (status messages, clip manifests) says."""
    sync = clock_sync()
    result = time_sync_check()
    expected = {True: "pass", False: "fail", None: "warn"}[sync.synchronized]
    assert result.status == expected
    if sync.source == "adjtimex":
        assert "adjtimex" in result.reason


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
    assert {c["target"] for c in report["cameras"]} == {"cheap-0", "cheap-1", "cheap-2"}  # type: ignore[union-attr]
    with tarfile.open(bundle) as tar:
        texts = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    for form in (QUERY_PASSWORD, encoded, quote_plus(QUERY_PASSWORD)):
        for name, text in texts.items():
            assert form not in text, name
    agent_toml = texts["rtcc-edge-support/agent.toml"]
    assert "?user=admin&password=[redacted]" in agent_toml
    assert "pwd=[redacted]#token=[redacted]" in agent_toml
    assert "rtsp://admin:[redacted]@" in agent_toml
    assert "password=[redacted]" in texts["rtcc-edge-support/report.json"]
    assert status in (0, 1)


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
