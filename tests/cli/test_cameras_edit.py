"""`rtcc-edge cameras list|remove|rename|set|passwd` through the real CLI on a real
configuration file (issue 15): comments kept, nothing written on bad input, passwords stored
encrypted, and only the owner may change anything."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import SharingMode, load_config
from agent.secretbox import SecretBox
from tests.support.camsim import CamsimRun, camera, run_cameras

CLI = "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))"
LONG_ID = "entrance-north-parking-lot-camera-over-the-loading-dock-door-01"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        "# Corner Grocery\n"
        f'state_dir = "{tmp_path / "state"}"\n\n'
        '[site]\nid = "corner"\nname = "Corner Grocery"\n\n'
        "# the door, kept in mind\n"
        "[[cameras]]\n"
        'id = "front-door"\nname = "Front door"\n'
        'rtsp_url = "rtsp://192.0.2.10/stream1"\nusername = "admin"\nsecret = "old"\n\n'
        "[[cameras]]\n"
        f'id = "{LONG_ID}"\nname = "Loading dock"\n'
        'onvif_url = "http://192.0.2.11/onvif/device_service"\n'
        'sharing = "registry"\n'
        "[cameras.location]\nlat = 45.5\nlon = -73.6\n"
    )
    return path


def run_cli(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
    finally:
        sys.stdin = old_stdin
    assert "Traceback" not in err.getvalue()
    return status, out.getvalue(), err.getvalue()


def test_list_shows_every_id_whole_even_on_a_narrow_terminal(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    status, out, err = run_cli("--config", str(config), "cameras", "list")
    assert status == 0, err
    assert LONG_ID in out.splitlines()
    assert "front-door" in out
    status, out, _ = run_cli("--config", str(config), "cameras", "list", "--json")
    assert status == 0
    assert "old" not in out and '"has_password": true' in out


def test_rename_and_remove_keep_the_comments(config: Path) -> None:
    status, out, err = run_cli("--config", str(config), "cameras", "rename", "front-door", "Door")
    assert status == 0, err
    assert "systemctl reload" in out
    assert load_config(config).cameras[0].name == "Door"
    assert "# the door, kept in mind" in config.read_text()
    status, _, err = run_cli("--config", str(config), "cameras", "remove", LONG_ID)
    assert status == 0, err
    assert [c.id for c in load_config(config).cameras] == ["front-door"]
    assert "# Corner Grocery" in config.read_text()
    status, _, err = run_cli("--config", str(config), "cameras", "remove", "front-door")
    assert status == 0, err
    assert load_config(config).cameras == []


def test_set_changes_sharing_location_and_stream(config: Path) -> None:
    status, _, err = run_cli(
        "--config", str(config), "cameras", "set", "front-door", "--sharing", "integrated",
        "--location", "45.51,-73.61", "--fov", "95", "--live", "--rtsp", "rtsp://192.0.2.12/main",
    )  # fmt: skip
    assert status == 0, err
    camera = load_config(config).cameras[0]
    assert camera.sharing is SharingMode.INTEGRATED and camera.live
    assert camera.location is not None and camera.location.fov == 95
    assert (camera.location.lat, camera.location.lon) == (45.51, -73.61)
    assert camera.rtsp_url == "rtsp://192.0.2.12/main"
    status, _, err = run_cli("--config", str(config), "cameras", "set", "front-door", "--no-live")
    assert status == 0, err
    assert not load_config(config).cameras[0].live


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["rename", "nope", "X"], "no camera 'nope'"),
        (["remove", "nope"], "cameras list"),
        (["set", "front-door"], "nothing to change"),
        (["set", "front-door", "--sharing", "registry"], "location"),
        (["set", "front-door", "--live"], "would not be valid"),
        (["set", "front-door", "--fov", "30"], "no location yet"),
        (["set", "front-door", "--fov", "999", "--location", "1,2"], "between 0 and 360"),
        (["set", "front-door", "--location", "north"], "--location"),
        (["set", "front-door", "--rtsp", "rtsp://u:p@192.0.2.1/x"], "without a username"),
        (["set", "front-door", "--rtsp", "http://192.0.2.1/x"], "not an rtsp:// URL"),
        (["rename", "front-door", "two\nlines"], "one line"),
    ],
)
def test_bad_input_is_a_plain_sentence_exit_2_and_nothing_written(
    config: Path, argv: list[str], words: str
) -> None:
    before = config.read_bytes()
    with contextlib.suppress(SystemExit):  # argparse's own usage errors exit 2 too
        status, _, err = run_cli("--config", str(config), "cameras", *argv)
        assert status == 2
        assert words in err, err
    assert config.read_bytes() == before


def test_passwd_stores_the_password_encrypted(config: Path) -> None:
    status, _, err = run_cli(
        "--config", str(config), "cameras", "passwd", "front-door", "--password-stdin",
        "--no-check", stdin="New-Pass-8812\n",
    )  # fmt: skip
    assert status == 0, err
    text = config.read_text()
    assert "New-Pass-8812" not in text and "enc:v1:" in text
    camera = load_config(config).cameras[0]
    assert camera.secret is not None
    box = SecretBox.load_or_create(load_config(config).state_dir)
    assert box.decrypt(camera.secret.get_secret_value()) == "New-Pass-8812"
    status, _, err = run_cli(
        "--config",
        str(config),
        "cameras",
        "passwd",
        LONG_ID,
        "--password-stdin",
        stdin="x\n",
    )
    assert status == 2 and "no username" in err


@pytest.fixture
def shared_config() -> Iterator[Path]:
    """A configuration another user can read (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        path = Path(directory) / "agent.toml"
        path.write_text(
            f'state_dir = "{directory}/state"\n[site]\nid = "corner"\nname = "Corner"\n'
            '[[cameras]]\nid = "door"\nname = "Door"\nrtsp_url = "rtsp://192.0.2.1/s"\n'
        )
        path.chmod(0o644)
        yield path


def test_someone_who_is_not_the_owner_cannot_change_cameras(shared_config: Path) -> None:
    before = shared_config.read_bytes()
    done = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
         sys.executable, "-c", CLI,
         "--config", str(shared_config), "cameras", "rename", "door", "Mine"],
        capture_output=True, text=True, cwd=Path(__file__).parents[2], check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Only the owner can do that" in done.stderr
    assert "Traceback" not in done.stderr
    assert shared_config.read_bytes() == before


