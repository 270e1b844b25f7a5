"""Enrollment against a real `rtcc-hub serve` (HTTPS on loopback): the happy path end to end
through `rtcc-edge enroll`, and every refusal (bad, expired, reused token; a hub that is not
ready) leaving the site exactly as it was and the token unspent where it should be."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.cli import main as edge_main
from agent.cli.keys_cmd import device_key_path
from agent.config import config_file_problems, load_config
from agent.enroll import EnrollError, Ownership, enroll
from agent.identity import DeviceKey
from hub.cli import main as hub_main
from hub.keys import read_jwks
from hub.server import update_serve_settings
from hub.state import HubHome
from hub.tokens import Location, TokenStore
from tests.support.hub_enroll import EnrollHub, running_hub, write_agent_config


def _edge(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = edge_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


async def _edge_async(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(edge_main, list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _site_files(config: Path) -> list[Path]:
    return sorted(p for p in config.parent.iterdir() if p.name != config.name)


def _text(path: Path) -> str:
    return path.read_text()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _unlink(path: Path) -> None:
    path.unlink()


def _rename(path: Path, target: Path) -> None:
    path.rename(target)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[EnrollHub]:
    async with running_hub(tmp_path) as running:
        yield running


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_agent_config(tmp_path / "etc" / "agent.toml", tmp_path / "state")


async def test_enroll_happy_path(
    hub: EnrollHub, site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = hub.token("Corner Grocery", location=(35.0844, -106.6504))
    before = _text(site)
    code, out, err = await _edge_async(
        capsys,
        "--config",
        str(site),
        "enroll",
        "--hub",
        hub.url,
        "--token",
        token,
        "--ca",
        str(hub.ca_file),
        "--json",
    )
    assert code == 0, err
    answer = json.loads(out)
    site_id = answer["site"]
    assert site_id.startswith("corner-grocery-")
    assert answer["location"] == {"lat": 35.0844, "lon": -106.6504}

    # The configuration: the owner's lines and comments kept, site id and [rtcc] written.
    text = _text(site)
    for line in before.splitlines():
        if not line.startswith(("id =", "name =")):
            assert line in text.splitlines(), line
    config = load_config(site)
    assert config.site.id == site_id
    assert config.site.name == "Corner Grocery"
    assert config.site.contact == "owner@example.org"
    assert config.rtcc.broker_url == f"mqtts://127.0.0.1:{hub.site_port}"
    assert config.rtcc.issuer == "https://rtcc.test"
    # The hub's own host receives evidence and live video: allowed from enrollment on.
    assert config.policy.allowed_upload_hosts == ["127.0.0.1"]
    assert config.policy.allowed_relay_hosts == ["127.0.0.1"]
    assert config.upload.ca_file == config.rtcc.ca_file  # the hub's HTTPS is from its CA too
    assert config_file_problems(config) == []
    assert _mode(site) == 0o640

    # The files: public ones 0640, the client key 0600, the device key 0600.
    etc = site.parent
    assert {p.name for p in _site_files(site)} == {
        "ca.pem",
        "client.pem",
        "client.key",
        "rtcc-jwks.json",
    }
    for name in ("ca.pem", "client.pem", "rtcc-jwks.json"):
        assert _mode(etc / name) == 0o640, name
    assert _mode(etc / "client.key") == 0o600
    key_path = device_key_path(tmp_path / "state")
    assert _mode(key_path) == 0o600
    device = DeviceKey.load(key_path)
    assert answer["device_kid"] == device.kid

    # The certificate names the site and was issued by the CA the site now trusts.
    cert = x509.load_pem_x509_certificate((etc / "client.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((etc / "ca.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == site_id
    cert.verify_directly_issued_by(ca)
    stored = json.loads((etc / "rtcc-jwks.json").read_text())
    assert stored == read_jwks(hub.home)
    # The site pinned the RTCC's trust root: only sets it signs change the keys accepted.
    assert stored["trust_root"]["kid"] and stored["trust_set"].count(".") == 2

    # The hub registered the device key for the site in the trust store `sites trust` uses,
    # and the token is spent by this device.
    assert hub.home.trusted_sites()[site_id].kid == device.kid
    (record,) = TokenStore(hub.home).records()
    assert record.used_at is not None and record.device_kid == device.kid


async def test_bad_token_refused_and_nothing_written(
    hub: EnrollHub, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _text(site)
    for token in ("rtcc1_" + "A" * 43, "hello", "x" * 150):
        code, _, err = await _edge_async(
            capsys,
            "--config",
            str(site),
            "enroll",
            "--hub",
            hub.url,
            "--token",
            token,
            "--ca",
            str(hub.ca_file),
        )
        assert code == 1
        assert "enrollment failed: the hub refused:" in err
        assert "token" in err and ("not known" in err or "not an enrollment token" in err)
    assert _text(site) == before
    assert _site_files(site) == []
    assert hub.home.trusted_sites() == {}


async def test_expired_token_refused(
    hub: EnrollHub, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token, _ = TokenStore(hub.home).create(
        site_name="Late Owner",
        location=Location(lat=35.0, lon=-106.0),
        ttl=timedelta(minutes=5),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    code, _, err = await _edge_async(
        capsys, "--config", str(site), "enroll", "--hub", hub.url, "--token", token, "--ca",
        str(hub.ca_file),
    )  # fmt: skip
    assert code == 1
    assert "this enrollment token expired at" in err and "ask the RTCC for a new one" in err
    assert _site_files(site) == []
    (record,) = TokenStore(hub.home).records()
    assert record.used_at is None


async def test_reused_token_refused_for_another_device(
    hub: EnrollHub, site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = hub.token()
    args = ("enroll", "--hub", hub.url, "--token", token, "--ca", str(hub.ca_file))
    code, _, err = await _edge_async(capsys, "--config", str(site), *args)
    assert code == 0, err
    first = load_config(site).site.id
    first_kid = hub.home.trusted_sites()[first].kid

    other = write_agent_config(tmp_path / "other" / "agent.toml", tmp_path / "other-state")
    before = _text(other)
    code, _, err = await _edge_async(capsys, "--config", str(other), *args)
    assert code == 1
    assert "this enrollment token was already used at" in err and first in err
    assert _text(other) == before
    assert _site_files(other) == []
    # The first site's registration is untouched.
    assert hub.home.trusted_sites()[first].kid == first_kid


async def test_same_device_may_retry_when_its_answer_was_lost(
    hub: EnrollHub, site: Path, tmp_path: Path
) -> None:
    token = hub.token()
    before = _text(site)
    first = await enroll(
        site, hub_url=hub.url, token=token, device_key_at=device_key_path, ca_file=hub.ca_file
    )
    # The answer never arrived: the site is as it was, except for its device key.
    _write(site, before)
    for name in ("ca.pem", "client.pem", "client.key", "rtcc-jwks.json"):
        _unlink(site.parent / name)
    again = await enroll(
        site, hub_url=hub.url, token=token, device_key_at=device_key_path, ca_file=hub.ca_file
    )
    assert again.site_id == first.site_id
    assert again.device_kid == first.device_kid
    assert load_config(site).site.id == first.site_id


async def test_already_enrolled_needs_force(
    hub: EnrollHub, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await enroll(
        site, hub_url=hub.url, token=hub.token(), device_key_at=device_key_path,
        ca_file=hub.ca_file,
    )  # fmt: skip
    enrolled = _text(site)
    token = hub.token("Second Name")
    args = ("enroll", "--hub", hub.url, "--token", token, "--ca", str(hub.ca_file))
    code, _, err = await _edge_async(capsys, "--config", str(site), *args)
    assert code == 2
    assert "already enrolled as" in err and "--force" in err
    assert _text(site) == enrolled
    code, _, err = await _edge_async(capsys, "--config", str(site), *args, "--force")
    assert code == 0, err
    assert load_config(site).site.name == "Second Name"
    # [rtcc] replaced, not duplicated.
    assert _text(site).count("[rtcc]") == 1


async def test_hub_not_ready_keeps_the_token(hub: EnrollHub, site: Path) -> None:
    token = hub.token()
    (hub.home.root / "serve.toml").unlink()
    update_serve_settings(hub.home, public_url=hub.url)
    with pytest.raises(EnrollError, match="the hub cannot enroll yet: it needs a broker"):
        await enroll(
            site, hub_url=hub.url, token=token, device_key_at=device_key_path, ca_file=hub.ca_file
        )
    (record,) = TokenStore(hub.home).records()
    assert record.used_at is None
    assert _site_files(site) == []


async def test_untrusted_hub_certificate(hub: EnrollHub, site: Path) -> None:
    token = hub.token()
    with pytest.raises(EnrollError, match=r"certificate this device does not trust.*--ca"):
        await enroll(site, hub_url=hub.url, token=token, device_key_at=device_key_path)
    (record,) = TokenStore(hub.home).records()
    assert record.used_at is None


async def test_unreachable_hub(site: Path, tmp_path: Path) -> None:
    from tests.support.broker import free_port

    with pytest.raises(EnrollError, match=r"cannot reach the hub at https://127\.0\.0\.1:"):
        await enroll(
            site,
            hub_url=f"https://127.0.0.1:{free_port()}",
            token="rtcc1_" + "A" * 43,
            device_key_at=device_key_path,
        )
    assert _site_files(site) == []


async def test_plain_http_to_a_remote_hub_is_refused(site: Path) -> None:
    with pytest.raises(EnrollError, match="must be reached over https"):
        await enroll(
            site, hub_url="http://hub.example.org", token="t", device_key_at=device_key_path
        )


def test_token_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_agent_config(tmp_path / "etc" / "agent.toml", tmp_path / "state")
    code, _, err = _edge(capsys, "--config", str(config), "enroll", "--hub", "https://h.test")
    assert code == 2 and "no token" in err
    missing = tmp_path / "nope"
    code, _, err = _edge(
        capsys, "--config", str(config), "enroll", "--hub", "https://h.test",
        "--token-file", str(missing),
    )  # fmt: skip
    assert code == 2 and "cannot read" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to the service user needs root")
async def test_files_owned_as_the_service_needs(hub: EnrollHub, site: Path, tmp_path: Path) -> None:
    import pwd

    service = pwd.getpwnam("nobody")
    who = Ownership(service.pw_uid, service.pw_gid)
    await enroll(
        site, hub_url=hub.url, token=hub.token(), device_key_at=device_key_path,
        ca_file=hub.ca_file, owner=who,
    )  # fmt: skip
    etc = site.parent
    for name in ("ca.pem", "client.pem", "rtcc-jwks.json"):
        stat = (etc / name).stat()
        assert (stat.st_uid, stat.st_gid) == (0, service.pw_gid), name
    key = (etc / "client.key").stat()
    assert (key.st_uid, key.st_gid) == (service.pw_uid, service.pw_gid)
    device = device_key_path(tmp_path / "state").stat()
    assert device.st_uid == service.pw_uid


async def test_rotating_the_device_key_keeps_the_site(
    hub: EnrollHub, site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/operations.md's key rotation: a token for the same site, a new device key,
    `enroll --force`: same site id, the new key registered, the old one no longer trusted."""
    first = await enroll(
        site, hub_url=hub.url, token=hub.token(), device_key_at=device_key_path,
        ca_file=hub.ca_file,
    )  # fmt: skip
    old_key = device_key_path(tmp_path / "state")
    _rename(old_key, old_key.with_name("device.key.retired"))
    code = await asyncio.to_thread(
        hub_main,
        ["--home", str(hub.home.root), "tokens", "new", "--site", first.site_id, "--json"],
    )
    assert code == 0
    token = json.loads(capsys.readouterr().out)["token"]
    code, _, err = await _edge_async(
        capsys, "--config", str(site), "enroll", "--hub", hub.url, "--token", token, "--ca",
        str(hub.ca_file), "--force",
    )  # fmt: skip
    assert code == 0, err
    assert load_config(site).site.id == first.site_id
    new_kid = DeviceKey.load(old_key).kid
    assert new_kid != first.device_kid
    assert hub.home.trusted_sites()[first.site_id].kid == new_kid
    names = {r.site_name for r in TokenStore(hub.home).records() if r.site_id == first.site_id}
    assert names == {"Corner Grocery"}


