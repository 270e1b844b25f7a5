"""ffprobe as the independent checker of every media file the project writes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any


class FfprobeError(AssertionError):
    pass


def ffprobe(path: str | Path, *, count_frames: bool = False) -> dict[str, Any]:
    """Run ffprobe on `path`; raise FfprobeError if it reports any error or finds no video."""
    exe = shutil.which("ffprobe")
    if exe is None:
        raise FfprobeError("ffprobe is not installed (Debian package ffmpeg)")
    args = [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    if count_frames:
        args.append("-count_frames")
    proc = subprocess.run([*args, str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or proc.stderr.strip():
        raise FfprobeError(f"ffprobe rejected {path}: rc={proc.returncode} {proc.stderr.strip()}")
    info: dict[str, Any] = json.loads(proc.stdout)
    if not any(s.get("codec_type") == "video" for s in info.get("streams", [])):
        raise FfprobeError(f"ffprobe found no video stream in {path}")
    return info


def video_stream(info: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in info["streams"] if s.get("codec_type") == "video")
