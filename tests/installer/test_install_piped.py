"""The one line itself: `curl -fsSL <hub>/install.sh | sh -s -- --hub <hub> --token T`, with the
script, the unit and the agent's wheel all downloaded from a real `rtcc-hub serve` (no
checkout on the "site"), into a staging root."""

from __future__ import annotations

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
    token = hub.token("Piped Pizza")
    line = (
        f"curl -fsSL --cacert {hub.ca_file} {hub.url}/install.sh"
        f" | sh -s -- --root {root} --hub {hub.url} --hub-ca {hub.ca_file} --token {token}"
        f" --python {base_python()} --no-discover"
    )
    # Run from an empty directory: nothing of the checkout is at hand.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RTCC_EDGE_ENROLL_TOKEN"}
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
    unit = (root / "etc/systemd/system/rtcc-edge.service").read_text()
    assert f"ExecStart={root}/opt/rtcc-edge/bin/rtcc-edge --config {root}/etc" in unit
    version = subprocess.run(
        [str(root / "opt/rtcc-edge/bin/rtcc-edge"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("rtcc-edge ")
    assert any(row[1] == "/opt/rtcc-edge" for row in read_manifest(root))
