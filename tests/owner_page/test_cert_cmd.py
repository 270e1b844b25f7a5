"""`rtcc-edge owner cert [--renew]` (what the installer runs) and the page's lines of
`rtcc-edge status`: the address and the fingerprint the owner compares on the phone."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit

from agent.cli import main
from agent.cli.owner_cert_cmd import page_status_lines
from agent.config import load_config
from agent.control import ControlServer
from agent.owner_page.tls import fingerprint
from tests.support.link_service import running_service, site_config, write_site_config

FINGERPRINT = re.compile(r"fingerprint \(SHA-256\): ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths are limited to 108 bytes: keep them short."""
    path = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _config_file(where: Path, **page: object) -> Path:
    config = site_config(where / "state", socket_path=where / "run" / "control.sock")
    path = write_site_config(config, where / "agent.toml")
    if page:
        document = tomlkit.parse(path.read_text())
        document["owner_page"] = page
        path.write_text(tomlkit.dumps(document))
    return path


def test_cert_is_made_kept_and_renewed(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config_file(short_dir, enabled=True, listen="0.0.0.0:8443")
    assert main(["--config", str(path), "owner", "cert"]) == 0
    out = capsys.readouterr().out
    cert = short_dir / "page" / "page.crt"
    assert f"certificate: {cert} made" in out
    match = FINGERPRINT.search(out)
    assert match is not None and match.group(1) == fingerprint(cert)
    assert re.search(r"address: https://[a-z0-9-]+\.local:8443", out)
    assert (short_dir / "page" / "page.key").stat().st_mode & 0o777 == 0o640

    assert main(["--config", str(path), "owner", "cert"]) == 0
    again = capsys.readouterr().out
    assert "kept (still valid" in again and match.group(1) in again

    assert main(["--config", str(path), "owner", "cert", "--renew"]) == 0
    renewed = FINGERPRINT.search(capsys.readouterr().out)
    assert renewed is not None and renewed.group(1) != match.group(1)
    assert renewed.group(1) == fingerprint(cert)


def test_status_lines(short_dir: Path) -> None:
    off = load_config(_config_file(short_dir))
    assert page_status_lines(off) == ["owner's page: off ([owner_page] enabled = true turns it on)"]
    local = load_config(_config_file(short_dir, enabled=True))
    assert page_status_lines(local)[0] == "owner's page: http://127.0.0.1:8443"
    assert "plain HTTP on this machine only" in page_status_lines(local)[1]
    lan = load_config(_config_file(short_dir, enabled=True, listen="0.0.0.0:9443"))
    assert "no certificate at" in page_status_lines(lan)[1]
    assert main(["--config", str(short_dir / "agent.toml"), "owner", "cert"]) == 0
    lines = page_status_lines(lan)
    assert re.fullmatch(r"owner's page: https://[a-z0-9-]+\.local:9443", lines[0])
    assert lines[1] == (
        f"  certificate fingerprint (SHA-256): {fingerprint(short_dir / 'page' / 'page.crt')}"
    )


async def test_status_command_shows_the_page(
    short_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config_file(short_dir, enabled=True, listen="0.0.0.0:8443")
    assert await asyncio.to_thread(main, ["--config", str(path), "owner", "cert"]) == 0
    capsys.readouterr()
    config = load_config(path)
    async with running_service(config) as site:
        server = ControlServer(config.control.socket, site.service, group=None)
        await server.start()
        try:
            assert await asyncio.to_thread(main, ["--config", str(path), "status"]) == 0
        finally:
            await server.close()
    out = capsys.readouterr().out
    assert "owner's page: https://" in out
    assert fingerprint(short_dir / "page" / "page.crt") in out


def test_config_check_refuses_the_lan_without_a_certificate(
    short_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config_file(short_dir, enabled=True, listen="0.0.0.0:8443")
    assert main(["--config", str(path), "config", "check"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "owner_page.listen" in err
    assert "so it is served over HTTPS only" in err and "sudo rtcc-edge owner cert" in err
    assert main(["--config", str(path), "owner", "cert"]) == 0
    capsys.readouterr()
    assert main(["--config", str(path), "config", "check"]) == 0, capsys.readouterr().err
