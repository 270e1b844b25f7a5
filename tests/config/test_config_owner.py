"""The configuration the owner may change and the service may only read, with real users (in a
scratch /etc inside a private mount namespace): /etc/rtcc-edge/agent.toml links to
owner/agent.toml, as the installer lays it out. The page's user (in rtcc-edge-owner and
rtcc-edge) replaces it through `replace_config` and the file stays readable by the service;
the service user cannot replace it; an owner-group member who could not keep the service's
group changes nothing; root keeps the file root's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.link_service import site_config, write_site_config

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None,
    reason="needs root, unshare and setpriv",
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def result() -> Iterator[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="rc-cfg-", dir="/tmp"))
    work.chmod(0o755)
    try:
        config = site_config(work / "state", socket_path=work / "run" / "control.sock")
        (work / "state").chmod(0o755)
        (work / "state" / "rtcc-jwks.json").chmod(0o644)
        write_site_config(config, work / "agent.toml")
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private",
             sys.executable, "-m", "tests.config.config_owner_driver", str(work)],
            capture_output=True, text=True, timeout=600, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield json.loads((work / "result.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_owner_changes_the_configuration_the_service_reads(result: dict[str, Any]) -> None:
    assert result["before"] == {"mode": 0o640, "user": "root", "group": "rtcc-edge", "link": False}

    service = result["service_replace"]
    assert service["code"] == 3, service
    assert "Permission denied" in service["err"]

    page = result["page_replace"]
    assert page["code"] == 0, page
    # The page's user cannot give the file to root, but it keeps the group and the mode.
    assert result["after_page"] == {
        "mode": 0o640,
        "user": "rtcc-edge-page",
        "group": "rtcc-edge",
        "link": False,
    }
    assert result["link_after_page"] is True
    read = result["service_read"]
    assert read["code"] == 0, read
    assert read["out"].strip() == "site-1"

    carol = result["carol_replace"]
    assert carol["code"] == 3, carol
    assert "must stay in group rtcc-edge for the agent to read it" in carol["err"]
    assert result["after_carol"]["group"] == "rtcc-edge"

    assert result["root_replace"]["code"] == 0, result["root_replace"]
    assert result["after_root"]["user"] == "rtcc-edge-page"  # root keeps the owner it found
    assert result["after_root"]["group"] == "rtcc-edge"
    text = result["text"]
    assert "# by the page\n" in text and "# root\n" in text
    assert "# svc" not in text and "# carol" not in text
    assert result["leftovers"] == []
