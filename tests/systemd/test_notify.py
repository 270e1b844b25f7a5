"""`SystemdNotifier` against a real datagram socket, as systemd would receive it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.daemon import NoNotifier, ServiceNotifier
from agent.daemon.notify import SystemdNotifier
from tests.support.notify_socket import NotifyListener


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    listening = NotifyListener()
    yield listening
    listening.close()


def _env(listener: NotifyListener, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(listener.path), "KEEP": "me", **extra}


def test_ready_status_watchdog_stopping(listener: NotifyListener) -> None:
    env = _env(listener, WATCHDOG_USEC="30000000", WATCHDOG_PID=str(os.getpid()))
    notifier = SystemdNotifier.from_environment(env)
    assert notifier is not None
    assert env == {"KEEP": "me"}  # children never inherit the socket
    assert notifier.watchdog_interval == 15.0
    typed: ServiceNotifier = notifier
    typed.ready()
    typed.status("recording 2 of 3 cameras")
    typed.watchdog()
    typed.stopping()
    assert listener.wait_for(lambda: len(listener.messages) == 4)
    fields = [m for _, m in listener.messages]
    assert fields[0] == {"READY": "1", "MAINPID": str(os.getpid())}
    assert fields[1] == {"STATUS": "recording 2 of 3 cameras"}
    assert fields[2] == {"WATCHDOG": "1"}
    assert fields[3] == {"STOPPING": "1", "STATUS": "stopping"}


def test_no_watchdog_without_usec_or_for_another_pid(listener: NotifyListener) -> None:
    plain = SystemdNotifier.from_environment(_env(listener))
    assert plain is not None and plain.watchdog_interval is None
    plain.watchdog()  # not asked for: nothing sent
    other = SystemdNotifier.from_environment(
        _env(listener, WATCHDOG_USEC="1000000", WATCHDOG_PID=str(os.getpid() + 1))
    )
    assert other is not None and other.watchdog_interval is None
    for bad in ("", "abc", "-5", "0"):
        odd = SystemdNotifier.from_environment(_env(listener, WATCHDOG_USEC=bad))
        assert odd is not None and odd.watchdog_interval is None
    plain.ready()
    assert listener.wait_for(lambda: len(listener.messages) == 1)
    assert listener.with_key("WATCHDOG") == []


def test_not_under_systemd() -> None:
    assert SystemdNotifier.from_environment({}) is None
    assert SystemdNotifier.from_environment({"NOTIFY_SOCKET": "vsock:2:99"}) is None
    assert NoNotifier().watchdog_interval is None


def test_abstract_socket_address() -> None:
    name = f"rtcc-edge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(10)
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier is not None
        notifier.ready()
        assert server.recv(100).startswith(b"READY=1\n")


def test_a_missing_socket_is_logged_not_raised(tmp_path: object) -> None:
    notifier = SystemdNotifier("/nonexistent/notify.sock", watchdog_usec=2_000_000)
    assert notifier.notify("READY=1") is False
    notifier.watchdog()
    notifier.status("still fine")


@given(st.text(max_size=300))
def test_status_is_always_one_assignment(text: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        name = f"rtcc-edge-status-{os.getpid()}"
        server.bind("\0" + name)
        server.settimeout(10)
        notifier = SystemdNotifier("\0" + name)
        notifier.status(text)
        data = server.recv(4096).decode()
    assert data.startswith("STATUS=")
    assert "\n" not in data
    assert len(data) <= len("STATUS=") + 200
