"""The persisted replay cache."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from agent.link.replay import ReplayCache
from tests.support.link_service import FakeClock


def test_an_id_is_accepted_once(tmp_path: Path) -> None:
    cache = ReplayCache(tmp_path / "replay.db")
    keep = time.time() + 600
    assert cache.add("a", keep_until=keep)
    assert not cache.add("a", keep_until=keep)
    assert cache.add("b", keep_until=keep)
    assert "a" in cache and "c" not in cache
    cache.close()


def test_ids_survive_a_restart(tmp_path: Path) -> None:
    cache = ReplayCache(tmp_path / "replay.db")
    cache.add("a", keep_until=time.time() + 600)
    cache.close()
    reopened = ReplayCache(tmp_path / "replay.db")
    assert not reopened.add("a", keep_until=time.time() + 600)
    reopened.close()


def test_ids_are_kept_until_their_time_then_forgotten(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = ReplayCache(tmp_path / "replay.db", clock=clock)
    cache.add("a", keep_until=clock() + 60)
    cache.add("b", keep_until=clock() + 3600)
    clock.offset += 120
    assert "a" not in cache and "b" in cache
    assert cache.prune() == 1
    assert cache.add("a", keep_until=clock() + 60), "an id past its keep time may be seen again"
    cache.close()


def test_an_expired_row_not_yet_pruned_does_not_block(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = ReplayCache(tmp_path / "replay.db", clock=clock)
    cache.add("a", keep_until=clock() + 1)
    clock.offset += 5
    assert cache.add("a", keep_until=clock() + 60)
    assert not cache.add("a", keep_until=clock() + 60)
    cache.close()


def test_the_database_is_private(tmp_path: Path) -> None:
    cache = ReplayCache(tmp_path / "replay.db")
    cache.add("a", keep_until=time.time() + 60)
    assert stat.S_IMODE((tmp_path / "replay.db").stat().st_mode) == 0o600
    cache.close()
