"""The installer in its real mode (no --root): a real `useradd`, real `chown`, the real paths
/opt/rtcc-edge, /etc/rtcc-edge, /var/lib/rtcc-edge — inside a private mount namespace whose
/etc, /var/lib and /opt are scratch copies, so nothing reaches this machine's own system.
systemd is not PID 1 here, so the installer says it cannot start the unit (and does not fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.installer.conftest import INSTALLER, base_python
from tests.support.hub_enroll import EnrollHub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace and useradd need root"),
]

SCRIPT = r"""
set -u
W=$1; shift
cp -a /etc "$W/etc" && mount --bind "$W/etc" /etc || exit 90
mkdir "$W/varlib" && mount --bind "$W/varlib" /var/lib || exit 91
mkdir "$W/opt-orig" && mount --bind /opt "$W/opt-orig" && mount -t tmpfs tmpfs /opt || exit 92
for d in "$W"/opt-orig/*; do
    [ -d "$d" ] || continue
    mkdir "/opt/${d##*/}" && mount --bind "$d" "/opt/${d##*/}" || exit 93
done
/bin/sh "$@" >"$W/install.out" 2>"$W/install.err"
echo $? >"$W/install.code"
for path in /opt/rtcc-edge /opt/rtcc-edge/bin/rtcc-edge /etc/rtcc-edge /etc/rtcc-edge/agent.toml \
    /etc/rtcc-edge/ca.pem /etc/rtcc-edge/client.pem /etc/rtcc-edge/client.key \
    /etc/rtcc-edge/rtcc-jwks.json /etc/rtcc-edge/install-manifest.tsv /var/lib/rtcc-edge \
    /etc/rtcc-edge/owner \
    /var/lib/rtcc-edge/device.key /var/lib/rtcc-edge/store /etc/systemd/system/rtcc-edge.service
do
    stat -c '%n %a %U %G' "$path" >>"$W/stat.txt" 2>&1
done
getent passwd rtcc-edge >"$W/user.txt"
getent group rtcc-edge-owner >"$W/owner-group.txt"
id -nG rtcc-edge >"$W/service-groups.txt"
/bin/sh "$1" --purge --yes >"$W/purge.out" 2>&1
echo $? >"$W/purge.code"
getent passwd rtcc-edge >"$W/user-after.txt"
getent group rtcc-edge-owner >"$W/owner-group-after.txt"
ls -A /opt >"$W/opt-after.txt"
exit 0
"""


@pytest.fixture
def scratch() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="rtcc-real-install-"))
    yield where
    shutil.rmtree(where, ignore_errors=True)


def test_real_mode_install_and_purge(hub: EnrollHub, wheel: Path, scratch: Path) -> None:
    token = hub.token("Real Mode Deli")
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT, "real",
         str(scratch), str(INSTALLER), "--wheel", str(wheel), "--python", base_python(),
         "--hub", hub.url, "--hub-ca", str(hub.ca_file), "--token", token, "--no-discover"],
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = (scratch / "install.out").read_text()
    err = (scratch / "install.err").read_text()
    print(out, err)
    assert (scratch / "install.code").read_text().strip() == "0", err
    assert "creating the system user rtcc-edge" in out
    assert "enrolled as site real-mode-deli-" in out
    assert "systemd is not running here" in err

    stats = {}
    for line in (scratch / "stat.txt").read_text().splitlines():
        path, mode, user, group = line.split(" ")
        stats[path] = (mode, user, group)
    assert stats == {
        "/opt/rtcc-edge": ("755", "root", "root"),
        "/opt/rtcc-edge/bin/rtcc-edge": ("755", "root", "root"),
        "/etc/rtcc-edge": ("750", "root", "rtcc-edge"),
        "/etc/rtcc-edge/agent.toml": ("640", "root", "rtcc-edge"),
        "/etc/rtcc-edge/ca.pem": ("640", "root", "rtcc-edge"),
        "/etc/rtcc-edge/client.pem": ("640", "root", "rtcc-edge"),
        "/etc/rtcc-edge/client.key": ("600", "rtcc-edge", "rtcc-edge"),
        "/etc/rtcc-edge/rtcc-jwks.json": ("640", "root", "rtcc-edge"),
        "/etc/rtcc-edge/install-manifest.tsv": ("640", "root", "rtcc-edge"),
        "/var/lib/rtcc-edge": ("750", "rtcc-edge", "rtcc-edge"),
        "/var/lib/rtcc-edge/device.key": ("600", "rtcc-edge", "rtcc-edge"),
        "/var/lib/rtcc-edge/store": ("750", "rtcc-edge", "rtcc-edge"),
        "/etc/systemd/system/rtcc-edge.service": ("644", "root", "root"),
        "/etc/rtcc-edge/owner": ("2775", "root", "rtcc-edge-owner"),
    }
    # The owner group exists, and the service user is not in it.
    assert (scratch / "owner-group.txt").read_text().startswith("rtcc-edge-owner:")
    assert "rtcc-edge-owner" not in (scratch / "service-groups.txt").read_text().split()
    account = (scratch / "user.txt").read_text().split(":")
    assert account[0] == "rtcc-edge" and account[5] == "/var/lib/rtcc-edge"
    assert account[6].strip() in ("/usr/sbin/nologin", "/bin/false")
    unit = (scratch / "etc/systemd/system/rtcc-edge.service").exists()
    assert not unit  # purged

    assert (scratch / "purge.code").read_text().strip() == "0", (scratch / "purge.out").read_text()
    assert (scratch / "user-after.txt").read_text() == ""
    assert (scratch / "owner-group-after.txt").read_text() == ""
    assert not (scratch / "varlib" / "rtcc-edge").exists()
    assert not (scratch / "etc" / "rtcc-edge").exists()
    assert "rtcc-edge" not in (scratch / "opt-after.txt").read_text().split()
