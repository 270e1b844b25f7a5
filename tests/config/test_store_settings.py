"""Store settings: `config check` refuses values that cannot work together (issue 11 item 1),
and `config example` / `config store-size` size the budget from the disk actually there (item
13). Disks are real tmpfs mounts of known sizes (a tmpfs costs no memory until written)."""

from __future__ import annotations

import contextlib
import io
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.store.sizing import GB, MB, disk_space
from tests.support import tmpfs

SITE = '[site]\nid = "site-1"\nname = "Corner Grocery"\n'
CAMERA = '[[cameras]]\nid = "cam{n}"\nname = "Cam {n}"\nrtsp_url = "rtsp://10.0.0.{n}/s"\n'


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), " ".join(err.getvalue().split())


@pytest.fixture
def big_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs.small_disk(tmp_path, size="500g", mode="0755", name="big") as mount:
        yield mount


def test_check_refuses_store_values_that_cannot_work_together(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    cameras = "".join(CAMERA.format(n=n) for n in (1, 2))
    path.write_text(
        SITE
        + '[store]\nmin_free = "10MB"\nmax_bytes = "50MB"\nmax_age = "1h"\nkeep_recent = "2h"\n'
        + cameras
    )
    status, _, err = run("--config", str(path), "config", "check")
    assert status == 2
    # Two cameras, 60 s segments at about 4 Mbit/s: 60 MB between two retention passes.
    assert (
        "store.min_free: 10MB is less than one 60 s segment of each of the 2 camera(s) at about "
        "4 Mbit/s (60MB): the disk would fill up before retention runs again, and recording "
        'would stop each time. Set store.min_free = "60MB" or more.'
    ) in err
    assert "store.max_bytes: 50MB cannot hold two of" in err
    assert 'Set store.max_bytes = "120MB" or more.' in err
    assert "store.keep_recent: 2h is not shorter than store.max_age (1h)" in err
    # What it says to set passes.
    path.write_text(
        SITE + '[store]\nmin_free = "60MB"\nmax_bytes = "120MB"\nmax_age = "1h"\n' + cameras
    )
    assert run("--config", str(path), "config", "check")[0] == 0


def test_example_is_sized_for_the_disk_it_will_record_on(tmp_path: Path, big_disk: Path) -> None:
    store = big_disk / "state" / "store"  # not created yet: measured at its parent
    status, text, _ = run(
        "--config", str(tmp_path / "absent.toml"), "config", "example", "--store", str(store)
    )
    assert status == 0
    total, free = disk_space(big_disk)
    config = tomllib.loads(text)["store"]
    # 5 % of the disk, at most 10 GB, as the reserve; everything else for footage.
    assert config["min_free"] == "10GB"
    assert config["max_bytes"] == f"{(free - 10 * GB) // GB}GB"
    assert f"sized for this disk: {free / GB:.1f} GB free of {total / GB:.1f} GB" in text
    budget = (free - 10 * GB) // GB * GB
    hours = budget / (4e6 / 8) / 3600  # about 290 on a 500 GiB disk
    assert f"About {hours:.0f} hours of footage for 1 camera(s) at 4.0 Mbit/s each." in text
    assert "Less than" not in text
    path = tmp_path / "agent.toml"
    path.write_text(text)
    assert run("--config", str(path), "config", "check")[0] == 0
    assert load_config(path).store.max_bytes == budget
    # Eight cameras do not get their 48 hours from this disk: said in the file itself.
    _, text, _ = run("config", "example", "--store", str(store), "--cameras", "8")
    assert f"About {hours / 8:.0f} hours of footage for 8 camera(s)" in text
    assert "Less than the 48 hours the program asks for" in text


def test_store_size_on_a_small_disk(tmp_path: Path) -> None:
    with tmpfs.small_disk(tmp_path, size="1g", mode="0755", name="small") as disk:
        status, out, _ = run(
            "config", "store-size", "--store", str(disk), "--cameras", "2", "--mbps", "2", "--json"
        )
        total, free = disk_space(disk)
    assert status == 0
    size = json.loads(out)
    # 5 % of 1 GiB is 54 MB, less than two 60 s segments of two 2 Mbit/s cameras (60 MB).
    assert size["min_free"] == 60 * MB
    assert size["max_bytes"] == (free - 60 * MB) // MB * MB
    assert size["disk_total"] == total and size["hours"] < 48
