"""`camsim run` and `camsim personas` as separate processes, and the control API they serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.camsim import http_post, soap_envelope, username_token, ws_probe

REPO = Path(__file__).resolve().parents[2]
START_LIMIT = 120.0

CONFIG = """
[discovery]
port = 0
multicast = false

[[cameras]]
id = "front"
persona = "hikvision"
password = "front-pass"

[[cameras]]
id = "yard"
persona = "dahua"
password = "yard-pass"
host = "127.0.0.2"
"""


def camsim(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "camsim", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_ready(proc: subprocess.Popen[str], ready: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_LIMIT
    while not ready.exists():
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"camsim exited with {proc.returncode}: {err[-2000:]}")
        assert time.monotonic() < deadline, "camsim did not become ready"
        time.sleep(0.05)
    info: dict[str, Any] = json.loads(ready.read_text())
    return info


def stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("camsim-cli")
    config = directory / "cameras.toml"
    config.write_text(CONFIG)
    ready = directory / "ready.json"
    proc = camsim(
        "run", "--config", str(config), "--ready-file", str(ready), "--log-level", "warning"
    )
    try:
        info = wait_ready(proc, ready)
        yield {"proc": proc, "info": info, "ready": ready}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def control(info: dict[str, Any], path: str, *, method: str = "POST") -> tuple[int, Any]:
    request = urllib.request.Request(f"{info['control_url']}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body.startswith(b"{") else body


def device_information(camera: dict[str, Any], *, timeout: float = 10.0) -> int:
    token = username_token(camera["username"], camera["password"])
    body = soap_envelope("<tds:GetDeviceInformation/>", security=token)
    return http_post(camera["onvif_url"], body, timeout=timeout).status


def refused(camera: dict[str, Any]) -> bool:
    try:
        with socket.create_connection((camera["host"], camera["onvif_port"]), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def eventually(predicate: Any, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_ready_file_describes_the_cameras(running: dict[str, Any]) -> None:
    info = running["info"]
    front, yard = info["cameras"]
    assert (front["id"], front["vendor"], front["host"]) == ("front", "HIKVISION", "127.0.0.1")
    assert (yard["id"], yard["persona"], yard["host"]) == ("yard", "dahua", "127.0.0.2")
    assert yard["rtsp"]["sub"].endswith("/cam/realmonitor?channel=1&subtype=1")
    assert front["onvif_url"] == f"http://127.0.0.1:{front['onvif_port']}/onvif/device_service"
    assert device_information(front) == 200
    assert device_information(yard) == 200
    assert info["discovery"]["enabled"] and info["discovery"]["port"]
    _, matches = ws_probe(("127.0.0.2", info["discovery"]["port"]), wait=0.5)
    assert [m.endpoint for m in matches] == [yard["endpoint"]]
    assert oct(running["ready"].stat().st_mode & 0o777) == "0o600"  # it holds passwords


def test_control_api_lists_cameras(running: dict[str, Any]) -> None:
    info = running["info"]
    status, listing = control(info, "/cameras", method="GET")
    assert status == 200
    assert [c["id"] for c in listing["cameras"]] == ["front", "yard"]
    status, one = control(info, "/cameras/yard", method="GET")
    assert (status, one["model"]) == (200, "IPC-HFW1230S")


def test_control_api_unplugs_and_replugs(running: dict[str, Any]) -> None:
    info = running["info"]
    yard = info["cameras"][1]
    status, state = control(info, "/cameras/yard/unplug")
    assert (status, state["faults"]["unplugged"]) == (200, True)
    eventually(lambda: refused(yard))
    status, state = control(info, "/cameras/yard/replug")
    assert (status, state["faults"]["unplugged"]) == (200, False)
    eventually(lambda: not refused(yard))
    assert device_information(yard) == 200


def test_control_api_slows_and_stalls(running: dict[str, Any]) -> None:
    info = running["info"]
    front = info["cameras"][0]
    status, state = control(info, "/cameras/front/slow?seconds=5")
    assert (status, state["faults"]["soap_delay"]) == (200, 5.0)
    with pytest.raises(TimeoutError):
        device_information(front, timeout=0.5)
    status, state = control(info, "/cameras/front/slow?seconds=0")
    assert (status, state["faults"]["soap_delay"]) == (200, 0.0)
    assert device_information(front) == 200
    status, state = control(info, "/cameras/front/stall")
    assert (status, state["faults"]["stalled"]) == (200, True)
    status, state = control(info, "/cameras/front/unstall")
    assert (status, state["faults"]["stalled"]) == (200, False)
    status, state = control(info, "/cameras/front/drop?frames=20")
    assert (status, state["faults"]["drop_after_frames"]) == (200, 20)
    status, state = control(info, "/cameras/front/drop?frames=0")
    assert (status, state["faults"]["drop_after_frames"]) == (200, 0)


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/cameras/front/slow?seconds=abc", "POST", 400),
        ("/cameras/front/slow?seconds=-1", "POST", 400),
        ("/cameras/front/slow?seconds=nan", "POST", 400),
        ("/cameras/front/slow", "POST", 400),
        ("/cameras/front/drop?frames=-3", "POST", 400),
        ("/cameras/front/drop", "POST", 400),
        ("/cameras/front/explode", "POST", 404),
        ("/cameras/nobody/unplug", "POST", 404),
        ("/cameras/front/unplug", "GET", 405),
    ],
)
def test_control_api_rejects_bad_requests(
    running: dict[str, Any], path: str, method: str, status: int
) -> None:
    assert control(running["info"], path, method=method)[0] == status
    _, state = control(running["info"], "/cameras/front", method="GET")
    assert state["faults"] == {
        "unplugged": False,
        "stalled": False,
        "soap_delay": 0.0,
        "drop_after_frames": 0,
    }


def test_sigterm_stops_cleanly(running: dict[str, Any]) -> None:
    returncode, out, _err = stop(running["proc"])
    assert returncode == 0
    assert "camsim cameras ready" in out
    assert not running["ready"].exists()


def test_run_from_flags(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = camsim(
        "run",
        "--cameras",
        "2",
        "--persona",
        "reolink",
        "--host",
        "127.0.0.4",
        "--spread",
        "--discovery-port",
        "0",
        "--no-multicast",
        "--no-control",
        "--ready-file",
        str(ready),
    )
    try:
        info = wait_ready(proc, ready)
    finally:
        returncode, out, _err = stop(proc)
    assert returncode == 0
    cameras = info["cameras"]
    assert [(c["id"], c["host"], c["persona"]) for c in cameras] == [
        ("cam1", "127.0.0.4", "reolink"),
        ("cam2", "127.0.0.5", "reolink"),
    ]
    password = cameras[0]["password"]
    assert len(password) >= 12 and cameras[1]["password"] == password  # generated, shared
    assert password in out  # the operator is told what it is
    assert info["control_url"] is None


def test_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[cameras]]\nid = "x"\npersona = "sony"\npassword = "p"\nport = 1\n')
    proc = camsim("run", "--config", str(config))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "cameras.0.persona" in err and "cameras.0.port" in err
    assert "Traceback" not in err


def test_config_and_camera_flags_conflict(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    proc = camsim("run", "--config", str(config), "--cameras", "3")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--cameras" in err


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(
            f'[discovery]\nport = 0\n[[cameras]]\nid = "a"\npassword = "p"\nonvif_port = {port}\n'
        )
        proc = camsim("run", "--config", str(config))
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "cannot start" in err and "Traceback" not in err


def test_personas_listing() -> None:
    proc = camsim("personas", "--json")
    out, _err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["hikvision-vulnerable"]["firmware"] == "V5.5.113 build 210317"
    assert "h265_main" in rows["reolink"]["quirks"]
    table = camsim("personas")
    text, _ = table.communicate(timeout=60)
    assert table.returncode == 0 and "hikvision" in text