PASSWORD = "Cam-Pass-5521"


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="onvif-cam", host="127.0.0.70", password=PASSWORD),
        camera("generic", id="rtsp-cam", host="127.0.0.71", password=PASSWORD),
    ) as run:
        yield run


@pytest.mark.parametrize("kind", ["onvif", "rtsp"])
def test_passwd_tries_the_new_password_on_the_camera_first(
    tmp_path: Path, cams: CamsimRun, kind: str
) -> None:
    cam = cams["onvif-cam" if kind == "onvif" else "rtsp-cam"]
    where = (
        f'onvif_url = "{cam.onvif_url}"'
        if kind == "onvif"
        else f'rtsp_url = "{cam.rtsp_url("main")}"'
    )
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[site]\nid = "corner"\nname = "Corner"\n'
        f'[[cameras]]\nid = "door"\nname = "Door"\n{where}\nusername = "{cam.username}"\n'
        'secret = "old"\n'
    )
    before = path.read_bytes()
    status, _, err = run_cli(
        "--config", str(path), "cameras", "passwd", "door", "--password-stdin", stdin="wrong\n"
    )
    assert status == 1, err  # the camera refused it: nothing stored
    assert "not changed" in err
    assert path.read_bytes() == before
    status, out, err = run_cli(
        "--config", str(path), "cameras", "passwd", "door", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 0, err
    assert "the camera accepted the new password" in out
    config = load_config(path)
    secret = config.cameras[0].secret
    assert secret is not None
    box = SecretBox.load_or_create(config.state_dir)
    assert box.decrypt(secret.get_secret_value()) == PASSWORD
