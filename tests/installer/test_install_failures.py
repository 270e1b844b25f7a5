"""Every way the installer can fail stops with one clear sentence and leaves nothing behind:
unsupported OS or machine, not root, a bad, unknown, used or expired token, no hub, a package
that does not install, an enrollment the hub refuses after the program was installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.server import update_serve_settings
from hub.tokens import Location, TokenStore
from tests.installer.conftest import INSTALLER, Result, base_python, files_under, run_installer
from tests.support.broker import free_port
from tests.support.hub_enroll import EnrollHub, HubThread

PREFIX = "rtcc-edge-install: "


def the_sentence(result: Result) -> str:
    """The one line saying why it failed."""
    lines = [line for line in result.err.splitlines() if line.startswith(PREFIX)]
    assert len(lines) == 1, result.err
    assert result.code == 1, result.text
    return lines[0][len(PREFIX) :]


def staged_os(tmp_path: Path, os_release: str) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(os_release)
    return root


@pytest.mark.parametrize(
    ("os_release", "supported"),
    [
        ('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian 12"\n', True),
        ('ID=debian\nVERSION_ID="11"\nPRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\n', False),
        ('ID=raspbian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n', True),
        ('ID=ubuntu\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n', True),
        ('ID=ubuntu\nVERSION_ID="24.04"\n', True),
        ('ID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n', False),
        ('ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"\n', False),
        ("garbage without fields\n", False),
    ],
)
def test_os_check(tmp_path: Path, os_release: str, supported: bool) -> None:
    root = staged_os(tmp_path, os_release)
    result = run_installer("--root", str(root), "--dry-run", "--no-discover")
    if supported:
        assert result.code == 0, result.text
        assert "Dry run: nothing was changed." in result.out
    else:
        sentence = the_sentence(result)
        assert "is not supported" in sentence
        assert "Debian 12, Raspberry Pi OS bookworm and Ubuntu 22.04 or newer" in sentence
    assert files_under(root) == {"etc", "etc/os-release"}


def test_unsupported_machine(tmp_path: Path) -> None:
    # A `uname` that answers like a 32-bit ARM board, found first on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "uname"
    fake.write_text('#!/bin/sh\n[ "$1" = -m ] && echo armv7l || exec /bin/uname "$@"\n')
    fake.chmod(0o755)
    root = tmp_path / "root"
    result = run_installer(
        "--root", str(root), "--no-discover",
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )  # fmt: skip
    sentence = the_sentence(result)
    assert sentence.startswith("this machine is armv7l: rtcc-edge installs on amd64 and arm64")
    assert not root.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_not_root() -> None:
    # Somewhere an unprivileged user can read the script (pytest's tmp tree is private).
    where = Path(tempfile.mkdtemp(prefix="rtcc-installer-"))
    where.chmod(0o755)
    copy = where / "install.sh"
    shutil.copy(INSTALLER, copy)
    copy.chmod(0o755)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", str(copy),
         "--hub", "https://hub.rtcc.test", "--token", "rtcc1_" + "A" * 43],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": "/tmp"},
    )  # fmt: skip
    shutil.rmtree(where)
    sentence = the_sentence(Result(result.returncode, result.stdout, result.stderr))
    assert sentence == "this must run as root: use sudo (or --root DIR to stage an install)"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--bogus"], "unknown option --bogus"),
        (["--root", "relative/dir"], "--root must be an absolute path"),
        (["--root", "/tmp/with space"], "--root may only contain"),
        (["--hub", "https://h.test"], "--hub needs --token"),
        (["--token", "rtcc1_" + "A" * 43], "--token needs --hub"),
        (["--hub", "ftp://h.test", "--token", "x"], "--hub must be an https:// URL"),
        (["--hub", "https://h.test", "--token", "hello"], "that is not an enrollment token"),
        (["--hub", "https://h.test", "--token", 'rtcc1_"; rm -rf /'], "unexpected characters"),
        (["--source", "/nonexistent"], "--source /nonexistent is not a directory"),
        (["--wheel", "/nonexistent.whl"], "--wheel /nonexistent.whl does not exist"),
        (["--scan", "10.0.0.0/8; reboot"], "--scan takes an IPv4 range"),
    ],
)
def test_bad_arguments(tmp_path: Path, argv: list[str], words: str) -> None:
    root = tmp_path / "root"
    args = argv if "--root" in argv else ["--root", str(root), *argv]
    sentence = the_sentence(run_installer(*args))
    assert words in sentence
    assert not root.exists()


@pytest.fixture(scope="module")
def failing_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnrollHub]:
    with HubThread(tmp_path_factory.mktemp("failures-hub")) as running:
        yield running


def _enroll_args(hub: EnrollHub, root: Path, token: str) -> list[str]:
    return ["--root", str(root), "--hub", hub.url, "--hub-ca", str(hub.ca_file), "--token", token,
            "--no-discover"]  # fmt: skip


def test_unknown_token(failing_hub: EnrollHub, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = run_installer(*_enroll_args(failing_hub, root, "rtcc1_" + "Z" * 43))
    assert the_sentence(result) == (
        "the hub refused the token: this enrollment token is not known to the hub (mistyped?)"
    )
    assert not root.exists()


def test_used_token(failing_hub: EnrollHub, tmp_path: Path) -> None:
    token, record = TokenStore(failing_hub.home).create(
        site_name="Used Once", location=Location(lat=1, lon=1)
    )
    TokenStore(failing_hub.home).redeem(token, device_kid="someone-else", csr_key_sha256="0" * 64)
    root = tmp_path / "root"
    sentence = the_sentence(run_installer(*_enroll_args(failing_hub, root, token)))
    assert sentence.startswith("the hub refused the token: this enrollment token was already used")
    assert record.site_id in sentence
    assert not root.exists()


def test_expired_token(failing_hub: EnrollHub, tmp_path: Path) -> None:
    token, _ = TokenStore(failing_hub.home).create(
        site_name="Too Late",
        location=Location(lat=1, lon=1),
        ttl=timedelta(minutes=1),
        now=datetime.now(UTC) - timedelta(days=1),
    )
    root = tmp_path / "root"
    sentence = the_sentence(run_installer(*_enroll_args(failing_hub, root, token)))
    assert sentence.startswith("the hub refused the token: this enrollment token expired at")
    assert not root.exists()


def test_no_network_to_the_hub(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = run_installer(
        "--root", str(root), "--hub", f"https://127.0.0.1:{free_port()}",
        "--token", "rtcc1_" + "A" * 43, "--no-discover",
    )  # fmt: skip
    sentence = the_sentence(result)
    assert sentence.startswith("cannot reach the hub at https://127.0.0.1:")
    assert not root.exists()


def test_untrusted_hub_certificate(failing_hub: EnrollHub, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = run_installer(
        "--root", str(root), "--hub", failing_hub.url, "--token", failing_hub.token(),
        "--no-discover",
    )  # fmt: skip
    sentence = the_sentence(result)
    assert sentence.startswith("the hub's HTTPS certificate is not trusted here")
    assert sentence.endswith("give the hub's CA with --hub-ca FILE")
    assert not root.exists()


def test_a_package_that_does_not_install_is_rolled_back(tmp_path: Path) -> None:
    broken = tmp_path / "broken-checkout"
    broken.mkdir()
    (broken / "systemd").mkdir()
    for unit in ("rtcc-edge.service", "rtcc-edge-page.service"):
        shutil.copy(INSTALLER.parents[1] / "systemd" / unit, broken / "systemd")
    (broken / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "no_such_backend"\n\n'
        '[project]\nname = "rtcc-edge"\nversion = "0"\n'
    )
    root = tmp_path / "root"
    result = run_installer(
        "--root", str(root), "--source", str(broken), "--python", base_python(), "--no-discover"
    )
    assert the_sentence(result).startswith("pip could not install the agent into")
    assert "rolling back what this run created:" in result.err
    assert not root.exists()


@pytest.mark.slow
def test_enrollment_refused_after_install_is_rolled_back(
    failing_hub: EnrollHub, wheel: Path, tmp_path: Path
) -> None:
    """The token passes the hub's check, the program is installed, then the hub refuses to
    enroll (it lost its broker settings meanwhile): everything this run made is removed and
    the token is not spent."""
    token = failing_hub.token("Almost There")
    settings = failing_hub.home.root / "serve.toml"
    saved = settings.read_text()
    root = tmp_path / "root"
    root.mkdir()
    (root / "keep-me").write_text("the owner's\n")
    # The check passes; by the time enrollment asks, the hub has no broker to give out.
    store = TokenStore(failing_hub.home)
    try:
        settings.unlink()
        update_serve_settings(failing_hub.home, public_url=failing_hub.url)
        result = run_installer(
            *_enroll_args(failing_hub, root, token), "--wheel", str(wheel),
            "--python", base_python(),
        )  # fmt: skip
    finally:
        settings.write_text(saved)
    sentence = the_sentence(result)
    assert sentence.startswith("enrollment failed: the hub refused: the hub cannot enroll yet")
    assert "rolling back what this run created:" in result.err
    assert files_under(root) == {"keep-me"}
    assert all(r.used_at is None for r in store.records() if r.site_name == "Almost There")
