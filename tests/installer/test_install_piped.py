"""The one line itself, exactly as `rtcc-hub tokens new` prints it (CA fetched and pinned, the
script downloaded then run), with the script, the unit and the agent's wheel all downloaded
from a real `rtcc-hub serve` (no checkout on the "site"), into a staging root: the only
stand-in is `sudo` (not installed here; the tests run as root), which adds the staging
options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config
from tests.installer.conftest import base_python, read_manifest
from tests.support.hub_enroll import EnrollHub

pytestmark = pytest.mark.slow


def test_curl_pipe_sh_from_the_hub(hub: EnrollHub, wheel: Path, tmp_path: Path) -> None:
    dist = hub.home.root / "dist"
    dist.mkdir(exist_ok=True)
    shutil.copy(wheel, dist / wheel.name)
    root = tmp_path / "root"
    printed = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(hub.home.root), "tokens", "new",
         "--site-name", "Piped Pizza", "--location", "35.0844,-106.6504", "--json"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    line = json.loads(printed.stdout)["install"]
    assert f"--hub-ca rtcc-hub-ca.pem --token {json.loads(printed.stdout)['token']}" in line
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(
        f'#!/bin/sh\nexec "$@" --root {root} --python {base_python()} --no-discover\n'
    )
    (bin_dir / "sudo").chmod(0o755)
    # Run from an empty directory: nothing of the checkout is at hand.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RTCC_EDGE_ENROLL_TOKEN"}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    result = subprocess.run(
        ["sh", "-c", line], cwd=elsewhere, capture_output=True, text=True, env=env, timeout=900
    )
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    assert result.returncode == 0, result.stderr
    assert f"downloading the agent from {hub.url}" in result.stdout
    (installing,) = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("installing")]
    assert installing.strip().endswith(f"/{wheel.name}")  # the hub's wheel, not a checkout
    assert str(Path(__file__).resolve().parents[2]) not in installing
    config = load_config(root / "etc/rtcc-edge/agent.toml")
    assert config.site.name == "Piped Pizza"
    # The line turns the owner's page on for the shop's network, over HTTPS with its own
    # certificate; with no terminal to ask on, the installer says how to set the password.
    assert config.owner_page.enabled and config.owner_page.listen == "0.0.0.0:8443"
    assert config.owner_page.certificate.is_file()
    assert "sudo rtcc-edge owner passwd" in result.stdout + result.stderr
    unit = (root / "etc/systemd/system/rtcc-edge.service").read_text()
    assert f"ExecStart={root}/opt/rtcc-edge/bin/rtcc-edge --config {root}/etc" in unit
    page_unit = (root / "etc/systemd/system/rtcc-edge-page.service").read_text()
    assert "owner serve" in page_unit  # the hub serves the page's unit too
    version = subprocess.run(
        [str(root / "opt/rtcc-edge/bin/rtcc-edge"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("rtcc-edge ")
    assert any(row[1] == "/opt/rtcc-edge" for row in read_manifest(root))
    # What the line left where it ran: the pinned CA and the script, nothing else.
    assert {p.name for p in elsewhere.iterdir()} == {"rtcc-hub-ca.pem", "rtcc-edge-install.sh"}
