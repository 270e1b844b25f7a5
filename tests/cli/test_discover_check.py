"""`rtcc-edge discover`, `check` and `cameras add` as a technician runs them, against camsim
cameras and servers that are not cameras; outputs are validated against the documented models."""

from __future__ import annotations

import contextlib
import io
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from agent.camera_info import read_camera_facts
from agent.cli import main
from agent.compat.report import CameraReport, DiscoveryReport
from agent.config import load_config
from agent.secretbox import SecretBox
from tests.onvif.servers import closed_port, http_server, silent_server
from tests.support.camsim import CamsimRun, camera, run_cameras
from tests.support.ffprobe import ffprobe, video_stream

PASSWORD = "Tech-Visit-2231"


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="hik", host="127.0.0.40", password=PASSWORD),
        camera("budget", id="budget", host="127.0.0.41", password=PASSWORD),
        camera("budget-dvr", id="dvr", host="127.0.0.42", password=PASSWORD),
    ) as run:
        yield run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        "# Corner Grocery — set up by the installer\n"
        f'state_dir = "{tmp_path / "state"}"\n\n'
        "[site]\n"
        'id = "corner"\n'
        'name = "Corner Grocery"  # as on the sign\n\n'
        "[store]\n"
        'max_bytes = "500GB"\n'
    )
    path.chmod(0o640)
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
    return status, out.getvalue(), err.getvalue()


def discover(config: Path, cams: CamsimRun, *extra: str) -> tuple[int, str, str]:
    ports = ",".join(str(c.onvif_port) for c in cams)
    return run_cli(
        "--config", str(config), "discover", "--scan", "127.0.0.40/31", "--scan", "127.0.0.42",
        "--no-multicast",
        "--ws-port", str(cams.discovery_port), "--ports", ports, "--wait", "1", *extra,
    )  # fmt: skip


# -- discover ------------------------------------------------------------------------------------


def test_discover_finds_the_cameras_and_remembers_them(config: Path, cams: CamsimRun) -> None:
    status, out, err = discover(config, cams, "--json")
    assert status == 0, err
    report = DiscoveryReport.model_validate_json(out)
    assert [c.host for c in report.cameras] == ["127.0.0.40", "127.0.0.41", "127.0.0.42"]
    assert [c.index for c in report.cameras] == [1, 2, 3]
    hik, budget, dvr = report.cameras
    assert hik.vendor is not None and hik.vendor.id == "hikvision"
    assert hik.device_url == cams["hik"].onvif_url
    assert [q.id for q in budget.quirks] == ["xaddr_zero_host"]
    assert budget.clock_offset_s is not None and budget.clock_offset_s > 400
    assert dvr.found_by == ["port_sweep"] and [q.id for q in dvr.quirks] == ["no_ws_discovery"]
    cached = DiscoveryReport.model_validate_json(
        (config.parent / "state/discovery.json").read_bytes()
    )
    assert cached == report


def test_discover_as_a_table(
    config: Path, cams: CamsimRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "140")
    status, out, _err = discover(config, cams)
    assert status == 0
    assert f"127.0.0.40:{cams['hik'].onvif_port}" in out and "DS-2CD2023G0-I" in out
    assert "ignores WS-Discovery" in out and "cameras add" in out


def test_discover_with_nothing_there(config: Path) -> None:
    status, out, err = run_cli(
        "--config", str(config), "discover", "--scan", "127.0.0.60/32", "--no-multicast",
        "--ports", str(closed_port()), "--ws-port", str(closed_port()), "--wait", "0.3",
    )  # fmt: skip
    assert status == 1 and out == "" and "No ONVIF camera answered" in err


def test_discover_refuses_a_huge_range(config: Path) -> None:
    status, out, err = run_cli("--config", str(config), "discover", "--scan", "10.0.0.0/16")
    assert status == 2 and out == "" and "at most a /22" in err


# -- check -------------------------------------------------------------------------------------


def check_json(*argv: str, stdin: str = "") -> tuple[int, CameraReport, str]:
    status, out, err = run_cli("check", *argv, "--json", stdin=stdin)
    assert "Traceback" not in err
    return status, CameraReport.model_validate_json(out), err


def statuses(report: CameraReport) -> dict[str, str]:
    return {c.id: c.status for c in report.checks}


