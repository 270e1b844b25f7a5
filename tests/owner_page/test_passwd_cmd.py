"""`rtcc-edge owner passwd --stdin` writes the page's password hash to the owner directory."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agent.cli import main
from agent.owner_page.password import password_path, verify
from tests.support.link_service import site_config, write_site_config


def test_passwd_sets_a_hash_the_page_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_config(tmp_path / "state")
    path = write_site_config(config, tmp_path / "agent.toml")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long owner password\n"))
    assert main(["--config", str(path), "owner", "passwd", "--stdin"]) == 0
    stored = password_path(config.owner_dir)
    assert stored.read_text().startswith("$argon2id$")
    assert "a long owner password" not in stored.read_text()
    assert verify(config.owner_dir, "a long owner password")
    assert not verify(config.owner_dir, "another password")


def test_passwd_refuses_a_short_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_config(tmp_path / "state")
    path = write_site_config(config, tmp_path / "agent.toml")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--config", str(path), "owner", "passwd", "--stdin"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    assert not password_path(config.owner_dir).exists()
