from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli import main
from agent.cli.config_cmd import example_text
from agent.config import ConfigError, SharingMode, load_config


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


CAMERA = '[[cameras]]\nid = "a"\nname = "A"\nrtsp_url = "rtsp://h/s"\n'


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[policy]\nrequests_per_hour = true\n", "policy.requests_per_hour"),
        ('[store]\nsegment_seconds = "10"\n', "store.segment_seconds"),
        ("[store]\nsegment_seconds = 60.0\n", "store.segment_seconds"),
        ('[store]\nfragment_seconds = "1"\n', "store.fragment_seconds"),
        ("[store]\nmax_bytes = true\n", "store.max_bytes"),
        ("[upload]\nconcurrency = false\n", "upload.concurrency"),
        ('[compat]\nmin_fps = "5"\n', "compat.min_fps"),
        ("[policy]\nallowed_upload_hosts = [1]\n", "policy.allowed_upload_hosts[0]"),
        (CAMERA + 'live = "yes"\n', "cameras[0].live"),
        (CAMERA + "enabled = 1\n", "cameras[0].enabled"),
        (CAMERA + 'channel = "2"\n', "cameras[0].channel"),
    ],
)
def test_values_are_not_coerced(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MINIMAL + text))
    assert field in {p.field for p in caught.value.problems}, caught.value.problems


def test_a_whole_number_is_a_number(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "[compat]\nmin_fps = 5\n"))
    assert config.compat.min_fps == 5.0


def test_a_file_that_is_not_utf8_is_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(MINIMAL.encode() + b'[[cameras]]\nid = "a"\nname = "Caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text: byte 0xe9 on line 7"):
        load_config(path)
    assert main(["--config", str(path), "config", "check"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def _enrolled(tmp_path: Path, jwks: Path) -> Path:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("")
    return write(
        tmp_path,
        f'state_dir = "{tmp_path / "state"}"\n'
        + MINIMAL
        + "[rtcc]\n"
        + 'broker_url = "mqtts://rtcc.example:8883"\nissuer = "https://rtcc.example"\n'
        + f'jwks_file = "{jwks}"\nca_file = "{tmp_path / "ca.pem"}"\n'
        + f'cert_file = "{tmp_path / "cert.pem"}"\nkey_file = "{tmp_path / "key.pem"}"\n',
    )


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no such file"),
        (b"{not json", "is not JSON"),
        (b'{"keys": []}', "holds no Ed25519 signing key"),
        (b"\xff\xfe", "is not JSON"),
    ],
)
@pytest.mark.parametrize("command", [["config", "check"], ["run"]])
def test_a_bad_jwks_file_is_a_sentence_for_check_and_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    said: str,
    command: list[str],
) -> None:
    jwks = tmp_path / "jwks.json"
    if content is not None:
        jwks.write_bytes(content)
    path = _enrolled(tmp_path, jwks)
    assert main(["--config", str(path), *command]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "rtcc.jwks_file" in err and said in err, err
    assert not (tmp_path / "state").exists(), "nothing started"


def test_files_named_on_the_command_line_are_sentences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12, item 10: a bad or missing file is a sentence and exit 2, never a traceback."""
    path = write(tmp_path, f'state_dir = "{tmp_path / "state"}"\n' + MINIMAL)
    bad_token = tmp_path / "token.bin"
    bad_token.write_bytes(b"\xff\xfe\x00")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    for argv, said in (
        (["enroll", "--hub", "https://hub.test", "--token-file", str(bad_token)], "not UTF-8"),
        (["enroll", "--hub", "https://hub.test", "--token-file", "/nonexistent/t"], "cannot read"),
        (["enroll", "--hub", "https://hub.test", "--token", "t", "--ca", "/nonexistent/ca.pem"],
         "cannot read the hub's CA"),
        (["enroll", "--hub", "https://hub.test", "--token", "t", "--ca", str(not_pem)],
         "is not a CA certificate file"),
        (["audit", "verify", "--witness", "/nonexistent/status.jwt"], "cannot read"),
    ):  # fmt: skip
        assert main(["--config", str(path), *argv]) == 2, argv
        err = " ".join(capsys.readouterr().err.split())
        assert said in err and "Errno" not in err, (argv, err)


def test_numbers_and_flags_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is strict, but an environment value is always text: read as JSON for a number
    or flag field (and only there: a name stays a name)."""
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv("RTCC_EDGE_STORE__SEGMENT_SECONDS", "30")
    monkeypatch.setenv("RTCC_EDGE_UPLOAD__BANDWIDTH_MBPS", "2.5")
    monkeypatch.setenv("RTCC_EDGE_COMPAT__MIN_FPS", "5")
    monkeypatch.setenv("RTCC_EDGE_SITE__NAME", "123")
    config = load_config(path)
    assert (config.store.segment_seconds, config.upload.bandwidth_mbps) == (30, 2.5)
    assert config.compat.min_fps == 5.0 and config.site.name == "123"
    monkeypatch.setenv("RTCC_EDGE_STORE__SEGMENT_SECONDS", "yes")
    with pytest.raises(ConfigError, match=r"store\.segment_seconds"):
        load_config(path)


_STRICT_FIELDS = [
    ("store", "segment_seconds", int, (10, 600)),
    ("store", "fragment_seconds", float, (5e-324, 1.0)),  # > 0
    ("policy", "requests_per_hour", int, (1, 10**6)),
    ("upload", "concurrency", int, (1, 16)),
    ("compat", "min_fps", float, (5e-324, float("inf"))),
]


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(_STRICT_FIELDS),
    value=st.one_of(
        st.booleans(),
        st.integers(-5, 2000),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=2000),
        st.text(alphabet="0123456789.yestrufaln", max_size=6),
    ),
)
def test_strict_values_property(
    tmp_path_factory: pytest.TempPathFactory,
    field: tuple[str, str, type, tuple[float, float]],
    value: object,
) -> None:
    """Whatever TOML value a number field gets, it loads only if it is that kind of number
    (an integer counts as a number with a fraction, never the other way) and in range; and then
    it is exactly the value written."""
    section, name, kind, (low, high) = field
    toml_value = json.dumps(value)  # TOML shares JSON's spelling for these scalars
    path = tmp_path_factory.mktemp("cfg") / "agent.toml"
    path.write_text(MINIMAL + f"[{section}]\n{name} = {toml_value}\n")
    right_type = type(value) is kind or (kind is float and type(value) is int)
    in_range = right_type and low <= value <= high  # type: ignore[operator]
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert not in_range, exc
        return
    assert in_range and getattr(getattr(config, section), name) == value
