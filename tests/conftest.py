"""Session-wide test set-up. Subsystem fixtures live in tests/<package>/conftest.py and in
tests/support/ (real mosquitto, camsim cameras, ffprobe)."""

from __future__ import annotations

from agent.log import configure_logging

# Configure logging before anything imports `onvif` (it calls logging.basicConfig on import).
configure_logging("info", fmt="console")
