"""How the daemon composes components: start order, reverse stop, a failed start, the
service-manager hook, one daemon per state directory. Runs in-process with the real store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.config import AgentConfig, SiteConfig, StoreConfig
from agent.daemon import Daemon, DaemonError
from agent.recorder import read_state_file, state_file_path


def _config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        state_dir=tmp_path / "state",
        site=SiteConfig(id="site-1", name="Test"),
        store=StoreConfig(min_free=0),
    )


class Journal:
    """A later subsystem's stand-in for the plug-in contract only: it records the calls."""

    def __init__(self, name: str, events: list[str], *, fail: bool = False) -> None:
        self.name = name
        self.events = events
        self.fail = fail

    async def start(self) -> None:
        self.events.append(f"start {self.name}")
        if self.fail:
            raise DaemonError(f"{self.name} cannot start")

    async def stop(self) -> None:
        self.events.append(f"stop {self.name}")


class Notes:
    watchdog_interval: float | None = 0.05

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.is_ready = asyncio.Event()

    def ready(self) -> None:
        self.calls.append("ready")
        self.is_ready.set()

    def status(self, text: str) -> None:
        self.calls.append(f"status {text}")

    def watchdog(self) -> None:
        self.calls.append("watchdog")

    def stopping(self) -> None:
        self.calls.append("stopping")


async def test_components_start_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    events: list[str] = []
    notes = Notes()
    daemon = Daemon(
        _config(tmp_path),
        notifier=notes,
        extra_components=[
            lambda d: Journal("link", events),
            lambda d: Journal("tunnel", events),
        ],
    )
    assert [c.name for c in daemon.components][:4] == [
        "store",
        "retention",
        "recorder-state-file",
        "recorders",
    ]
    stop = asyncio.Event()
    run = asyncio.create_task(daemon.run(stop=stop))
    await asyncio.wait_for(notes.is_ready.wait(), 30)
    assert daemon.store.store.root == tmp_path / "state" / "store"  # opened and reconciled
    assert events == ["start link", "start tunnel"]
    await asyncio.sleep(0.2)
    stop.set()
    assert await asyncio.wait_for(run, 30) == 0
    assert events == ["start link", "start tunnel", "stop tunnel", "stop link"]
    assert notes.calls[0] == "ready" and notes.calls[-1] == "stopping"
    assert "watchdog" in notes.calls
    assert read_state_file(state_file_path(tmp_path / "state")) is not None


async def test_a_failed_start_stops_what_had_started(tmp_path: Path) -> None:
    events: list[str] = []
    daemon = Daemon(
        _config(tmp_path),
        extra_components=[
            lambda d: Journal("link", events),
            lambda d: Journal("broken", events, fail=True),
            lambda d: Journal("never", events),
        ],
    )
    with pytest.raises(DaemonError, match="broken cannot start"):
        await asyncio.wait_for(daemon.run(stop=asyncio.Event()), 30)
    assert events == ["start link", "start broken", "stop link"]
    # Everything was released: the next daemon on the same state directory starts.
    again = Daemon(_config(tmp_path))
    stop = asyncio.Event()
    stop.set()
    assert await asyncio.wait_for(again.run(stop=stop), 30) == 0


async def test_one_daemon_per_state_directory(tmp_path: Path) -> None:
    notes = Notes()
    first = Daemon(_config(tmp_path), notifier=notes)
    stop = asyncio.Event()
    run = asyncio.create_task(first.run(stop=stop))
    await asyncio.wait_for(notes.is_ready.wait(), 30)
    with pytest.raises(DaemonError, match="another rtcc-edge daemon is running"):
        await Daemon(_config(tmp_path)).run(stop=asyncio.Event())
    stop.set()
    assert await asyncio.wait_for(run, 30) == 0


async def test_a_store_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "store").write_text("not a directory")
    with pytest.raises(DaemonError, match="cannot open the clip store"):
        await asyncio.wait_for(Daemon(config).run(stop=asyncio.Event()), 30)
