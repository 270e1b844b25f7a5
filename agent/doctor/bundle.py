"""The support bundle a technician sends: a tar.gz with the doctor report, the configuration
with every secret redacted, recent logs (journalctl for the unit, when there is a journal) and
versions. Every file in it is scrubbed of every secret the configuration holds (decrypted
camera passwords, their encrypted form, the broker password) before it is written; the
redaction itself is `agent.redact`'s, the one there is."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable, MutableMapping
from pathlib import Path

import tomlkit

from agent.compat.report import DoctorReport
from agent.config import AgentConfig
from agent.fsutil import atomic_file
from agent.redact import REDACTED, redact, redact_tree, secret_forms, url_secrets
from agent.secretbox import SecretError, reveal

UNIT = "rtcc-edge"
# Keys whose values are secrets wherever they appear in the configuration.
_SECRET_KEY = re.compile(r"secret|password|passwd|token|passphrase|private", re.IGNORECASE)
# `password = "…"` in a file too broken to parse: everything after the `=` goes.
_SECRET_LINE = re.compile(
    r"^(?P<key>[ \t]*[\w.\"'-]*(?:secret|password|passwd|token|passphrase|private)[\w.\"'-]*"
    r"[ \t]*=[ \t]*).*$",
    re.IGNORECASE | re.MULTILINE,
)


def known_secrets(config: AgentConfig | None) -> list[str]:
    """Every secret string the configuration holds, in every form it may appear in."""
    if config is None:
        return []
    found: list[str] = []
    if config.rtcc.password is not None:
        found.append(config.rtcc.password.get_secret_value())
    for camera in config.cameras:
        for url in (camera.rtsp_url, camera.onvif_url):
            found += url_secrets(url or "")
        if camera.secret is None:
            continue
        value = camera.secret.get_secret_value()
        found.append(value)
        with contextlib.suppress(SecretError, OSError):
            plain = reveal(value, config.state_dir)
            if plain:
                found.append(plain)
    return secret_forms(found)


def _redact(node: object) -> None:
    if isinstance(node, MutableMapping):
        for key in list(node.keys()):
            value = node[key]
            if _SECRET_KEY.search(str(key)) and isinstance(value, str):
                node[key] = REDACTED
            else:
                _redact(value)
    elif isinstance(node, list):
        for item in node:
            _redact(item)


def redact_config_text(text: str, secrets: Iterable[str] = ()) -> str:
    """The configuration file with every secret value replaced (its comments kept)."""
    try:
        document = tomlkit.parse(text)
    except Exception:  # noqa: BLE001 - an unparseable file is still redacted, line by line
        return redact(_SECRET_LINE.sub(rf"\g<key>{REDACTED}", text), secrets)
    _redact(document)
    return redact(tomlkit.dumps(document), secrets)


def recent_logs(*, lines: int = 2000) -> str:
    exe = shutil.which("journalctl")
    if exe is None:
        return "journalctl is not available on this host: no logs collected.\n"
    try:
        proc = subprocess.run(
            [exe, "--unit", UNIT, "--since", "-24h", "--lines", str(lines), "--no-pager"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}\n"
    return proc.stdout + (f"\n[journalctl: {proc.stderr.strip()}]\n" if proc.stderr else "")


def write_bundle(
    path: Path, report: DoctorReport, *, config_path: Path, config: AgentConfig | None
) -> list[str]:
    """Write the support bundle (tar.gz) atomically; the names of the files in it."""
    secrets = known_secrets(config)
    try:
        config_text = redact_config_text(config_path.read_text(encoding="utf-8"), secrets)
    except (OSError, UnicodeDecodeError) as exc:
        config_text = f"# {config_path} could not be read: {exc}\n"
    members = {
        "README.txt": (
            "rtcc-edge support bundle\n\n"
            "report.json  the doctor report (site checks and every camera's check)\n"
            "agent.toml   the configuration, with every password, secret and token redacted\n"
            "logs.txt     the last 24 hours of the rtcc-edge unit's log (journalctl)\n"
            "versions.json  versions of the agent and its libraries\n"
        ),
        # Structured members are redacted value by value: replacing text in their serialised
        # form could break them (a password "true" or "1234").
        "report.json": json.dumps(redact_tree(report.model_dump(mode="json"), secrets), indent=2),
        "agent.toml": config_text,
        "logs.txt": recent_logs(),
        "versions.json": json.dumps(redact_tree(report.versions, secrets), indent=2),
    }
    with (
        atomic_file(path, mode=0o600) as raw,
        tarfile.open(fileobj=raw, mode="w:gz") as tar,
    ):
        now = time.time()
        for name, text in members.items():
            data = (text if name.endswith(".json") else redact(text, secrets)).encode()
            info = tarfile.TarInfo(f"rtcc-edge-support/{name}")
            info.size, info.mtime, info.mode = len(data), now, 0o600
            tar.addfile(info, io.BytesIO(data))
    return list(members)
