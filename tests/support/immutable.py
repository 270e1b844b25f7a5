"""A file the kernel refuses to change, even through a descriptor already open for writing:
`chattr +i` (ext4 and most disk file systems), undone whatever happens. What a failing or
read-only disk looks like to the process that writes the file (EPERM on every write), without
taking the whole file system away from the test."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def make_immutable(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make {path} immutable here: {done.stderr.strip()}")


def make_mutable(path: Path) -> None:
    subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def mutable_again(path: Path) -> Iterator[Path]:
    """Yields `path`; whatever the test made immutable there is writable again afterwards."""
    try:
        yield path
    finally:
        make_mutable(path)
