"""The loader: where it looks, and how it reports files it cannot use (every problem at once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.compat.profiles import (
    PROFILES_ENV,
    ProfileError,
    ProfileSet,
    default_profiles_dir,
    load_profiles,
)
from tests.compat.profiles.samples import (
    PROFILE_FILES,
    PROFILES_DIR,
    REQUIRED_VENDORS,
    minimal_profile,
)


def test_every_file_validates_and_the_required_vendors_are_there(profiles: ProfileSet) -> None:
    ids = {vendor.id for vendor in profiles.vendors}
    assert len(ids) >= 12
    assert ids >= REQUIRED_VENDORS
    assert len(PROFILE_FILES) == len(ids)


def test_default_directory_and_environment_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    assert default_profiles_dir() == PROFILES_DIR
    assert {v.id for v in load_profiles().vendors} >= REQUIRED_VENDORS
    (tmp_path / "acme.toml").write_text(minimal_profile("acme"), encoding="utf-8")
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    assert [v.id for v in load_profiles().vendors] == ["acme"]


def test_problems_from_several_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(minimal_profile("acme"), encoding="utf-8")
    (tmp_path / "bravo.toml").write_text(minimal_profile("bravo"), encoding="utf-8")  # alias taken
    (tmp_path / "charlie.toml").write_text("[broken", encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    problems = caught.value.problems
    assert any("bravo.toml" in p and "also belongs to 'acme'" in p for p in problems)
    assert any("charlie.toml" in p and "cannot read" in p for p in problems)


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not a directory"):
        load_profiles(tmp_path / "nowhere")
    with pytest.raises(ProfileError, match=r"no \*\.toml"):
        load_profiles(tmp_path)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(minimal_profile("acme") + "#" * 600_000, encoding="utf-8")
    with pytest.raises(ProfileError, match="larger than"):
        load_profiles(tmp_path)
