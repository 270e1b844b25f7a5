"""`seal` and `reload` on the control socket (what the owner's page stores passwords and applies
changes with): the owner gets a sealed password the site's key opens, and the reload's answer;
anyone else — another user over the real socket, the service's own user — is refused and
nothing is sealed or reloaded."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.control import ControlClient, ControlServer
from agent.control.auth import Peer
from agent.control.protocol import encode_request
from agent.control.reload import ReloadOutcome
from agent.secretbox import SecretBox

SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rc-seal-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def server(short_dir: Path) -> AsyncIterator[tuple[ControlServer, list[int]]]:
    reloads: list[int] = []

    async def reload() -> ReloadOutcome:
        reloads.append(1)
        return ReloadOutcome(True, kept=["cam1"])

    # The socket's group is nobody's, so that user can reach it (and must still be refused).
    control = ControlServer(
        short_dir / "control.sock",
        None,
        group="nogroup",
        owner_group=None,
        state_dir=short_dir / "state",
        reload=reload,
    )
    await control.start()
    try:
        yield control, reloads
    finally:
        await control.close()


async def test_the_owner_seals_and_reloads(
    server: tuple[ControlServer, list[int]], short_dir: Path
) -> None:
    control, reloads = server
    client = ControlClient(control.path)
    sealed = (await asyncio.to_thread(client.call, "seal", text="n3w-Pa55"))["sealed"]
    assert sealed.startswith("enc:v1:") and "n3w-Pa55" not in sealed
    assert SecretBox.load(short_dir / "state").decrypt(sealed) == "n3w-Pa55"
    answer = await asyncio.to_thread(client.call, "reload")
    assert answer["applied"] is True and answer["kept"] == ["cam1"]
    assert reloads == [1]


@pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="needs the system python3")
@pytest.mark.parametrize("cmd", ["seal", "reload"])
async def test_another_user_is_refused(
    server: tuple[ControlServer, list[int]], short_dir: Path, cmd: str
) -> None:
    control, reloads = server
    args = {"text": "x"} if cmd == "seal" else {}
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(control.path)!r})\n"
        f"s.sendall({encode_request(cmd, args)!r})\n"
        "sys.stdout.write(s.makefile().readline())\n"
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [SYSTEM_PYTHON, "-c", probe],
        user=NOBODY,
        group=NOBODY,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ok"] is False and answer["error"]["code"] == "not_owner"
    assert "Only the owner can do that" in answer["error"]["message"]
    assert reloads == []
    assert not (short_dir / "state" / "secret.key").exists(), "nothing was sealed"


@pytest.mark.parametrize("cmd", ["seal", "reload"])
async def test_the_service_user_is_refused(short_dir: Path, cmd: str) -> None:
    async def reload() -> ReloadOutcome:
        raise AssertionError("reloaded for the service user")

    control = ControlServer(
        short_dir / "c.sock", None, state_dir=short_dir / "state", reload=reload, service_uid=999
    )
    args = {"text": "x"} if cmd == "seal" else {}
    line = await control.respond(encode_request(cmd, args), by="uid 999", peer=Peer(999, 999))
    answer = json.loads(line)
    assert answer["error"]["code"] == "not_owner"
    assert "service's own user may only read" in answer["error"]["message"]
