"""`rtcc-edge keys show`: the device's public key, made on first use, never the private half."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from agent.cli import main
from agent.identity import DeviceKey, jwk_thumbprint


def config_file(tmp_path: Path, state_dir: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'state_dir = "{state_dir}"\n[site]\nid = "site-1"\nname = "Corner Grocery"\n')
    return path


def test_show_creates_the_key_once_and_prints_its_public_jwk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    config = config_file(tmp_path, state)
    assert main(["--config", str(config), "keys", "show", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    key_file = state / "device.key"
    assert first["created"] is True and first["path"] == str(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "d" not in first["jwk"] and first["kid"] == jwk_thumbprint(first["jwk"])
    assert first["kid"] == DeviceKey.load(key_file).kid and first["site"] == "site-1"

    assert main(["--config", str(config), "keys", "show"]) == 0
    out = capsys.readouterr().out
    assert first["kid"] in out
    jwk_line = next(line for line in out.splitlines() if line.startswith("{"))
    assert json.loads(jwk_line) == first["jwk"]  # one line, ready for `rtcc-hub sites trust`


def test_a_key_readable_by_others_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    config = config_file(tmp_path, state)
    assert main(["--config", str(config), "keys", "show"]) == 0
    (state / "device.key").chmod(0o644)
    assert main(["--config", str(config), "keys", "show"]) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_an_unusable_state_dir_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = config_file(tmp_path, blocker / "state")
    assert main(["--config", str(config), "keys", "show"]) == 2
    assert "cannot create the device key" in capsys.readouterr().err


def test_a_bad_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[site]\nid = 'BAD ID'\nname = 'x'\n")
    assert main(["--config", str(path), "keys", "show"]) == 2
    assert "site.id" in capsys.readouterr().err
