"""Session-wide test set-up. Subsystem fixtures live in tests/<package>/conftest.py and in
tests/support/ (real mosquitto, camsim cameras, ffprobe)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.log import configure_logging

# Configure logging before anything imports `onvif` (it calls logging.basicConfig on import).
configure_logging("info", fmt="console")


def _let_other_users_reach_the_checkout() -> None:
    """Some tests run the CLI or a daemon as another user (the service user, an owner, nobody)
    from this checkout's virtualenv. A checkout under a private directory (`mktemp -d` is 0700)
    would stop them at its parent: give the directories above it search permission (x only:
    nothing becomes listable or readable that was not)."""
    root = Path(__file__).resolve().parent.parent
    for directory in (root, *root.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH and os.geteuid() == directory.stat().st_uid:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


_let_other_users_reach_the_checkout()
