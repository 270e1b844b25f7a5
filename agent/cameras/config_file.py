"""Appending cameras to the owner's configuration file without disturbing it.

Each camera is a `[[cameras]]` table appended as text, so comments and everything else stay
exactly as they were; the result is validated with the configuration loader and only then
replaces the file (atomically, keeping its owner and mode). Nothing is written when the result
would not load.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit

from agent.config import load_config


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        info = path.stat()
        temporary.chmod(info.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):  # only root may give files away
            os.chown(temporary, info.st_uid, info.st_gid)
        load_config(temporary)  # ConfigError: the original stays untouched
        temporary.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temporary.unlink(missing_ok=True)


def append_blocks(path: Path, blocks: Sequence[str]) -> None:
    """Append `blocks` (from `toml_block`) to the configuration at `path`; ConfigError, OSError
    or UnicodeDecodeError leave it untouched."""
    original = path.read_text(encoding="utf-8")
    text = original if original.endswith("\n") or not original else original + "\n"
    replace_config(path, text + "".join(blocks))