def test_token_for_an_unknown_site_is_refused(tmp_path: Path) -> None:
    home = HubHome(tmp_path / "hub")
    with pytest.raises(ValueError, match="not a site this hub knows"):
        TokenStore(home).create(
            site_name="X", location=Location(lat=0, lon=0), site_id="never-enrolled"
        )


async def test_enrolling_through_the_installers_link(hub: EnrollHub, tmp_path: Path) -> None:
    """/etc/rtcc-edge/agent.toml links to owner/agent.toml (which the owner's group may
    replace): the configuration is edited where it lives and stays linked, while the
    certificates and the client key go beside the link, out of the owner directory."""
    etc = tmp_path / "linked"
    real = write_agent_config(etc / "owner" / "agent.toml", tmp_path / "state")
    link = etc / "agent.toml"
    link.symlink_to("owner/agent.toml")
    result = await enroll(
        link, hub_url=hub.url, token=hub.token(), device_key_at=device_key_path,
        ca_file=hub.ca_file,
    )  # fmt: skip
    assert link.is_symlink() and link.resolve() == real.resolve()
    config = load_config(link)
    assert config.rtcc.broker_url is not None
    for name in ("ca.pem", "client.pem", "client.key", "rtcc-jwks.json"):
        assert (etc / name).is_file(), name
        assert not (etc / "owner" / name).exists(), name
    assert config.rtcc.key_file == etc / "client.key"
    assert config.owner_dir == etc / "owner"
    assert config_file_problems(config) == []
    assert result.config_path == real.resolve()
