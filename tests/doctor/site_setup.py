"""What the doctor tests share: a site configuration pointing at the test's broker and
cameras, and running `rtcc-edge doctor --json`."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from agent.cli import main
from agent.secretbox import SecretBox
from tests.support.broker import MosquittoBroker
from tests.support.camsim import CamsimRun

SITE = "site-doctor"
CAMERA_PASSWORD = "Cam-Secret-4417"
BROKER_PASSWORD = "Broker-Secret-9923"


def site_config(
    tmp_path: Path,
    *,
    mqtt: MosquittoBroker | None = None,
    cams: CamsimRun | None = None,
    password_login: bool = False,
    store: str = "",
) -> Path:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    lines = [
        "# the owner's own notes",
        f'state_dir = "{state}"',
        "[site]",
        f'id = "{SITE}"',
        'name = "Doctor Test Grocery"',
        "[store]",
        'max_bytes = "2000GB"',
        'min_free = "1GB"',
        store,
        # Its own control socket: a daemon of another test on the default path would make the
        # broker check skip the MQTT login.
        "[control]",
        f'socket = "{state}/control.sock"',
    ]
    if mqtt is not None:
        jwks = tmp_path / "jwks.json"
        jwks.write_text('{"keys": []}')
        lines += ["[rtcc]", f'ca_file = "{mqtt.ca_file}"', 'issuer = "rtcc-test"']
        lines.append(f'jwks_file = "{jwks}"')
        if password_login:
            mqtt.add_password_user(SITE, BROKER_PASSWORD)
            lines += [
                f'broker_url = "{mqtt.url(password=True)}"',
                f'username = "{SITE}"',
                f'password = "{BROKER_PASSWORD}"',
            ]
        else:
            cert, key = mqtt.issue_client_cert(SITE)
            lines += [
                f'broker_url = "{mqtt.url()}"',
                f'cert_file = "{cert}"',
                f'key_file = "{key}"',
            ]
    if cams is not None:
        secret = SecretBox.load_or_create(state).encrypt(CAMERA_PASSWORD)
        for cam in cams:
            lines += [
                "[[cameras]]",
                f'id = "{cam.id}"',
                f'name = "{cam.id}"',
                f'onvif_url = "{cam.onvif_url}"',
                f'username = "{cam.username}"',
                f'secret = "{secret}"',
            ]
        front = cams["front"]
        lines += [
            "[[cameras]]",
            'id = "stream-only"',
            'name = "RTSP only"',
            # Credentials in the URL: a habit the bundle must not leak either.
            f'rtsp_url = "{front.rtsp_url("sub", credentials=True)}"',
        ]
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_json(*argv: str) -> tuple[int, dict[str, Any]]:
    """The exit status and the JSON report (its shape is the report's, not checked here)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    return status, json.loads(out.getvalue())


def member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """The content of one file of the support bundle (it holds files only)."""
    extracted = tar.extractfile(member)
    assert extracted is not None, f"{member.name} is not a file"
    return extracted.read()


def checks_of(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["id"]: c for c in report["checks"]}
