"""Runs inside a private mount namespace (as root) for tests/config/test_config_owner.py: the
installer's layout of the configuration (/etc/rtcc-edge/agent.toml a link to
owner/agent.toml, 0640 root:rtcc-edge in the owner directory 2775 root:rtcc-edge-owner) with
real users, and `replace_config` tried by each. Writes what happened to `<work>/result.json`.

    unshare --mount --propagation private PYTHON -m tests.config.config_owner_driver WORK
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.control.owner_boundary_driver import PYTHON, as_user, isolate, sh

REPLACE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from agent.cameras.config_file import replace_config\n"
    "path = Path(sys.argv[1])\n"
    "try:\n"
    "    replace_config(path, path.read_text() + sys.argv[2])\n"
    "except PermissionError as exc:\n"
    "    print(exc, file=sys.stderr)\n"
    "    sys.exit(3)\n"
)
READ = "import sys\nfrom agent.config import load_config\nprint(load_config(sys.argv[1]).site.id)\n"


def users() -> None:
    sh("groupadd", "--system", "rtcc-edge")
    sh("useradd", "--system", "-g", "rtcc-edge", "-M", "-d", "/nonexistent", "rtcc-edge")
    sh("groupadd", "--system", "rtcc-edge-owner")
    # The page's user, as the installer makes it.
    sh("useradd", "--system", "--user-group", "-M", "-d", "/nonexistent",
       "-G", "rtcc-edge,rtcc-edge-owner", "rtcc-edge-page")  # fmt: skip
    # An owner-group member outside the service's group: may not leave the file unreadable.
    sh("useradd", "-M", "-G", "rtcc-edge-owner", "carol")


def stat_of(path: Path) -> dict[str, Any]:
    info = path.stat()
    return {
        "mode": info.st_mode & 0o7777,
        "user": pwd.getpwuid(info.st_uid).pw_name,
        "group": grp.getgrgid(info.st_gid).gr_name,
        "link": path.is_symlink(),
    }


def main(work: Path) -> None:
    isolate(work)
    users()
    etc = work / "etc-rtcc"
    owner = etc / "owner"
    owner.mkdir(parents=True)
    shutil.chown(etc, "root", "rtcc-edge")
    etc.chmod(0o755)  # 0750 on a real install; carol must reach the file to be refused by it
    shutil.chown(owner, "root", "rtcc-edge-owner")
    owner.chmod(0o2775)
    real = owner / "agent.toml"
    shutil.move(work / "agent.toml", real)
    shutil.chown(real, "root", "rtcc-edge")
    real.chmod(0o640)
    link = etc / "agent.toml"
    link.symlink_to("owner/agent.toml")
    result: dict[str, Any] = {"before": stat_of(real)}
    result["service_replace"] = as_user("rtcc-edge", PYTHON, "-c", REPLACE, str(link), "# svc\n")
    result["page_replace"] = as_user(
        "rtcc-edge-page", PYTHON, "-c", REPLACE, str(link), "# by the page\n"
    )
    result["after_page"] = stat_of(real)
    result["link_after_page"] = link.is_symlink()
    result["service_read"] = as_user("rtcc-edge", PYTHON, "-c", READ, str(link))
    # carol cannot read a 0640 rtcc-edge file at all; give her a readable one to replace.
    real.chmod(0o644)
    result["carol_replace"] = as_user("carol", PYTHON, "-c", REPLACE, str(link), "# carol\n")
    result["after_carol"] = stat_of(real)
    real.chmod(0o640)
    result["root_replace"] = as_user(None, PYTHON, "-c", REPLACE, str(link), "# root\n")
    result["after_root"] = stat_of(real)
    result["text"] = real.read_text()
    result["leftovers"] = sorted(p.name for p in owner.iterdir() if p.name != "agent.toml")
    (work / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    os.umask(0o022)
    main(Path(sys.argv[1]))
