"""The install line `rtcc-hub tokens new` prints (issue 15): it brings the hub's CA when the
hub's HTTPS is under its own, pins it by SHA-256, and fails (non-zero, nothing run as root)
when a download fails. The line working end to end, exactly as printed, is
tests/installer/test_install_piped.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from hub.ca import site_ca
from hub.cli import main as hub_main
from hub.install_line import install_line
from hub.server import update_serve_settings
from hub.state import HubHome
from tests.support.broker import free_port


def _printed(home: HubHome, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    code = hub_main(
        ["--home", str(home.root), "tokens", "new", "--site-name", "Corner Grocery",
         "--location", "35.0844,-106.6504", "--json", *extra]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    line = json.loads(out)["install"]
    assert isinstance(line, str)
    return line


def _sudo_shim(directory: Path) -> Path:
    """A `sudo` that only records that it was reached (nothing may run as root here)."""
    directory.mkdir()
    shim = directory / "sudo"
    shim.write_text(f'#!/bin/sh\necho "$@" > {directory / "ran"}\n')
    shim.chmod(0o755)
    return directory / "ran"


def test_the_line_pins_the_hubs_own_ca_and_passes_it_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = HubHome(tmp_path / "hub")
    update_serve_settings(home, public_url="https://hub.example:8443", site_ca_https=True)
    line = _printed(home, capsys)
    digest = hashlib.sha256(site_ca(home).cert_pem).hexdigest()
    assert line.startswith("curl -fsSLk -o rtcc-hub-ca.pem https://hub.example:8443/ca.pem && ")
    assert f"echo '{digest}  rtcc-hub-ca.pem' | sha256sum -c --quiet && " in line
    assert "curl -fsSL --cacert rtcc-hub-ca.pem -o rtcc-edge-install.sh " in line
    assert (
        "sudo sh rtcc-edge-install.sh --hub https://hub.example:8443 --hub-ca rtcc-hub-ca.pem"
        in line
    )
    assert "| sh " not in line and "| sudo" not in line  # never a pipe into a shell
    # The owner's page on the shop's network by default (approvals from a phone), or as asked.
    assert line.endswith(" --owner-page-lan")
    assert _printed(home, capsys, "--owner-page", "local").endswith(" --owner-page")
    assert "--owner-page" not in _printed(home, capsys, "--owner-page", "off")

    # A publicly trusted certificate: no CA to bring.
    update_serve_settings(home, site_ca_https=False)
    line = _printed(home, capsys)
    assert line.startswith("curl -fsSL -o rtcc-edge-install.sh https://hub.example:8443/install.sh")
    assert "--hub-ca" not in line and "-k" not in line.split()


def test_a_failed_download_fails_the_line_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = HubHome(tmp_path / "hub")
    # Nothing listens there.
    update_serve_settings(home, public_url=f"https://127.0.0.1:{free_port()}", site_ca_https=True)
    ran = _sudo_shim(tmp_path / "bin")
    for line in (_printed(home, capsys), install_line("https://127.0.0.1:9", "t", ca_pem=None)):
        env = {**os.environ, "PATH": f"{ran.parent}:{os.environ['PATH']}"}
        result = subprocess.run(
            ["sh", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0
        assert "curl" in result.stderr  # curl's own words about the failure
        assert not ran.exists()


def test_a_ca_that_does_not_match_the_pin_stops_the_line(tmp_path: Path) -> None:
    # The line as printed for another CA than the one served: sha256sum refuses it.
    served = tmp_path / "served"
    served.mkdir()
    (served / "ca.pem").write_bytes(b"not the hub's CA\n")
    line = install_line("https://hub.example", "t", ca_pem=b"the hub's CA\n")
    ran = _sudo_shim(tmp_path / "bin")
    fake_curl = ran.parent / "curl"
    # A curl that "downloads" the served file, so the pin is what is tested.
    fake_curl.write_text(
        '#!/bin/sh\nout=""\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        f'cp {served / "ca.pem"} "$out"\n'
    )
    fake_curl.chmod(0o755)
    env = {**os.environ, "PATH": f"{ran.parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
    assert not (tmp_path / "rtcc-edge-install.sh").exists()
    assert not ran.exists()
