"""Appending cameras to the owner's configuration file without disturbing it.

Each camera is a `[[cameras]]` table appended as text, so comments and everything else stay
exactly as they were; the result is validated with the configuration loader and only then
replaces the file (atomically, keeping its owner and mode). Nothing is written when the result
would not load.
"""

from __future__ import annotations

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


def replace_config(path: Path, text: str) -> None:
    """Validate `text` as the configuration, then put it in place of `path` atomically;
    ConfigError (and the original untouched) when it would not load."""
    info = path.stat()
    atomic_write(
        path,
        text,
        mode=info.st_mode & 0o7777,
        owner=(info.st_uid, info.st_gid),
        check=load_config,  # ConfigError: the original stays untouched
    )


def append_blocks(path: Path, blocks: Sequence[str]) -> None:
    """Append `blocks` (from `toml_block`) to the configuration at `path`; ConfigError, OSError
    or UnicodeDecodeError leave it untouched."""
    original = path.read_text(encoding="utf-8")
    text = original if original.endswith("\n") or not original else original + "\n"
    replace_config(path, text + "".join(blocks))
