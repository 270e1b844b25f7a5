from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.secretbox import PREFIX, SecretBox, SecretError, reveal


def test_round_trip_and_key_mode(tmp_path: Path) -> None:
    box = SecretBox.load_or_create(tmp_path)
    token = box.encrypt("s3cret pässword")
    assert token.startswith(PREFIX) and "s3cret" not in token
    assert SecretBox.load(tmp_path).decrypt(token) == "s3cret pässword"
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert reveal(token, tmp_path) == "s3cret pässword"
    assert reveal("plain", tmp_path) == "plain"
    assert reveal(None, tmp_path) is None


def test_other_device_key_refused(tmp_path: Path) -> None:
    token = SecretBox.load_or_create(tmp_path / "a").encrypt("x")
    with pytest.raises(SecretError, match="does not match"):
        SecretBox.load_or_create(tmp_path / "b").decrypt(token)


@given(st.text(max_size=80))
def test_garbage_is_a_clear_error(text: str) -> None:
    # Random text is never a valid ciphertext under this key: always the one clear error.
    with pytest.raises(SecretError):
        SecretBox(b"k" * 32).decrypt(PREFIX + text)


def test_a_key_made_by_root_belongs_to_the_state_directory_owner(tmp_path: Path) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)  # nobody: stands for the daemon's own user
    SecretBox.load_or_create(state)
    key = (state / "secret.key").stat()
    assert (key.st_uid, key.st_gid) == (65534, 65534)
    assert stat.S_IMODE(key.st_mode) == 0o600
