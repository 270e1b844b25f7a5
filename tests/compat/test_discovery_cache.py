"""The last discovery is readable by the state directory's group (the owner's page's user is
in it), owned as the directory is even when `sudo rtcc-edge discover` wrote it, and read back
as it was saved."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.compat.discovery_cache import cache_path, load_cache, save_cache
from agent.compat.report import DiscoveredCamera, DiscoveryReport

NOBODY = 65534


def _report() -> DiscoveryReport:
    camera = DiscoveredCamera(
        index=1,
        host="192.168.1.64",
        port=80,
        device_url="http://192.168.1.64/onvif/device_service",
        found_by=["multicast"],
    )
    return DiscoveryReport(
        started_at=datetime.now(UTC),
        duration_s=1.0,
        interfaces=[],
        scanned=[],
        hosts_scanned=0,
        ws_port=3702,
        sweep_ports=[80],
        cameras=[camera],
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_written_by_root_for_the_state_directory_group(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    os.chown(state, NOBODY, NOBODY)
    save_cache(state, _report())
    info = cache_path(state).stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == (NOBODY, NOBODY)
    assert load_cache(state).cameras[0].device_url.startswith("http://192.168.1.64")
