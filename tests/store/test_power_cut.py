"""A power cut: what reaches the disk, and what the index keeps.

* The real daemon records a camsim camera on a loop-mounted ext4 image in a private mount
  namespace; every agent process is killed with SIGKILL and the image copied at that moment
  (what the virtual disk held); the copy is mounted and reconciled. The loss is read from the
  SEI capture times of the footage (`bench/crash_loss.py` does the work; this asserts its
  bound).
* The index's write-ahead log lost (as with `synchronous = NORMAL` before segment rows were made
  durable): the segments it knew only there are quarantined at start-up; `store verify` and
  `store status` report them, and `store verify --repair` puts them back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.store import ClipStore, SegmentState
from agent.store.model import from_us
from camsim.sei import stamps_in_file
from tests.store.conftest import Record, SpecAt, check_segment
from tests.support.ffprobe import ffprobe
from tests.support.media import MediaSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mkfs.ext4") is None,
    reason="a power cut is simulated with a loop-mounted ext4 image: needs root, unshare, mkfs",
)
def test_a_power_cut_loses_at_most_about_a_fragment() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.crash_loss", "--kinds", "powercut", "--runs", "1", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    result = json.loads(done.stdout)
    [run] = result["runs"]
    print(f"power cut: {run}")
    assert not run["kept_nothing"] and run["frames"] > 0, run
    assert run["verify_ok"] and run["quarantined"] == 0, run
    # The fragment being assembled (1 s), the packets the worker had not read yet (its read
    # batch, 0.5 s) and the fragment whose fdatasync was in flight: well under the 6 s a cut
    # cost when only the file system's own 5 s journal commits reached the disk.
    assert run["lost_s"] <= 2.0, run


CONFIG = """
state_dir = "{state}"
[site]
id = "s"
name = "Shop"
[store]
segment_seconds = 10
min_free = 0
"""


def _at(spec: MediaSpec) -> datetime:
    return from_us(spec.start_us)


def _cli(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, result


def test_segments_the_index_lost_are_reported_and_put_back(
    tmp_path: Path, spec_at: SpecAt, record: Record
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"))
    agent = load_config(config)
    with ClipStore.from_config(agent) as store:
        record(store, "cam1", spec_at(0, seconds=20))
        index = store.index.path
    kept = tmp_path / "index-before.sqlite3"
    shutil.copyfile(index, kept)  # closed cleanly: everything is in the main file
    with ClipStore.from_config(agent) as store:
        record(store, "cam1", spec_at(20, seconds=30, first_frame=300))
        lost = {
            row.path: row for row in store.segments("cam1") if row.start_us >= spec_at(20).start_us
        }
    assert len(lost) == 3
    # The write-ahead log that held those rows is gone: the index is as it was before them.
    shutil.copyfile(kept, index)
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)

    with ClipStore.from_config(agent) as store:
        report = store.reconcile()  # what the next daemon start does
    assert len(report.quarantined) == 3

    code, verify = _cli(config, "store", "verify")
    assert code == 1 and not verify["ok"]
    flagged = {p["name"] for p in verify["problems"] if p["kind"] == "lost_by_index"}
    assert flagged == set(lost), verify["problems"]
    code, status = _cli(config, "store", "status")
    assert code == 0 and {item["segment"] for item in status["lost_by_index"]} == set(lost)

    doctor = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "doctor", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    checks = {c["id"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["store_integrity"]["status"] == "warn", checks
    assert "store verify --repair" in checks["store_integrity"]["remedy"]

    code, repaired = _cli(config, "store", "verify", "--repair")
    assert code == 0 and repaired["ok"], repaired
    assert sorted(r["segment"] for r in repaired["repaired"] if r["readopted"]) == sorted(lost)

    with ClipStore.from_config(agent) as store:
        rows = {row.path: row for row in store.segments("cam1")}
        for path, before in lost.items():
            row = rows[path]
            assert row.state is SegmentState.RECOVERED and row.prev_sha256 is None
            assert (row.sha256, row.frames, row.start_us) == (
                before.sha256,
                before.frames,
                before.start_us,
            )
            check_segment(store, row)  # ffprobe, hash and frame count agree
        # Recording goes on; the chain runs on from the segments it had kept.
        record(store, "cam1", spec_at(60, seconds=12, first_frame=5000))
        assert store.verify().ok
        assert not store.coverage("cam1", _at(spec_at(1)), _at(spec_at(50))).gaps
        clip = tmp_path / "across.mp4"
        store.extract("cam1", _at(spec_at(15)), _at(spec_at(40)), clip)
    ffprobe(clip)
    numbers = [s.frame_number for s in stamps_in_file(str(clip))]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
