"""The one atomic file writer: whole files or nothing, through real files and a real process
killed with SIGKILL in the middle of a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.fsutil import atomic_create, atomic_file, atomic_write


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_replaces_with_exactly_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    old_umask = os.umask(0o077)
    try:
        atomic_write(target, "new ✓", mode=0o640)
    finally:
        os.umask(old_umask)
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert target.stat().st_mode & 0o7777 == 0o640
    assert _leftovers(tmp_path) == []


def test_a_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "agent.toml"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old" and _leftovers(tmp_path) == []

    def refuse(path: Path) -> None:
        assert path.read_bytes() == b"not valid"  # the check sees the whole new file
        raise ValueError("would not load")

    with pytest.raises(ValueError, match="would not load"):
        atomic_write(target, b"not valid", check=refuse)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_create_once(tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    assert atomic_create(key, b"first", mode=0o600) is True
    assert atomic_create(key, b"second") is False
    assert key.read_bytes() == b"first" and key.stat().st_mode & 0o777 == 0o600
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("create", [False, True])
def test_sigkill_in_the_middle_of_a_write_leaves_the_old_file_or_none(
    tmp_path: Path, create: bool
) -> None:
    """The writer dies with half of its data written: the name holds the old content (or,
    for a create, does not exist), never a part of the new one."""
    target = tmp_path / "head.json"
    if not create:
        target.write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from agent.fsutil import atomic_file
        with atomic_file(Path({str(target)!r})) as handle:
            handle.write(b"x" * 1_000_000)
            handle.flush()
            print("half", flush=True)
            sys.stdin.read()  # killed here
            handle.write(b"rest")
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"half\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if create:
        assert not target.exists()
    else:
        assert target.read_bytes() == b"old"
    # What the killed writer left is a hidden temporary beside it, never the target's name.
    assert len(_leftovers(tmp_path)) == 1
