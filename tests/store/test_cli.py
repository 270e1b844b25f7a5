"""`rtcc-edge clips list|export` and `rtcc-edge store verify|status`, end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.log import configure_logging
from agent.store import ClipStore
from agent.store.files import hash_file
from agent.store.model import from_us
from camsim.sei import stamps_in_file
from tests.store.conftest import Record, SpecAt
from tests.support.ffprobe import ffprobe
from tests.support.media import MediaSpec

CONFIG = """
state_dir = "{state}"

[site]
id = "site-1"
name = "Corner Grocery"

[store]
segment_seconds = 10
min_free = 0

[[cameras]]
id = "cam1"
name = "Front door"
rtsp_url = "rtsp://127.0.0.1:8554/front"

[[cameras]]
id = "cam2"
name = "Back door"
rtsp_url = "rtsp://127.0.0.1:8554/back"
"""


@pytest.fixture(autouse=True)
def _logging_back_to_the_test_session() -> Iterator[None]:
    """`main()` points logging at the (captured) stderr of its test; undo that afterwards."""
    yield
    configure_logging("info", fmt="console")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return path


@pytest.fixture
def recorded(config_path: Path, record: Record, spec_at: SpecAt) -> tuple[MediaSpec, MediaSpec]:
    with ClipStore.from_config(load_config(config_path)) as store:
        first, second = spec_at(0, seconds=30), spec_at(45, seconds=20, first_frame=9000)
        record(store, "cam1", first)
        record(store, "cam1", second)
    return first, second


def _iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def test_clips_list(
    config_path: Path, recorded: tuple[MediaSpec, MediaSpec], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = recorded
    start, end = _iso(first.start_us - 5_000_000), _iso(second.end_us + 5_000_000)
    assert (
        run(
            config_path, "clips", "list", "--camera", "cam1", "--from", start, "--to", end, "--json"
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [s["segments"] for s in out["spans"]] == [3, 2]
    assert len(out["gaps"]) == 3  # before, between, after
    between = out["gaps"][1]
    assert between["start"].startswith(_iso(first.end_us + 20_000)[:19])
    assert between["seconds"] == pytest.approx(15.0, abs=0.001)
    assert run(config_path, "clips", "list", "--camera", "cam1", "--from", start, "--to", end) == 0
    human = capsys.readouterr().out
    assert "footage" in human and "gap" in human and "3 gap(s)" in human


def test_clips_export(
    config_path: Path,
    recorded: tuple[MediaSpec, MediaSpec],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = recorded
    out = tmp_path / "clip.mp4"
    start, end = _iso(first.start_us + 20_000_000), _iso(second.start_us + 5_000_000)
    args = ["clips", "export", "--camera", "cam1", "--from", start, "--to", end, "-o", str(out)]
    assert run(config_path, *args) == 0
    text = capsys.readouterr().out
    sha256, _ = hash_file(out)
    assert f"sha256 {sha256}" in text and "1 gap(s)" in text
    ffprobe(out)
    assert stamps_in_file(str(out))[0].frame_number == 19 * 15
    assert run(config_path, *args) == 2  # exists: refuses without --force
    assert "--force" in capsys.readouterr().err
    assert run(config_path, *args, "--force", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sha256"] == hash_file(out)[0] and len(result["gaps"]) == 1
    assert result["segments"][0]["sha256"] and result["codec"] == "h264"
    # Nothing recorded in the window: exit 1, no file.
    empty = tmp_path / "empty.mp4"
    assert (
        run(
            config_path,
            "clips",
            "export",
            "--camera",
            "cam2",
            "--from",
            "-10m",
            "--to",
            "now",
            "-o",
            str(empty),
        )
        == 1
    )
    assert not empty.exists() and "no footage" in capsys.readouterr().err


def test_store_status_and_verify(
    config_path: Path,
    recorded: tuple[MediaSpec, MediaSpec],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(config_path, "store", "status", "--json") == 0
    status = {c["camera"]: c for c in json.loads(capsys.readouterr().out)["cameras"]}
    assert status["cam1"]["hours"] == pytest.approx(50 / 3600, abs=1e-4)
    assert status["cam1"]["segments"] == 5 and not status["cam1"]["recording"]
    assert status["cam2"]["segments"] == 0  # configured, nothing recorded yet
    assert run(config_path, "store", "status") == 0
    assert "cam1" in capsys.readouterr().out

    assert run(config_path, "store", "verify") == 0
    assert "OK" in capsys.readouterr().out
    store = ClipStore.from_config(load_config(config_path))
    rows = store.segments("cam1")
    victim = store.layout.segment(rows[2].path)
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x40
    victim.write_bytes(bytes(data))
    store.layout.segment(rows[4].path).unlink()
    assert run(config_path, "store", "verify") == 1
    text = capsys.readouterr().out
    assert "altered" in text and "missing" in text
    assert run(config_path, "store", "verify", "--camera", "cam1", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert sorted((p["kind"], p["name"]) for p in report["problems"]) == [
        ("altered", rows[2].path),
        ("missing", rows[4].path),
    ]
    assert run(config_path, "store", "verify", "--camera", "cam2") == 0
    store.close()


def test_no_store_yet(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config_path, "store", "status") == 0
    assert "no footage recorded yet" in capsys.readouterr().out
    assert run(config_path, "store", "verify") == 2
    assert run(config_path, "clips", "list", "--camera", "cam1") == 2


@pytest.mark.parametrize(
    "bad",
    [
        ["clips", "list", "--camera", "../../etc"],
        ["clips", "export", "--camera", "cam1", "--from", "-5m", "--to", "now"],  # no -o
        ["store", "verify", "--camera", "CAM 1"],
    ],
)
def test_bad_arguments_are_usage_errors(config_path: Path, bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(config_path, *bad)
    assert exit_.value.code == 2


def test_times_are_read_with_the_site_zone(
    config_path: Path, recorded: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config_path, "clips", "list", "--camera", "cam1", "--from", "yesterday") == 2
    assert "--from: not a time: 'yesterday'" in capsys.readouterr().err
    # A local time is the site's wall clock (here the machine's zone), not refused or guessed.
    start = "2026-01-01 00:00"
    assert run(config_path, "clips", "list", "--camera", "cam1", "--from", start) != 2
    assert "not a time" not in capsys.readouterr().err


def test_reversed_window(config_path: Path, recorded: object, tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    assert (
        run(
            config_path,
            "clips",
            "export",
            "--camera",
            "cam1",
            "--from",
            "now",
            "--to",
            "-1h",
            "-o",
            str(out),
        )
        == 2
    )
    assert (
        run(config_path, "clips", "list", "--camera", "cam1", "--from", "now", "--to", "-1h") == 2
    )
    assert not out.exists()
