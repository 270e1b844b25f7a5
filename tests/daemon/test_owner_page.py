"""The owner's page, `rtcc-edge owner serve` in its own process, beside a real `rtcc-edge run`
(not enrolled, recording a camsim camera): the password set with the real CLI, then signed in
over a real socket; the overview shows the camera recording and says the site is not enrolled;
the Cameras page's picture is a JPEG of the newest frame in the store, made by the daemon and
passed over its control socket. The daemon itself serves no page."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.daemon.conftest import Daemon, low_res_camera, write_config
from tests.support.broker import free_port
from tests.support.camsim import CamsimRun
from tests.support.owner_page import CSRF_FIELD, owner_jar

PASSWORD = "the shop owner's password"


async def _overview(url: str) -> str:
    async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                async with http.get(url + "/login") as response:
                    form = await response.text()
                    break
            except aiohttp.ClientConnectionError:
                assert time.monotonic() < deadline, "the owner's page never answered"
                await asyncio.sleep(0.5)
        match = CSRF_FIELD.search(form)
        assert match is not None, form
        async with http.post(
            url + "/login",
            data={"csrf": match.group(1), "password": PASSWORD},
            headers={"Origin": url},
        ) as response:
            assert response.status == 200 and str(response.url) == url + "/"
            overview = await response.text()
        async with http.get(url + "/cameras") as response:
            assert 'src="/cameras/cam1/picture.jpg"' in await response.text()
        async with http.get(url + "/cameras/cam1/picture.jpg") as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "image/jpeg"
            picture = await response.read()
        assert picture[:2] == b"\xff\xd8", "a JPEG"
        return overview


def test_owner_page_beside_the_daemon(
    run_camsim: Callable[..., CamsimRun], daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    cams = run_camsim(low_res_camera())
    port = free_port("127.0.0.1")
    extra = f'\n[owner_page]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    config = write_config(tmp_path / "agent.toml", tmp_path / "state", list(cams), extra=extra)
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "owner", "passwd", "--stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "owner" / "page-password").is_file()
    daemon = daemons(config)
    daemon.wait_recording()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the daemon serves no page"
    with (tmp_path / "page.log").open("wb") as log:
        page = subprocess.Popen(
            [sys.executable, "-m", "agent", "--config", str(config), "owner", "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        text = asyncio.run(_overview(f"http://127.0.0.1:{port}"))
    finally:
        page.terminate()
        page.wait(timeout=30)
    print((tmp_path / "page.log").read_text())
    assert "Not enrolled with an RTCC" in text
    assert "cam1" in text and "Recording." in text
    assert page.returncode == 0, "a clean stop on SIGTERM"
