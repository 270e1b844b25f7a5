"""`rtcc-edge owner serve` refuses to start with one sentence and exit 2 when it could not work:
no owner password yet, or its port already taken. With the daemon not running it starts, and
each page says the recording service is not running."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from agent.owner_page.password import set_password
from tests.support.broker import free_port
from tests.support.link_service import site_config, write_site_config
from tests.support.owner_page import CSRF_FIELD, OWNER_PASSWORD, RunningPage, page_process


def _config(tmp_path: Path, port: int) -> Path:
    config = site_config(tmp_path / "state")
    path = write_site_config(config, tmp_path / "agent.toml")
    with path.open("a") as out:
        out.write(f'\n[owner_page]\nlisten = "127.0.0.1:{port}"\n')
    return path


def _serve(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "owner", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_password_yet(tmp_path: Path) -> None:
    done = _serve(_config(tmp_path, free_port("127.0.0.1")))
    assert done.returncode == 2
    assert "sudo rtcc-edge owner passwd" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_taken(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        path = _config(tmp_path, holder.getsockname()[1])
        set_password(tmp_path / "state" / "owner", OWNER_PASSWORD)
        done = _serve(path)
    assert done.returncode == 2
    assert "another program already uses that port" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


async def test_daemon_not_running_is_said_plainly(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    path = _config(tmp_path, port)
    set_password(tmp_path / "state" / "owner", OWNER_PASSWORD)
    url = f"http://127.0.0.1:{port}"
    async with page_process(path, url, tmp_path / "page.log"):
        page = RunningPage(url, None, tmp_path / "page.log")  # type: ignore[arg-type]
        async with page.signed_in() as http:
            for where in ("/", "/requests", "/cameras", "/activity"):
                async with http.get(url + where) as response:
                    text = await response.text()
                    assert response.status == 503, (where, text)
                    assert "The recording service is not running" in text
            match = CSRF_FIELD.search(text)  # the sign-out form's token, on the same page
            assert match is not None
            async with http.post(
                url + "/pause",
                data={"csrf": match.group(1), "duration": "1h"},
                headers={"Origin": url},
            ) as response:
                # Back to the Pause page, which cannot be shown either: the same sentence.
                assert response.history[0].status == 303
                assert "The recording service is not running" in await response.text()
