from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from agent.cli import main
from agent.cli.config_cmd import example_text
from agent.config import ConfigError, SharingMode, load_config, parse_duration


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


MINIMAL = """
[site]
id = "site-1"
name = "Corner Grocery"
"""


def test_example_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, example_text())
    config = load_config(path)
    assert [c.id for c in config.cameras] == ["front-door", "parking-lot", "stockroom", "nvr-ch3"]
    assert config.cameras[3].channel == 3
    assert config.cameras[0].sharing is SharingMode.INTEGRATED
    assert config.store.max_bytes == 200 * 10**9
    assert config.store.max_age == timedelta(days=30)
    assert main(["--config", str(path), "config", "check"]) == 0


def test_minimal_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.store_path == Path("/var/lib/rtcc-edge/store")
    assert config.policy.max_clip_window == timedelta(minutes=30)
    assert config.upload.concurrency == 2
    assert config.cameras == []


def test_every_problem_named_by_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + """
colour = "blue"
[store]
max_age = "forever"
[[cameras]]
id = "Front Door"
name = "x"
onvif_url = "ftp://cam"
[[cameras]]
id = "back"
name = "Back"
rtsp_url = "rtsp://10.0.0.2/stream"
sharing = "registry"
live = true
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    fields = {p.field for p in caught.value.problems}
    assert {
        "site.colour",
        "store.max_age",
        "cameras[0].id",
        "cameras[0].onvif_url",
        "cameras[1]",
    } <= fields
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "cameras[0].id" in err and "store.max_age" in err and "site.colour" in err


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="syntax"):
        load_config(write(tmp_path, "[site\nid = 1"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_duplicate_camera_ids(tmp_path: Path) -> None:
    camera = '[[cameras]]\nid = "a"\nname = "A"\nrtsp_url = "rtsp://h/s"\n'
    with pytest.raises(ConfigError, match="used twice"):
        load_config(write(tmp_path, MINIMAL + camera + camera))


def test_broker_needs_identity(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '[rtcc]\nbroker_url = "mqtts://rtcc.example:8883"\nissuer = "x"\njwks_file = "/j"\n'
    )
    with pytest.raises(ConfigError, match="cert_file and key_file"):
        load_config(write(tmp_path, text))
    plaintext = MINIMAL + '[rtcc]\nbroker_url = "mqtt://rtcc.example:1883"\n'
    with pytest.raises(ConfigError, match="only allowed to localhost"):
        load_config(write(tmp_path, plaintext))


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv("RTCC_EDGE_LOG__LEVEL", "debug")
    monkeypatch.setenv("RTCC_EDGE_SITE__NAME", "From env")
    monkeypatch.setenv("RTCC_EDGE_CONFIG", str(path))
    config = load_config()
    assert config.log.level == "debug"
    assert config.site.name == "From env"


def test_plaintext_secret_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        MINIMAL + '[[cameras]]\nid = "a"\nname = "A"\nrtsp_url = "rtsp://h/s"\nsecret = "hunter2"\n'
    )
    path = write(tmp_path, text)
    assert main(["--config", str(path), "config", "check"]) == 0
    assert "stored in clear" in capsys.readouterr().err


def test_a_password_inside_an_rtsp_url_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MINIMAL + '[[cameras]]\nid = "a"\nname = "A"\nrtsp_url = "rtsp://u:hunter2@h/s"\n'
    path = write(tmp_path, text)
    assert main(["--config", str(path), "config", "check"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "carries a password in clear" in said and "--rtsp" in said


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_cli_entry_point_runs(tmp_path: Path) -> None:
    env = {**os.environ, "RTCC_EDGE_CONFIG": str(write(tmp_path, example_text()))}
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "config", "check", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"ok": true' in proc.stdout
