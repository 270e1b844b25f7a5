"""A writer process killed with SIGKILL mid-segment: recovery loses at most ~1 s of footage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.config import load_config
from agent.media import fmp4
from agent.store import ClipStore, SegmentState
from tests.store.conftest import Record, SpecAt, check_segment
from tests.support.ffprobe import ffprobe
from tests.support.media import encode_stamped

REPO = Path(__file__).resolve().parents[2]


def _kill_after(store: ClipStore, media: Path, frames: int, *, speed: float = 4.0) -> int:
    """Run the feeder until it has fed `frames` frames, SIGKILL it; the last frame fed."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.store.feeder",
            str(store.root),
            "cam1",
            str(media),
            str(speed),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    last = -1
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "done":
                raise AssertionError("the feeder finished before it was killed")
            last = int(line)
            if last >= frames:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return last


def test_kill_9_mid_segment_loses_at_most_a_fragment(
    store: ClipStore, media_dir: Path, spec_at: SpecAt, record: Record
) -> None:
    spec = spec_at(0, seconds=40)
    media = encode_stamped(media_dir, spec)
    fed = _kill_after(store, media, 15 * 17 + 7)  # 17.5 s in: the middle of the 2nd segment
    rows = store.segments("cam1")
    assert [r.state for r in rows] == [SegmentState.COMPLETE, SegmentState.RECORDING]
    crashed = rows[1]
    # Simulate a write torn by the crash as well: half a fragment at the end of the file.
    path = store.layout.segment(crashed.path)
    with path.open("rb") as handle:
        scan = fmp4.scan_file(handle)
    torn = path.read_bytes()[scan.fragments[0].offset : scan.fragments[0].offset + 3000]
    with path.open("ab") as handle:
        handle.write(torn)

    report = store.reconcile()
    assert report.recovered == (crashed.path,)
    assert report.lost_bytes == 3000
    assert report.clean, report
    recovered = store.segments("cam1")[1]
    assert recovered.state is SegmentState.RECOVERED
    assert recovered.prev_sha256 == rows[0].sha256  # still in the chain
    stamps = check_segment(store, recovered)  # ffprobe, hash and frame count agree
    lost = fed - stamps[-1].frame_number
    assert 0 <= lost <= spec.fps * 1 + 1, f"lost {lost} frames"  # at most ~1 s
    assert stamps[0].frame_number == rows[0].frames  # nothing missing before it
    assert recovered.end_us == recovered.wall_us(recovered.end_pts)

    # Recording resumes; the next segment links to the recovered one.
    record(store, "cam1", spec_at(60, seconds=12, first_frame=5000))
    rows = store.segments("cam1")
    assert rows[2].prev_sha256 == recovered.sha256
    assert store.verify().ok


def test_crashed_writer_is_recovered_by_the_next_writer(
    store: ClipStore, media_dir: Path, spec_at: SpecAt, record: Record
) -> None:
    """Without a start-up reconcile, opening the camera's next writer settles the open segment."""
    media = encode_stamped(media_dir, spec_at(0, seconds=30))
    _kill_after(store, media, 15 * 5, speed=8.0)
    [open_row] = store.segments("cam1")
    assert open_row.state is SegmentState.RECORDING
    record(store, "cam1", spec_at(40, seconds=5, first_frame=5000))
    first, second = store.segments("cam1")
    assert first.state is SegmentState.RECOVERED
    assert second.prev_sha256 == first.sha256
    for row in (first, second):
        check_segment(store, row)
        ffprobe(store.layout.segment(row.path))


def _verify_cli(config: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "store", "verify", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def test_verify_names_open_segments_and_those_needing_recovery(
    tmp_path: Path, media_dir: Path, spec_at: SpecAt
) -> None:
    """Before the daemon restarts, `store verify` must not call a torn open segment OK."""
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[site]\nid = "s"\nname = "Shop"\n'
        "[store]\nsegment_seconds = 10\nmin_free = 0\n"
    )
    media = encode_stamped(media_dir, spec_at(0, seconds=40))
    with ClipStore.from_config(load_config(config)) as store:
        root = store.root
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store.feeder", str(root), "cam1", str(media), "1.0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            assert line.strip() != "done", "the feeder finished before it was looked at"
            if int(line) >= 15 * 12:  # 12 s in: the second segment is open
                break
        # The writer is alive: its open segment is listed, and it is not a problem.
        code, alive = _verify_cli(config)
        assert code == 0 and alive["ok"], alive
        [open_name] = alive["open_segments"]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    # Half a fragment torn at the end, as a crash mid-write leaves it.
    path = root / "segments" / open_name
    with path.open("rb") as handle:
        scan = fmp4.scan_file(handle)
    with path.open("ab") as handle:
        handle.write(path.read_bytes()[scan.fragments[0].offset :][:3000])

    code, dead = _verify_cli(config)
    assert code == 1 and not dead["ok"] and dead["open_segments"] == []
    [problem] = dead["problems"]
    assert (problem["kind"], problem["name"]) == ("needs_recovery", open_name)
    assert "3000 bytes of a torn fragment" in problem["detail"], problem
    text = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "store", "verify"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
        check=False,
    )
    assert (
        text.returncode == 1 and "needs_recovery" in text.stdout and "rtcc-edge run" in text.stdout
    )

    with ClipStore.from_config(load_config(config)) as store:
        assert store.reconcile().recovered == (open_name,)
    code, after = _verify_cli(config)
    assert code == 0 and after["ok"], after
