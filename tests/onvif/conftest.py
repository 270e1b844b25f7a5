"""Fixtures for the ONVIF tests: camsim cameras on loopback (see tests/support/camsim.py)."""

from tests.support.camsim import run_camsim  # noqa: F401 - a fixture
