"""A real, small disk for disk-full tests: a tmpfs of a given size, unmounted whatever happens.

Mounting needs root (the suite runs as root, like CI); elsewhere the test is skipped with the
reason, never silently passed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(
    parent: Path, *, size: str, mode: str = "0700", name: str = "disk"
) -> Iterator[Path]:
    """`<parent>/<name>`, a tmpfs of `size` (e.g. "6m"), for the duration of the block."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = parent / name
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
