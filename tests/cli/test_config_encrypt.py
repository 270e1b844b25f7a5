"""`rtcc-edge config encrypt`: a password for the configuration, encrypted with the site's key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agent.cli import main
from agent.secretbox import SecretBox


def config_file(tmp_path: Path, state_dir: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'state_dir = "{state_dir}"\n[site]\nid = "site-1"\nname = "Corner Grocery"\n')
    return path


def test_encrypts_what_stdin_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    config = config_file(tmp_path, state)
    monkeypatch.setattr("sys.stdin", io.StringIO("mail secret\n"))
    assert main(["--config", str(config), "config", "encrypt"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("enc:v1:") and "mail secret" not in token
    assert SecretBox.load(state).decrypt(token) == "mail secret"


def test_an_empty_password_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file(tmp_path, tmp_path / "state")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["--config", str(config), "config", "encrypt"]) == 2
    assert "empty" in capsys.readouterr().err
