"""Tests with real users (the service user, the page's user, an owner-group member): a driver
module run as root in a private mount namespace, where it makes those users in a scratch /etc
and runs each part under `setpriv`, then writes what it saw to `result.json`.

    pytestmark = NEEDS_REAL_USERS
    answers = run_driver("tests.control.owner_boundary_driver", work)
"""

from __future__ import annotations

import contextlib
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

REPO = Path(__file__).resolve().parents[2]

NEEDS_REAL_USERS = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None,
    reason="needs root, unshare and setpriv",
)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A directory every user can enter (KEEP=1 keeps it for a look afterwards)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(path, ignore_errors=True)
        else:
            print("kept", path)


def write_site(work: Path) -> None:
    """The site the drivers run: its configuration at work/site/agent.toml."""
    site = work / "site"
    site.mkdir(mode=0o755)
    config = site_config(
        site / "state", socket_path=site / "run" / "control.sock", owner_dir=site / "owner"
    )
    (site / "run").mkdir()
    write_site_config(config, site / "agent.toml").chmod(0o644)


def run_driver(module: str, work: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private",
         sys.executable, "-m", module, str(work)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    answers: dict[str, Any] = json.loads((work / "result.json").read_text())
    return answers
