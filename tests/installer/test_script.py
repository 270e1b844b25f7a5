"""The installer is POSIX sh (it runs as `curl … | sudo sh -s -- …` under dash), shellcheck
clean, and a download cut short runs nothing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.installer.conftest import INSTALLER


def _shellcheck() -> str:
    exe = shutil.which("shellcheck")
    if exe is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "shellcheck"], capture_output=True, timeout=600
        )
        exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck is not installed and apt-get could not install it")
    return exe


def test_shellcheck_posix_sh() -> None:
    result = subprocess.run(
        [_shellcheck(), "--shell=sh", "--severity=style", str(INSTALLER)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout


def test_dash_parses_it() -> None:
    result = subprocess.run(["dash", "-n", str(INSTALLER)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_help_over_a_pipe() -> None:
    """As `curl … | sh -s -- --help`: the script comes on standard input."""
    result = subprocess.run(
        ["sh", "-s", "--", "--help"],
        input=INSTALLER.read_bytes(),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert b"--hub URL" in result.stdout and b"--purge" in result.stdout


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_a_truncated_download_does_nothing(fraction: float) -> None:
    """Everything is inside main(), called on the last line: a cut-off script defines
    functions (or fails to parse) but never runs a step."""
    data = INSTALLER.read_bytes()
    cut = data[: int(len(data) * fraction)]
    result = subprocess.run(
        ["sh", "-s", "--", "--root", "/nonexistent/should-not-be-created", "--help"],
        input=cut,
        capture_output=True,
        timeout=60,
    )
    assert b"==>" not in result.stdout
    assert b"Usage" not in result.stdout
