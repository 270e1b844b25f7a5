"""`rtcc-edge run` as a real process against camsim cameras, as an owner would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.recorder import RecorderStatus, StateFile, read_state_file
from tests.support.camsim import CameraHandle, camera, run_camsim  # noqa: F401


def low_res_camera(**fields: object) -> dict[str, object]:
    main = {"width": 320, "height": 240, "fps": 15, "gop": 15, "bitrate": 300_000}
    return camera("generic", main=main, **fields)


def write_config(path: Path, state_dir: Path, cams: list[CameraHandle], *, extra: str = "") -> Path:
    blocks = [
        f'state_dir = "{state_dir}"\n'
        '[site]\nid = "site-1"\nname = "Test site"\n'
        "[store]\nsegment_seconds = 10\nmin_free = 0\n"
        '[log]\nlevel = "info"\nformat = "console"\n'
        # Its own owner socket: daemons of parallel tests must not meet at the default path.
        f'[control]\nsocket = "{state_dir.parent / "control.sock"}"\n'
    ]
    for n, cam in enumerate(cams, 1):
        blocks.append(
            f'[[cameras]]\nid = "cam{n}"\nname = "Camera {n}"\n'
            f'rtsp_url = "{cam.rtsp_url("main")}"\n'
            f'username = "{cam.username}"\nsecret = "{cam.password}"\n'
        )
    path.write_text("\n".join(blocks) + extra)
    return path


class Daemon:
    """One `rtcc-edge run` process; its log goes to a file the test prints on failure."""

    def __init__(self, config: Path, state_dir: Path, log: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def state(self) -> StateFile | None:
        data = read_state_file(self.state_dir / "recorders.json")
        if data is None or self.process is None or data.pid != self.process.pid:
            return None  # not (yet) written by this process
        return data

    def wait_recording(self, camera: str = "cam1", timeout: float = 60) -> float:
        """Seconds until this daemon reports `camera` recording (a functional timeout)."""
        start = time.monotonic()
        while True:
            data = self.state()
            if data is not None and data.cameras[camera].status is RecorderStatus.RECORDING:
                return time.monotonic() - start
            assert self.process is not None and self.process.poll() is None, self.log()
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{camera} not recording after {timeout} s\n{self.log()}")
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Factory: `daemons(config)` → a started Daemon; all stopped after the test."""
    started: list[Daemon] = []

    def start(config: Path, *, name: str = "daemon") -> Daemon:
        daemon = Daemon(config, tmp_path / "state", tmp_path / f"{name}-{len(started)}.log")
        started.append(daemon.start())
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
