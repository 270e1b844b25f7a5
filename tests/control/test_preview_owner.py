"""The `preview` command is the owner's: the footage is theirs, so a user who may reach the
socket but is not the owner (nor the service's own user) is refused with `not_owner`, over a
real socket from a process running as another user; its arguments are strict like the others."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.control import ControlClient, ControlError, ControlServer
from agent.control.preview import Previews
from agent.ledger import Kind, read_entries
from agent.store import ClipStore
from tests.support.link_service import Site, running_service, site_config
from tests.support.rtcc import jti_of, make_request

SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")


class _Store:
    """The daemon's store thread, as `agent.daemon.app.StoreService` gives it."""

    def __init__(self, store: ClipStore) -> None:
        self.store = store

    async def run(self, function: Any) -> Any:
        return await asyncio.to_thread(function, self.store)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rc-pv-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def config(short_dir: Path) -> AgentConfig:
    return site_config(short_dir / "state", socket_path=short_dir / "run" / "control.sock")


@pytest.fixture
async def daemon(config: AgentConfig) -> AsyncIterator[tuple[Site, ControlServer]]:
    async with running_service(config) as site:
        with ClipStore.from_config(config) as store:
            previews = Previews(site.service, _Store(store), config.state_dir / "previews")
            server = ControlServer(
                config.control.socket, site.service, group=None, previews=previews
            )
            await server.start()
            # Anyone may connect, so that the refusal below is the daemon's, not the file mode's.
            config.control.socket.chmod(0o666)
            try:
                yield site, server
            finally:
                await server.close()


def _as_nobody(path: Path, line: bytes) -> dict[str, Any]:
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(path)!r})\n"
        f"s.sendall({line!r})\n"
        "reply = b''\n"
        "while not reply.endswith(b'\\n'):\n"
        "    chunk = s.recv(65536)\n"
        "    if not chunk: break\n"
        "    reply += chunk\n"
        "sys.stdout.write(reply.decode())\n"
    )
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def test_a_non_owner_cannot_fetch_a_preview(
    daemon: tuple[Site, ControlServer], config: AgentConfig
) -> None:
    site, _server = daemon
    payload = make_request("clip", camera="parking-lot")
    jti = jti_of(payload)
    await site.service.handle(payload)
    await site.sink.wait_for(jti, "pending_approval")
    line = json.dumps({"v": 1, "cmd": "preview", "args": {"id": jti}}).encode() + b"\n"

    answer = await asyncio.to_thread(_as_nobody, config.control.socket, line)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "not_owner"
    assert "is not the owner" in answer["error"]["message"]
    # Reading is still open to the same user: the refusal is about the footage.
    status = json.dumps({"v": 1, "cmd": "status"}).encode() + b"\n"
    assert (await asyncio.to_thread(_as_nobody, config.control.socket, status))["ok"] is True
    # The service's own user is refused too, whatever it may read.
    _server.service_uid = NOBODY
    answer = await asyncio.to_thread(_as_nobody, config.control.socket, line)
    assert answer["error"]["code"] == "not_owner"
    assert "service's own user may only read" in answer["error"]["message"]
    # And an approval tried by someone who is not the owner: refused, and in the record.
    approve = json.dumps({"v": 1, "cmd": "approve", "args": {"id": jti[:8]}}).encode() + b"\n"
    assert (await asyncio.to_thread(_as_nobody, config.control.socket, approve))["ok"] is False
    refused = [
        entry.data
        for entry in read_entries(config.state_dir / "ledger")
        if entry.kind == Kind.OWNER_REFUSED
    ]
    assert refused == [
        {"cmd": "preview", "by": "uid 65534 (nobody)", "request": jti, "camera": None},
        {"cmd": "preview", "by": "uid 65534 (nobody)", "request": jti, "camera": None},
        {"cmd": "approve", "by": "uid 65534 (nobody)", "request": jti[:8], "camera": None},
    ]
    assert site.sink.states(jti)[-1] == "pending_approval"  # nothing else happened to it

    # The owner (root) gets past the check: nothing is recorded in this site, so the answer
    # is a plain sentence about the footage, not a refusal of the caller.
    with pytest.raises(ControlError) as caught:
        await asyncio.to_thread(ControlClient(config.control.socket).call, "preview", id=jti)
    assert caught.value.code == "no_footage", caught.value
    assert "Nothing of camera parking-lot is recorded" in caught.value.message


@pytest.mark.parametrize(
    "args",
    [
        {"id": "abcd", "length": 1024 * 1024 + 1},
        {"id": "abcd", "offset": -1},
        {"id": "abcd", "offset": "0"},
        {"id": "abcd", "length": 5.0},
        {"id": "abcd", "extra": 1},
        {},
    ],
)
async def test_preview_arguments_are_strict(
    daemon: tuple[Site, ControlServer], config: AgentConfig, args: dict[str, object]
) -> None:
    with pytest.raises(ControlError) as caught:
        await asyncio.to_thread(ControlClient(config.control.socket).call, "preview", **args)
    assert caught.value.code == "bad_arguments"
