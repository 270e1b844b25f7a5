"""Writing planned cameras into the owner's configuration, the password encrypted with the
device key (`enc:v1:…`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.cameras.config_file import append_blocks, toml_block
from agent.cameras.plan import Login, Plan, Sharing
from agent.config import AgentConfig
from agent.onvif.errors import quoted
from agent.secretbox import SecretBox


def write_cameras(
    config_path: Path,
    config: AgentConfig,
    plan: Plan,
    login: Login | None,
    sharing: Sharing,
    *,
    how: str = "rtcc-edge cameras add",
    encrypt: Callable[[str], str] | None = None,
) -> None:
    """Append the planned cameras, the password encrypted with the device key (or `encrypt`,
    for a caller that may not read the key); SecretError, OSError, ConfigError leave the file
    as it was."""
    if encrypt is None and login is not None:
        encrypt = SecretBox.load_or_create(config.state_dir).encrypt
    secret = encrypt(login.password) if login is not None and encrypt is not None else None
    location: dict[str, Any] = {}
    if sharing.location is not None:
        location = {
            key: value for key, value in sharing.location.__dict__.items() if value is not None
        }
    firmware = f", firmware {plan.firmware}" if plan.firmware else ""
    comment = quoted(
        f"Added by `{how}` on {datetime.now(UTC):%Y-%m-%d} ({plan.made or 'unknown model'}"
        f"{firmware})",
        200,
    )
    blocks = []
    for camera in plan.cameras:
        fields: dict[str, Any] = {"id": camera.id, "name": camera.name}
        if camera.onvif_url is not None:
            fields["onvif_url"] = camera.onvif_url
        if camera.rtsp_url is not None:
            fields["rtsp_url"] = camera.rtsp_url
        if camera.channel is not None:
            fields["channel"] = camera.channel
        if login is not None:
            fields["username"] = login.username
            fields["secret"] = secret
        fields["stream"] = camera.stream
        fields["sharing"] = sharing.mode.value
        fields["live"] = sharing.live
        blocks.append(toml_block(fields, comment, location))
    append_blocks(config_path, blocks)
