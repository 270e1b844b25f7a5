"""Real camsim cameras for the owner page's tests (the `run_camsim` factory fixture)."""

from tests.support.camsim import run_camsim  # noqa: F401
