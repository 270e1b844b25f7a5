"""The last discovery, kept in the state directory so `rtcc-edge cameras add N` can take a
device by its number from it."""

from __future__ import annotations

from pathlib import Path

from agent.compat.report import DiscoveryReport
from agent.fsutil import atomic_write

CACHE_FILE = "discovery.json"


def cache_path(state_dir: Path) -> Path:
    return state_dir / CACHE_FILE


def save_cache(state_dir: Path, report: DiscoveryReport) -> None:
    """Atomically, so `cameras add` never reads half a file; OSError if it cannot be written."""
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(cache_path(state_dir), report.model_dump_json(indent=2), mode=0o600)


def load_cache(state_dir: Path) -> DiscoveryReport:
    """The last discovery; OSError / ValueError if there is none or it is not readable."""
    return DiscoveryReport.model_validate_json(cache_path(state_dir).read_bytes())
