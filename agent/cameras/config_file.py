"""Appending cameras to the owner's configuration file without disturbing it.

Each camera is a `[[cameras]]` table appended as text, so comments and everything else stay
exactly as they were; the result is validated with the configuration loader and only then
replaces the file (atomically, keeping its owner and mode). Nothing is written when the result
would not load.
"""

from __future__ import annotations

import grp
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit

from agent.config import load_config
from agent.fsutil import atomic_write


def toml_block(fields: Mapping[str, Any], comment: str, location: Mapping[str, Any]) -> str:
    """One `[[cameras]]` table (and its `[cameras.location]`) as TOML text."""
    lines = ["", f"# {comment}", "[[cameras]]"]
    lines += [f"{key} = {tomlkit.item(value).as_string()}" for key, value in fields.items()]
    if location:
        lines.append("[cameras.location]")
        lines += [f"{key} = {tomlkit.item(value).as_string()}" for key, value in location.items()]
    return "\n".join(lines) + "\n"


class ConfigGroupError(PermissionError):
    """The new configuration could not keep the group that lets the service read it."""


def replace_config(path: Path, text: str) -> None:
    """Validate `text` as the configuration, then put it in place of `path` atomically;
    ConfigError (and the original untouched) when it would not load.

    `path` may be a symbolic link (the installer's /etc/rtcc-edge/agent.toml points into the
    owner directory, which the owner's group may write): the file it points to is replaced and
    the link stays. Written by someone other than root, the new file is theirs but keeps its
    group and mode, so the service still reads it; when even the group cannot be kept (the
    writer is not in it), nothing is changed."""
    target = path.resolve()
    info = target.stat()

    def check(temp: Path) -> None:
        if temp.stat().st_gid != info.st_gid:
            raise ConfigGroupError(
                f"{target} must stay in group {_group_name(info.st_gid)} for the agent to "
                "read it, and you are not in that group: nothing was changed (use sudo)"
            )
        load_config(temp)  # ConfigError: the original stays untouched

    atomic_write(
        target, text, mode=info.st_mode & 0o7777, owner=(info.st_uid, info.st_gid), check=check
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def append_blocks(path: Path, blocks: Sequence[str]) -> None:
    """Append `blocks` (from `toml_block`) to the configuration at `path`; ConfigError, OSError
    or UnicodeDecodeError leave it untouched."""
    original = path.read_text(encoding="utf-8")
    text = original if original.endswith("\n") or not original else original + "\n"
    replace_config(path, text + "".join(blocks))
