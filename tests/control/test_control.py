"""The owner control socket: permissions, the protocol, and the owner CLI against a running
service."""

from __future__ import annotations

import asyncio
import grp
import json
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli import main
from agent.config import AgentConfig
from agent.control import (
    ControlClient,
    ControlError,
    ControlServer,
    ControlServerError,
    DaemonNotRunning,
    ProtocolError,
    parse_request,
)
from agent.control.protocol import MAX_LINE
from agent.ledger import Kind, read_entries
from tests.support.link_service import Site, running_service, site_config, write_site_config
from tests.support.owner_page import daemon_socket
from tests.support.rtcc import ISSUER, jti_of, make_request

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths are limited to 108 bytes: keep them short."""
    path = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def config(short_dir: Path) -> AgentConfig:
    return site_config(short_dir / "state", socket_path=short_dir / "run" / "control.sock")


@pytest.fixture
async def daemon(config: AgentConfig) -> AsyncIterator[tuple[Site, ControlServer]]:
    async with running_service(config) as site:
        server = ControlServer(config.control.socket, site.service, group=None)
        await server.start()
        try:
            yield site, server
        finally:
            await server.close()


def call(path: Path, cmd: str, **args: object) -> Any:
    """The command's result, decoded JSON of whatever shape that command answers with."""
    return ControlClient(path).call(cmd, **args)


async def acall(path: Path, cmd: str, **args: object) -> Any:
    return await asyncio.to_thread(call, path, cmd, **args)


def raw_exchange(path: Path, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    result: dict[str, Any] = json.loads(reply)
    return result


async def test_socket_is_root_only_without_the_group(
    daemon: tuple[Site, ControlServer], config: AgentConfig
) -> None:
    mode = config.control.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    leftovers = [p.name for p in config.control.socket.parent.iterdir()]
    assert leftovers == ["control.sock"], "the temporary name is gone"


async def test_socket_group_when_it_exists(config: AgentConfig) -> None:
    async with running_service(config) as site:
        server = ControlServer(config.control.socket, site.service, group="daemon")
        await server.start()
        try:
            info = config.control.socket.stat()
            assert stat.S_IMODE(info.st_mode) == 0o660
            assert info.st_gid == grp.getgrnam("daemon").gr_gid
        finally:
            await server.close()
        assert not config.control.socket.exists()


@pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="needs the system python3")
async def test_other_users_cannot_connect(
    daemon: tuple[Site, ControlServer], config: AgentConfig
) -> None:
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"try:\n    s.connect({str(config.control.socket)!r})\n"
        "except PermissionError:\n    sys.exit(3)\n"
        "sys.exit(0)\n"
    )
    done = await asyncio.to_thread(
        subprocess.run, [SYSTEM_PYTHON, "-c", probe], user=65534, group=65534, timeout=30
    )
    assert done.returncode == 3


async def test_commands(daemon: tuple[Site, ControlServer], config: AgentConfig) -> None:
    site, _server = daemon
    path = config.control.socket
    status = await acall(path, "status")
    assert isinstance(status, dict) and status["site"] == "site-1" and status["pending"] == 0

    pending = make_request("clip", camera="parking-lot")
    other = make_request("snapshot", camera="parking-lot")
    for payload in (pending, other):
        await site.service.handle(payload)
    listed = await acall(path, "requests")
    assert {r["id"] for r in listed} == {jti_of(pending), jti_of(other)}

    approved = await acall(path, "approve", id=jti_of(pending)[:8])
    assert approved["state"] == "approved"
    denied = await acall(path, "deny", id=jti_of(other), reason="no")
    assert denied["state"] == "rejected" and denied["code"] == "denied_by_owner"
    assert site.sink.states(jti_of(other)) == ["pending_approval", "rejected"]

    changed = await acall(path, "sharing_set", camera="side-door", mode="integrated", live=True)
    assert changed == {
        "camera": "side-door",
        "name": "Side door",
        "mode": "integrated",
        "live": True,
        "source": "owner",
    }
    assert site.publisher.registry_published == 1
    paused = await acall(path, "pause", seconds=7200)
    assert paused["paused"] is True and paused["until"]
    assert (await acall(path, "status"))["paused"] is True
    assert await acall(path, "resume") == {"was_paused": True}

    owner_entries = [
        e
        for e in read_entries(Path(config.state_dir) / "ledger")
        if e.kind in (Kind.APPROVAL, Kind.DENIAL, Kind.SHARING_CHANGED, Kind.PAUSED, Kind.RESUMED)
    ]
    assert len(owner_entries) == 5
    assert all(e.data["by"].startswith("uid 0") for e in owner_entries if "by" in e.data)


