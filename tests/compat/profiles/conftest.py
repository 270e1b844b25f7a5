"""The shipped firmware profiles, loaded once per test module."""

from __future__ import annotations

import pytest

from agent.compat.profiles import ProfileSet, load_profiles
from tests.compat.profiles.samples import PROFILES_DIR


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    return load_profiles(PROFILES_DIR)