def test_check_an_address(cams: CamsimRun, tmp_path: Path) -> None:
    cam = cams["hik"]
    snapshot = tmp_path / "front.jpg"
    status, report, _err = check_json(
        f"{cam.host}:{cam.onvif_port}", "--username", cam.username, "--password-stdin",
        "--snapshot", str(snapshot), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 0 and report.status == "warn"  # 2 MP: below the recommended 3 MP
    assert statuses(report)["resolution"] == "warn"
    assert statuses(report)["onvif"] == statuses(report)["streaming"] == "pass"
    assert report.identity is not None and report.identity.model == "DS-2CD2023G0-I"
    assert report.storage is None  # no configuration: retention cannot be judged
    picture = video_stream(ffprobe(snapshot))
    assert (picture["codec_name"], picture["width"]) == ("mjpeg", 1920)


def test_check_a_failing_camera_exits_1(cams: CamsimRun) -> None:
    cam = cams["budget"]
    status, report, _err = check_json(
        cam.onvif_url, "--username", cam.username, "--password-stdin", stdin=PASSWORD
    )
    assert status == 1 and report.status == "fail"
    assert statuses(report)["clock"] == "fail" and statuses(report)["onvif"] == "warn"


def test_check_an_rtsp_url_with_credentials_in_it(cams: CamsimRun) -> None:
    cam = cams["hik"]
    url = cam.rtsp_url("main", credentials=True)
    status, out, err = run_cli("check", url, "--json")
    assert PASSWORD not in out and PASSWORD not in err
    report = CameraReport.model_validate_json(out)
    assert report.target == cam.rtsp_url("main")
    assert statuses(report)["onvif"] == "skip" and statuses(report)["streaming"] == "pass"
    assert report.stream is not None and report.stream.url_source == "given"
    assert status == 0


def test_check_the_human_output(cams: CamsimRun) -> None:
    cam = cams["budget"]
    status, out, _err = run_cli(
        "check", cam.onvif_url, "--username", cam.username, "--password-stdin", stdin=PASSWORD
    )
    assert status == 1
    for words in ("Camera clock", "FAIL", "password_text_only", "Enable NTP", "overall: FAIL"):
        assert words in out


async def _router_page(_request: web.Request) -> web.Response:
    return web.Response(text="<html><title>Router</title></html>", content_type="text/html")


def test_check_a_web_server_that_is_not_a_camera() -> None:
    with http_server(_router_page) as port:
        status, report, _err = check_json(
            f"127.0.0.1:{port}", "--username", "admin", "--password-stdin", stdin="x"
        )
    assert status == 1
    assert report.onvif is not None and report.onvif.error is not None
    assert report.onvif.error.kind == "not_onvif"
    onvif = next(c for c in report.checks if c.id == "onvif")
    assert onvif.status == "fail" and onvif.remedy and "Enable ONVIF" in onvif.remedy


def test_check_a_closed_port() -> None:
    status, report, _err = check_json(
        f"127.0.0.1:{closed_port()}", "--username", "admin", "--password-stdin", stdin="x"
    )
    assert status == 1
    assert report.onvif is not None and report.onvif.error is not None
    assert report.onvif.error.kind == "unreachable"
    assert "refused" in report.onvif.error.message


def test_check_a_camera_that_never_answers() -> None:
    with silent_server() as port:
        status, report, _err = check_json(
            f"127.0.0.1:{port}", "--username", "admin", "--password-stdin", "--timeout", "1",
            stdin="x",
        )  # fmt: skip
    assert status == 1
    assert report.onvif is not None and report.onvif.error is not None
    assert report.onvif.error.kind == "timeout"


def test_check_wrong_credentials(cams: CamsimRun) -> None:
    cam = cams["hik"]
    status, report, _err = check_json(
        cam.onvif_url, "--username", cam.username, "--password-stdin", stdin="wrong"
    )
    assert status == 1
    assert report.onvif is not None and report.onvif.error is not None
    assert report.onvif.error.kind == "auth"


@pytest.mark.parametrize("target", ["!!", "http://", "rtsp://h:99999/x", "host:port"])
def test_check_nonsense_is_a_usage_error(target: str) -> None:
    status, out, err = run_cli("check", target, "--username", "u", "--password-stdin")
    assert status == 2 and out == "" and "Traceback" not in err


def test_check_a_configured_camera(config: Path, cams: CamsimRun) -> None:
    cam = cams["hik"]
    secret = SecretBox.load_or_create(config.parent / "state").encrypt(PASSWORD)
    with config.open("a") as file:
        file.write(
            f'\n[[cameras]]\nid = "front"\nname = "Front"\nonvif_url = "{cam.onvif_url}"\n'
            f'username = "{cam.username}"\nsecret = "{secret}"\n'
        )
    status, out, _err = run_cli("--config", str(config), "check", "front", "--json")
    report = CameraReport.model_validate_json(out)
    assert report.camera_id == "front" and report.onvif and report.onvif.error is None
    assert report.storage is not None and report.storage.cameras_sharing == 1
    assert statuses(report)["retention"] in ("pass", "warn", "fail")
    assert status == (1 if report.status == "fail" else 0)
    # What the check learned is kept for clip manifests and for the registry's verdict.
    facts = read_camera_facts(config.parent / "state", "front")
    assert (facts.vendor, facts.model) == ("Hikvision", cam.persona.model)
    assert facts.firmware == cam.persona.firmware
    assert facts.verdict == report.status
    assert facts.clock_offset_s is not None
    # And what to do about each doubtful check, in the check's own words, for the owner's page.
    doubtful = [c for status in ("fail", "warn") for c in report.checks if c.status == status]
    assert len(facts.advice) == len(doubtful)
    for check, advice in zip(doubtful, facts.advice, strict=True):
        assert advice.startswith(check.reason)
        assert check.remedy is None or advice.endswith(check.remedy)


# -- cameras add -----------------------------------------------------------------------------


def test_add_a_discovered_camera(config: Path, cams: CamsimRun) -> None:
    assert discover(config, cams)[0] == 0
    before = config.read_text()
    status, out, err = run_cli(
        "--config", str(config), "cameras", "add", "1", "--username", "admin",
        "--password-stdin", "--id", "front-door", "--name", 'Front "door"',
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert status == 0, err
    assert "front-door" in out
    after = config.read_text()
    assert after.startswith(before)  # comments and everything else untouched
    assert PASSWORD not in after
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    loaded = load_config(config)
    added = loaded.camera("front-door")
    assert added is not None and added.name == 'Front "door"'
    assert added.onvif_url == cams["hik"].onvif_url and added.username == "admin"
    assert added.secret is not None
    token = added.secret.get_secret_value()
    assert token.startswith("enc:v1:")
    assert SecretBox.load(loaded.state_dir).decrypt(token) == PASSWORD

    # The next one by address, with a default id and name; then the same camera again.
    budget = cams["budget"]
    status, out, err = run_cli(
        "--config", str(config), "cameras", "add", f"{budget.host}:{budget.onvif_port}",
        "--username", "admin", "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 0, err
    ids = [c.id for c in load_config(config).cameras]
    assert ids == ["front-door", f"cam-127-0-0-41-{budget.onvif_port}"]
    assert load_config(config).cameras[1].name == "IPCAM IPC-XM530"
    again = config.read_text()
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", "2", "--username", "admin",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 2 and "already configured" in err and config.read_text() == again


def test_add_with_sharing_and_location(config: Path, cams: CamsimRun) -> None:
    dvr = cams["dvr"]
    address = f"{dvr.host}:{dvr.onvif_port}"
    # A listed camera without a location, and live on a registry camera, are refused up front.
    for extra, message in (
        (("--sharing", "registry"), "give --location"),
        (("--sharing", "registry", "--live", "--location", "35.1,-106.6"), "--live needs"),
    ):
        status, _out, err = run_cli(
            "--config", str(config), "cameras", "add", address, "--username", "admin",
            "--password-stdin", *extra, stdin=PASSWORD,
        )  # fmt: skip
        assert status == 2 and message in err
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", address, "--username", "admin",
        "--password-stdin", "--id", "lot", "--sharing", "integrated", "--live",
        "--location", "35.0846,-106.6509", "--heading", "270", "--fov", "90",
        "--description", "the parking lot", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 0, err
    lot = load_config(config).camera("lot")
    assert lot is not None and lot.sharing.value == "integrated" and lot.live
    assert lot.location is not None
    assert (lot.location.lat, lot.location.lon, lot.location.heading) == (35.0846, -106.6509, 270)
    assert lot.location.description == "the parking lot"


def test_add_refuses_wrong_credentials_and_leaves_the_file_alone(
    config: Path, cams: CamsimRun
) -> None:
    before = config.read_text()
    cam = cams["hik"]
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", cam.onvif_url, "--username", "admin",
        "--password-stdin", stdin="not-it",
    )  # fmt: skip
    assert status == 1 and "refused" in err
    assert config.read_text() == before


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["7", "--username", "a", "--password-stdin"], "run `rtcc-edge discover` first"),
        (["127.0.0.40:1", "--id", "Bad Id", "--username", "a"], "camera id"),
        (["rtsp://127.0.0.40/x", "--username", "a"], "ONVIF address"),
        (["127.0.0.40:1", "--username", "a"], "--password-stdin"),
    ],
)
def test_add_usage_errors(config: Path, argv: list[str], words: str) -> None:
    before = config.read_text()
    status, _out, err = run_cli("--config", str(config), "cameras", "add", *argv)
    assert status == 2 and words in err
    assert config.read_text() == before


def test_add_keeps_the_file_when_the_result_would_not_load(config: Path, cams: CamsimRun) -> None:
    # A file that loads now but where a camera id cannot be appended: `cameras` is not an
    # array of tables here, so appending [[cameras]] would make the TOML invalid.
    config.write_text("cameras = []\n" + config.read_text())
    before = config.read_text()
    cam = cams["hik"]
    status, _out, err = run_cli(
        "--config", str(config), "cameras", "add", cam.onvif_url, "--username", "admin",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert status == 2 and "would not be valid" in err
    assert config.read_text() == before
    assert not [p for p in config.parent.iterdir() if p.name.endswith(".tmp")]
