"""The installer in its real mode (no --root): a real `useradd`, real `chown`, the real paths
/opt/rtcc-edge, /etc/rtcc-edge, /var/lib/rtcc-edge — inside a private mount namespace whose
/etc, /var/lib and /opt are scratch copies, so nothing reaches this machine's own system.
systemd is not PID 1 here, so the installer says it cannot start the unit (and does not fail).
Its own PID namespace too: `userdel` refuses a user some process runs as, and other tests'
processes under a service user of the same uid must not count.
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
for path in /opt/rtcc-edge /opt/rtcc-edge/bin/rtcc-edge /etc/rtcc-edge \
    /etc/rtcc-edge/owner/agent.toml \
    /etc/rtcc-edge/page /etc/rtcc-edge/page/page.crt /etc/rtcc-edge/page/page.key \
    /etc/rtcc-edge/owner/page-password /etc/systemd/system/rtcc-edge-page.service \
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
getent passwd rtcc-edge-page >"$W/page-user.txt"
id -nG rtcc-edge-page >"$W/page-groups.txt"
readlink /etc/rtcc-edge/agent.toml >"$W/config-link.txt"
# The page's user reads the configuration and its key, and may replace the configuration.
setpriv --reuid=rtcc-edge-page --regid=rtcc-edge-page --init-groups \
    /opt/rtcc-edge/bin/python -c 'import sys; from pathlib import Path
from agent.cameras.config_file import replace_config
from agent.owner_page.tls import ssl_context
from agent.config import load_config
config = load_config("/etc/rtcc-edge/agent.toml")
assert ssl_context(config) is not None
path = Path("/etc/rtcc-edge/agent.toml")
replace_config(path, path.read_text() + "# changed on the page\n")' >"$W/page-edit.txt" 2>&1
echo $? >>"$W/page-edit.txt"
stat -c '%n %a %U %G' /etc/rtcc-edge/owner/agent.toml >>"$W/page-edit.txt"
setpriv --reuid=rtcc-edge --regid=rtcc-edge --init-groups \
    /opt/rtcc-edge/bin/python -c 'from agent.config import load_config
print(load_config("/etc/rtcc-edge/agent.toml").site.id)' >>"$W/page-edit.txt" 2>&1
/bin/sh "$1" --purge --yes >"$W/purge.out" 2>&1
echo $? >"$W/purge.code"
getent passwd rtcc-edge >"$W/user-after.txt"
getent group rtcc-edge-owner >"$W/owner-group-after.txt"
getent passwd rtcc-edge-page >"$W/page-user-after.txt"
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
    password = scratch / "password"
    password.write_text("the deli owner's password\n")
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc",
         "sh", "-c", SCRIPT, "real",
         str(scratch), str(INSTALLER), "--wheel", str(wheel), "--python", base_python(),
         "--hub", hub.url, "--hub-ca", str(hub.ca_file), "--token", token, "--no-discover",
         "--owner-page-lan", "--owner-password-file", str(password)],
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
        "/etc/rtcc-edge/owner/agent.toml": ("640", "root", "rtcc-edge"),
        "/etc/rtcc-edge/owner/page-password": ("640", "root", "rtcc-edge-owner"),
        "/etc/rtcc-edge/page": ("755", "root", "root"),
        "/etc/rtcc-edge/page/page.crt": ("644", "root", "root"),
        "/etc/rtcc-edge/page/page.key": ("640", "root", "rtcc-edge-page"),
        "/etc/systemd/system/rtcc-edge-page.service": ("644", "root", "root"),
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
    # The page's user: no home, no shell, in the service's group and the owner group.
    page = (scratch / "page-user.txt").read_text().split(":")
    assert page[0] == "rtcc-edge-page" and page[5] == "/nonexistent"
    assert page[6].strip() in ("/usr/sbin/nologin", "/bin/false")
    assert set((scratch / "page-groups.txt").read_text().split()) == {
        "rtcc-edge-page", "rtcc-edge", "rtcc-edge-owner",
    }  # fmt: skip
    assert (scratch / "config-link.txt").read_text().strip() == "owner/agent.toml"
    edit = (scratch / "page-edit.txt").read_text().splitlines()
    assert edit[0] == "0", edit
    assert edit[1] == "/etc/rtcc-edge/owner/agent.toml 640 rtcc-edge-page rtcc-edge", edit
    assert edit[2].startswith("real-mode-deli-"), edit  # the service still reads it
    assert "owner's page:  https://" in out and "certificate fingerprint (SHA-256):" in out
    account = (scratch / "user.txt").read_text().split(":")
    assert account[0] == "rtcc-edge" and account[5] == "/var/lib/rtcc-edge"
    assert account[6].strip() in ("/usr/sbin/nologin", "/bin/false")
    unit = (scratch / "etc/systemd/system/rtcc-edge.service").exists()
    assert not unit  # purged

    assert (scratch / "purge.code").read_text().strip() == "0", (scratch / "purge.out").read_text()
    assert (scratch / "user-after.txt").read_text() == ""
    assert (scratch / "owner-group-after.txt").read_text() == ""
    assert (scratch / "page-user-after.txt").read_text() == ""
    assert not (scratch / "varlib" / "rtcc-edge").exists()
    assert not (scratch / "etc" / "rtcc-edge").exists()
    assert "rtcc-edge" not in (scratch / "opt-after.txt").read_text().split()