async def test_what_the_owners_page_reads_and_says(config: AgentConfig) -> None:
    """`picture`, `activity`, `requests` with the bytes sent, and `via: "page"` in the ledger."""
    async with running_service(config) as site, daemon_socket(site):
        path = config.control.socket
        assert await acall(path, "picture", camera="parking-lot") == {"jpeg": None}
        with pytest.raises(ControlError) as caught:
            await acall(path, "picture", camera="garage")
        assert caught.value.code == "not_found"
        payload = make_request("clip", camera="parking-lot")
        await site.service.handle(payload)
        jti = jti_of(payload)
        approved = await acall(path, "approve", id=jti, via="page")
        assert approved["state"] == "approved"
        rows = await acall(path, "requests", all=True, sent=True)
        assert rows[0]["id"] == jti and rows[0]["bytes_sent"] == 0 and rows[0]["updated"]
        found = await acall(path, "activity")
        assert found["check"]["ok"] is True and "intact" in found["check"]["words"]
        assert found["report"]["by_agency"][ISSUER]["approved"] == 1
    approval = [e for e in read_entries(config.state_dir / "ledger") if e.kind == Kind.APPROVAL]
    assert approval[-1].data["by"] == "uid 0 (root) through the owner's page"


@pytest.mark.parametrize(
    ("cmd", "args", "code"),
    [
        ("approve", {"id": "nope"}, "not_found"),
        ("approve", {"id": "ab"}, "not_found"),
        ("approve", {}, "bad_arguments"),
        ("deny", {"id": "abcd", "reason": "x" * 2000}, "bad_arguments"),
        ("sharing_set", {"camera": "garage", "mode": "private"}, "not_allowed"),
        ("sharing_set", {"camera": "parking-lot", "mode": "registry", "live": True}, "not_allowed"),
        ("sharing_set", {"camera": "parking-lot", "mode": "public"}, "bad_arguments"),
        ("pause", {"seconds": -5}, "bad_arguments"),
        ("format", {}, "unknown_command"),
        ("status", {"verbose": True}, "bad_arguments"),
        ("pause", {"via": "cli"}, "bad_arguments"),
        ("status", {"via": "page"}, "bad_arguments"),
        ("picture", {"camera": "../etc"}, "bad_arguments"),
    ],
)
async def test_refusals(
    daemon: tuple[Site, ControlServer],
    config: AgentConfig,
    cmd: str,
    args: dict[str, object],
    code: str,
) -> None:
    with pytest.raises(ControlError) as caught:
        await acall(config.control.socket, cmd, **args)
    assert caught.value.code == code and caught.value.message


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"hello\n", "bad_request"),
        (b"[]\n", "bad_request"),
        (b'{"v": 2, "cmd": "status"}\n', "unsupported_version"),
        (b'{"v": 1, "cmd": "status", "extra": 1}\n', "bad_request"),
        (b'{"v": 1}\n', "bad_request"),
        (b"x" * (MAX_LINE + 10) + b"\n", "bad_request"),
        (b'{"v": 1, "cmd": "status", "cmd": "pause"}\n', "bad_request"),
        (b'{"v": "1", "cmd": "status"}\n', "bad_request"),
        (b'{"v": 1.0, "cmd": "status"}\n', "bad_request"),
        (b'{"v": true, "cmd": "status"}\n', "bad_request"),
        (b'{"v": 1, "cmd": "requests", "args": {"limit": "5"}}\n', "bad_arguments"),
        (b'{"v": 1, "cmd": "requests", "args": {"all": "yes"}}\n', "bad_arguments"),
        (b'{"v": 1, "cmd": "requests", "args": {"all": 1}}\n', "bad_arguments"),
        (b'{"v": 1, "cmd": "pause", "args": {"seconds": "60"}}\n', "bad_arguments"),
        (b'{"v": 1, "cmd": "deny", "args": {"id": "abcd", "reason": "x\\ud83d"}}\n', "bad_request"),
        (b'{"v": 1, "cmd": "pause", "args": {"seconds": NaN}}\n', "bad_request"),
    ],
)
async def test_bad_lines(
    daemon: tuple[Site, ControlServer], config: AgentConfig, line: bytes, code: str
) -> None:
    reply = await asyncio.to_thread(raw_exchange, config.control.socket, line)
    assert reply["ok"] is False and reply["v"] == 1
    assert reply["error"]["code"] == code
    site, _server = daemon
    assert not site.service.policy.paused, "a refused line changes nothing"


