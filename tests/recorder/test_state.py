"""Per-camera state bookkeeping, its file for other processes, and the restart budget."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.recorder.state import (
    RecorderStatus,
    StateBoard,
    StateFileWriter,
    read_state_file,
    write_state_file,
)
from agent.recorder.supervisor import RestartBudget, describe_exit


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_offline_since_follows_the_status() -> None:
    clock = _Clock()
    board = StateBoard(["a"], clock=clock)
    assert board.get("a").status is RecorderStatus.STOPPED
    board.update("a", status=RecorderStatus.RECORDING)
    assert board.get("a").online and board.get("a").offline_since is None
    clock.now += timedelta(seconds=5)
    lost_at = clock.now
    board.update("a", status=RecorderStatus.RECONNECTING, last_error="refused")
    clock.now += timedelta(seconds=40)
    board.update("a", status=RecorderStatus.OFFLINE)
    state = board.get("a")
    assert not state.online
    assert state.offline_since == lost_at  # kept from the first failure, not reset
    assert state.since == clock.now
    board.update("a", status=RecorderStatus.RECORDING)
    assert board.get("a").offline_since is None
    assert board.get("a").last_error == "refused"  # the last error is history, kept


async def test_listeners_and_waiters_see_every_change() -> None:
    board = StateBoard(["a", "b"])
    seen: list[tuple[str, str]] = []
    remove = board.add_listener(lambda s: seen.append((s.camera, s.status.value)))
    version = board.version
    waiter = asyncio.create_task(board.wait_changed(version))
    await asyncio.sleep(0)
    board.update("b", status=RecorderStatus.CONNECTING)
    assert await asyncio.wait_for(waiter, 5) > version
    board.update("b", status=RecorderStatus.CONNECTING)  # no change: no notification
    remove()
    board.update("a", status=RecorderStatus.RECORDING)
    assert seen == [("b", "connecting")]


def test_a_failing_listener_does_not_break_updates() -> None:
    board = StateBoard(["a"])

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    board.add_listener(broken)
    assert board.update("a", status=RecorderStatus.RECORDING).online


async def test_state_file_for_other_processes(tmp_path: Path) -> None:
    board = StateBoard(["a"])
    path = tmp_path / "recorders.json"
    writer = StateFileWriter(board, path, interval=0.01)
    await writer.start()
    board.update("a", status=RecorderStatus.RECORDING, bytes_written=1234)
    for _ in range(200):
        data = read_state_file(path)
        if data is not None and data.cameras["a"].status is RecorderStatus.RECORDING:
            break
        await asyncio.sleep(0.01)
    await writer.stop()
    data = read_state_file(path)
    assert data is not None
    assert data.pid == os.getpid() and data.daemon_running()
    assert data.cameras["a"].bytes_written == 1234
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # written atomically


def test_state_file_missing_or_damaged(tmp_path: Path) -> None:
    path = tmp_path / "recorders.json"
    assert read_state_file(path) is None
    path.write_text("{not json")
    assert read_state_file(path) is None
    write_state_file(path, StateBoard(["x"]))
    assert read_state_file(path) is not None


def test_restart_budget_slides() -> None:
    budget = RestartBudget(limit=3, window=600)
    for t in (0, 10, 20):
        assert not budget.exhausted(t)
        budget.record(t)
    assert budget.exhausted(30)
    assert budget.recent(30) == 3
    assert not budget.exhausted(611)  # the first restart left the window
    assert budget.recent(700) == 0


def test_exit_descriptions() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(255) == "exit code 255"
