"""The last discovery, kept in the state directory so `rtcc-edge cameras add N` can take a
device by its number from it, and the owner's page can offer its devices.

Readable by the state directory's group too (mode 0640, the directory's owner and group when
written as root): the owner's page runs as its own user in that group, and the file holds
addresses and models, never a password."""

from __future__ import annotations

import os
from pathlib import Path

from agent.compat.report import DiscoveryReport
from agent.fsutil import atomic_write

CACHE_FILE = "discovery.json"


def cache_path(state_dir: Path) -> Path:
    return state_dir / CACHE_FILE


def save_cache(state_dir: Path, report: DiscoveryReport) -> None:
    """Atomically, so `cameras add` never reads half a file; OSError if it cannot be written."""
    state_dir.mkdir(parents=True, exist_ok=True)
    info = state_dir.stat()
    owner = (info.st_uid, info.st_gid) if os.geteuid() == 0 else None  # `sudo rtcc-edge discover`
    atomic_write(cache_path(state_dir), report.model_dump_json(indent=2), mode=0o640, owner=owner)


def load_cache(state_dir: Path) -> DiscoveryReport:
    """The last discovery; OSError / ValueError if there is none or it is not readable."""
    return DiscoveryReport.model_validate_json(cache_path(state_dir).read_bytes())
