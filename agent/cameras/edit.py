"""Changing or removing a camera already in the owner's configuration (the library behind
`rtcc-edge cameras remove|rename|set|passwd`, and the owner page later): the file is edited as a
TOML document so comments and everything else stay as they were, validated with the
configuration loader, and only then put in place. Nothing is written when the result would not
load (ConfigError with the loader's problems).

    remove_camera(path, "front-door")
    change_camera(path, "front-door", CameraChange(sharing=SharingMode.REGISTRY, location=(1, 2)))
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from agent.cameras.config_file import replace_config
from agent.cameras.plan import AddError, Login, open_stream, split_rtsp_url
from agent.compat.probe import ProbeError
from agent.config import AgentConfig, CameraConfig, SharingMode
from agent.control.auth import Peer, owner_refusal
from agent.media.source import SourceError
from agent.onvif import OnvifCamera, OnvifError
from agent.secretbox import SecretBox

SERVICE_USER = "rtcc-edge"


class EditError(Exception):
    """Nothing was changed; the message says why in plain words. `code` is `usage` (the
    change cannot work as given) or `refused` (the camera refused the new password)."""

    def __init__(self, message: str, *, code: Literal["usage", "refused"] = "usage") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CameraChange:
    """What `cameras set` changes; None leaves a field as it is."""

    location: tuple[float, float] | None = None
    fov: float | None = None
    heading: float | None = None
    sharing: SharingMode | None = None
    live: bool | None = None
    rtsp_url: str | None = None

    def empty(self) -> bool:
        return all(value is None for value in self.__dict__.values())


def local_owner_refusal(config: AgentConfig) -> str | None:
    """None if the user running this may change the owner's configuration (root, or a member of
    the owner group, never the service user); otherwise the sentence that says why not."""
    try:
        import pwd

        service_uid = pwd.getpwnam(SERVICE_USER).pw_uid
    except KeyError:
        service_uid = -1  # no service user on this machine: nobody is it
    return owner_refusal(
        Peer(os.getuid(), os.getgid()),
        owner_group=config.control.owner_group,
        service_uid=service_uid,
    )


def _load(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except TOMLKitError as exc:
        raise EditError(f"cannot read {path}: {exc}") from None


def _cameras(document: tomlkit.TOMLDocument) -> AoT | list[Any]:
    cameras = document.get("cameras")
    return cameras if isinstance(cameras, AoT | list) else []


def _find(document: tomlkit.TOMLDocument, path: Path, camera_id: str) -> Table:
    for table in _cameras(document):
        if isinstance(table, Table | dict) and table.get("id") == camera_id:
            return table  # type: ignore[return-value]  # tomlkit's tables in an AoT
    known = [str(t.get("id")) for t in _cameras(document)]
    listed = ", ".join(known) if known else "none"
    raise EditError(
        f"no camera {camera_id!r} in {path} (configured: {listed}); see `rtcc-edge cameras list`"
    )


def _save(path: Path, document: tomlkit.TOMLDocument) -> None:
    replace_config(path, tomlkit.dumps(document))


def remove_camera(path: Path, camera_id: str) -> None:
    """Take the camera out of the configuration (its footage stays in the store until it ages
    out); EditError if there is no such camera."""
    document = _load(path)
    table = _find(document, path, camera_id)
    cameras = _cameras(document)
    index = next(i for i, t in enumerate(cameras) if t is table)
    del cameras[index]
    if not cameras:
        del document["cameras"]
    _save(path, document)


def rename_camera(path: Path, camera_id: str, name: str) -> None:
    """Give the camera a new name (what people read; its id stays)."""
    name = name.strip()
    if not name or len(name) > 200 or re.search(r"[\x00-\x1f\x7f]", name):
        raise EditError("give a name of 1 to 200 characters on one line")
    document = _load(path)
    _find(document, path, camera_id)["name"] = name
    _save(path, document)


def change_camera(path: Path, camera_id: str, change: CameraChange) -> None:
    """Apply `change`; the configuration's own rules still hold (ConfigError if not: a listed
    camera without a location, live view on a camera that is not integrated…)."""
    if change.empty():
        raise EditError("nothing to change: give --location, --fov, --sharing, --live or --rtsp")
    document = _load(path)
    table = _find(document, path, camera_id)
    if change.location is not None or change.fov is not None or change.heading is not None:
        location = table.get("location")
        if location is None:
            if change.location is None:
                raise EditError("this camera has no location yet: give --location LAT,LON too")
            location = tomlkit.table()
            table["location"] = location
        if change.location is not None:
            location["lat"], location["lon"] = change.location
        if change.fov is not None:
            location["fov"] = change.fov
        if change.heading is not None:
            location["heading"] = change.heading
    if change.sharing is not None:
        table["sharing"] = change.sharing.value
        if change.sharing is not SharingMode.INTEGRATED and change.live is None:
            table["live"] = False  # live view exists only for integrated cameras
    if change.live is not None:
        table["live"] = change.live
    if change.rtsp_url is not None:
        try:
            bare, user, password = split_rtsp_url(change.rtsp_url)
        except AddError as exc:
            raise EditError(str(exc)) from None
        if user is not None or password is not None:
            raise EditError(
                "give the RTSP URL without a username or password; set the password with "
                "`rtcc-edge cameras passwd`"
            )
        table["rtsp_url"] = bare
    _save(path, document)


def camera_with_username(config: AgentConfig, camera_id: str) -> CameraConfig:
    """The configured camera whose password may change; EditError if there is none."""
    camera = next((c for c in config.cameras if c.id == camera_id), None)
    if camera is None:
        listed = ", ".join(c.id for c in config.cameras) or "none"
        raise EditError(
            f"no camera {camera_id!r} in the configuration (configured: {listed}); see "
            "`rtcc-edge cameras list`"
        )
    if camera.username is None:
        raise EditError(
            f"camera {camera_id!r} has no username in the configuration, so no password to change"
        )
    return camera


async def check_password(camera: CameraConfig, password: str, *, call_timeout: float) -> str:
    """Log in to `camera` with the new password before it is stored (an ONVIF login, or its
    RTSP stream opened): what was checked, in words; EditError (`refused`) if it fails."""
    assert camera.username is not None
    if camera.onvif_url is not None:
        onvif = OnvifCamera.from_url(
            camera.onvif_url, username=camera.username, password=password, timeout=call_timeout
        )
        try:
            async with onvif:
                pass
        except OnvifError as exc:
            raise EditError(f"not changed: {exc}", code="refused") from None
        return f"the camera accepted the new password (ONVIF login at {camera.onvif_url})"
    assert camera.rtsp_url is not None  # the configuration requires one of the two
    try:
        await open_stream(camera.rtsp_url, Login(camera.username, password), call_timeout)
    except (ProbeError, SourceError) as exc:
        raise EditError(f"not changed: {exc}", code="refused") from None
    return "the camera accepted the new password (its stream opened)"


def set_password(
    path: Path,
    config: AgentConfig,
    camera_id: str,
    password: str,
    *,
    encrypt: Callable[[str], str] | None = None,
) -> None:
    """Store the camera's new password encrypted with the device key (`enc:v1:…`); `encrypt`
    for a caller that may not read the key (the owner's page asks the daemon to `seal`)."""
    if not password:
        raise EditError("the password is empty")
    camera_with_username(config, camera_id)
    document = _load(path)
    table = _find(document, path, camera_id)
    if table.get("username") is None:
        raise EditError(
            f"camera {camera_id!r} has no username in the configuration, so no password to change"
        )
    if encrypt is None:
        encrypt = SecretBox.load_or_create(config.state_dir).encrypt
    table["secret"] = encrypt(password)
    _save(path, document)