async def test_several_requests_on_one_connection(
    daemon: tuple[Site, ControlServer], config: AgentConfig
) -> None:
    two = b'{"v": 1, "cmd": "status"}\n{"v": 1, "cmd": "sharing"}\n'

    def exchange() -> list[bytes]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(config.control.socket))
            sock.sendall(two)
            data = b""
            while data.count(b"\n") < 2:
                data += sock.recv(65536)
            return data.splitlines()

    replies = [json.loads(line) for line in await asyncio.to_thread(exchange)]
    assert [r["ok"] for r in replies] == [True, True]
    assert len(replies[1]["result"]) == 4


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_line_parses_or_is_refused(line: bytes) -> None:
    try:
        cmd, _args = parse_request(line)
    except ProtocolError as exc:
        assert exc.code in {
            "bad_request",
            "unsupported_version",
            "unknown_command",
            "bad_arguments",
        }
    else:
        assert cmd in {"status", "requests", "sharing", "resume", "pause"}


async def test_a_second_daemon_is_refused(
    daemon: tuple[Site, ControlServer], config: AgentConfig
) -> None:
    site, _server = daemon
    second = ControlServer(config.control.socket, site.service, group=None)
    with pytest.raises(ControlServerError, match="another"):
        await second.start()
    assert (await acall(config.control.socket, "status"))["site"] == "site-1"


async def test_a_stale_socket_is_replaced(config: AgentConfig) -> None:
    path = config.control.socket
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # bound but nobody listens: what a crashed daemon leaves
    with pytest.raises(DaemonNotRunning):
        call(path, "status")
    async with running_service(config) as site:
        server = ControlServer(path, site.service, group=None)
        await server.start()
        try:
            assert (await acall(path, "status"))["site"] == "site-1"
        finally:
            await server.close()


def test_client_without_a_daemon(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="not running"):
        ControlClient(tmp_path / "absent.sock").call("status")


# The owner CLI (a blocking client, so it runs in a thread next to the server's loop).


@pytest.fixture
def config_file(short_dir: Path, config: AgentConfig) -> Path:
    return write_site_config(config, short_dir / "agent.toml")


async def cli(config_file: Path, *args: str) -> int:
    return await asyncio.to_thread(main, ["--config", str(config_file), *args])


async def test_owner_cli(
    daemon: tuple[Site, ControlServer], config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _server = daemon
    pending = make_request("clip", camera="parking-lot")
    await site.service.handle(pending)
    jti = jti_of(pending)

    assert await cli(config_file, "requests") == 0
    out = capsys.readouterr().out
    assert "parking-lot" in out and "pending_approval" in out and "burglary nearby" in out
    assert await cli(config_file, "requests", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == jti

    assert await cli(config_file, "approve", jti[:6]) == 0
    assert f"approved {jti}" in capsys.readouterr().out
    assert await cli(config_file, "approve", jti[:6]) == 1
    assert "not pending" in capsys.readouterr().err
    assert await cli(config_file, "deny", "nothing-like-it", "--reason", "no") == 1

    assert await cli(config_file, "sharing", "set", "front-door", "registry") == 0
    assert "front-door: registry" in capsys.readouterr().out
    assert await cli(config_file, "sharing", "set", "front-door", "registry", "--live") == 1
    assert "integrated" in capsys.readouterr().err
    assert await cli(config_file, "sharing", "--json") == 0
    rows = {row["camera"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["front-door"]["mode"] == "registry" and rows["front-door"]["source"] == "owner"

    assert await cli(config_file, "pause", "--for", "2h") == 0
    assert "paused until" in capsys.readouterr().out
    assert await cli(config_file, "status") == 0
    assert "paused" in capsys.readouterr().out
    assert await cli(config_file, "resume") == 0
    assert "resumed" in capsys.readouterr().out
    assert await cli(config_file, "pause", "--for", "soon") == 2
    assert await cli(config_file, "status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["paused"] is False


def test_owner_cli_without_a_daemon(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("The rtcc-edge daemon is not running") and err.count(".") >= 1
    assert main(["--config", str(config_file), "approve", "abcd"]) == 2


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["1", "5", "yes", "true", "integrated", "front", "abcd", "60"])
)


@settings(max_examples=400, deadline=None)
@given(
    v=_json_scalars,
    cmd=st.sampled_from(["status", "requests", "deny", "sharing_set", "pause"]),
    args=st.dictionaries(
        st.sampled_from(["all", "limit", "id", "reason", "camera", "mode", "live", "seconds"]),
        _json_scalars,
        max_size=3,
    ),
)
def test_nothing_is_coerced(v: object, cmd: str, args: dict[str, object]) -> None:
    """Whatever parses carried exactly the types the protocol names: `v` the integer 1, and
    every argument the value that was sent (a float only where a number is asked for)."""
    line = json.dumps({"v": v, "cmd": cmd, "args": args}).encode()
    try:
        _cmd, parsed = parse_request(line)
    except ProtocolError:
        return
    assert type(v) is int and v == 1
    for name, value in args.items():
        got = getattr(parsed, name)
        if name == "seconds":
            assert type(value) in (int, float) and got == value
        else:
            assert type(got) is type(value) or name == "mode", (name, value, got)
            assert got == value
