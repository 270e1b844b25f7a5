"""The persisted job queue: what a restart finds, and what it forgets."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

from agent.config import UploadConfig
from agent.daemon import StoreService
from agent.delivery import DeliveryService, JobQueue
from agent.identity import DeviceKey
from tests.delivery.site import delivery_config


def test_rows_survive_reopening(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "delivery.db")
    jti = str(uuid.uuid4())
    first = queue.begin(jti, "clip", "front-door", expires=time.time() + 60)
    assert (first.starts, first.attempts, first.prepared) == (1, 0, False)
    queue.prepared(jti, file="clip-1.mp4", sha256="a" * 64, size=10, manifest="x.y.z")
    assert queue.attempted(jti) == 1
    queue.close()
    again = JobQueue(tmp_path / "delivery.db")
    row = again.begin(jti, "clip", "front-door", expires=time.time() + 60)
    assert (row.starts, row.attempts, row.prepared, row.file) == (2, 1, True, "clip-1.mp4")
    assert row.created_us == first.created_us  # the retry budget runs from the first start
    again.unprepared(jti)
    unprepared = again.get(jti)
    assert unprepared is not None and not unprepared.prepared
    again.defer(jti, 1_900_000_000.5)
    again.close()
    deferred = JobQueue(tmp_path / "delivery.db").get(jti)
    assert deferred is not None and deferred.not_before == 1_900_000_000.5
    reopened = JobQueue(tmp_path / "delivery.db")
    assert reopened.attempted(jti) == 2
    waited = reopened.get(jti)
    assert waited is not None and waited.not_before is None  # the wait is over
    reopened.finish(jti)
    assert reopened.get(jti) is None and reopened.all() == []
    reopened.close()


def test_a_queue_written_before_retry_after_was_kept_opens(tmp_path: Path) -> None:
    path = tmp_path / "delivery.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE jobs (jti TEXT PRIMARY KEY, kind TEXT NOT NULL, camera TEXT NOT NULL, "
            "created_us INTEGER NOT NULL, expires_us INTEGER NOT NULL, "
            "starts INTEGER NOT NULL DEFAULT 1, file TEXT, sha256 TEXT, bytes INTEGER, "
            "manifest TEXT, attempts INTEGER NOT NULL DEFAULT 0)"
        )
        old.execute(
            "INSERT INTO jobs (jti, kind, camera, created_us, expires_us) "
            "VALUES ('j', 'clip', 'c', 1, 2)"
        )
    old.close()
    queue = JobQueue(path)
    row = queue.get("j")
    assert row is not None and row.not_before is None
    queue.defer("j", 5.0)
    deferred = queue.get("j")
    assert deferred is not None and deferred.not_before == 5.0
    queue.close()


async def test_start_forgets_expired_jobs_and_stray_files(tmp_path: Path) -> None:
    config = delivery_config(tmp_path / "state")
    config = config.model_copy(update={"upload": UploadConfig(temp_dir=tmp_path / "tmp")})
    (tmp_path / "tmp").mkdir()
    queue = JobQueue(tmp_path / "state" / "delivery.db")
    live, dead = str(uuid.uuid4()), str(uuid.uuid4())
    queue.begin(live, "clip", "front-door", expires=time.time() + 600)
    queue.prepared(live, file="clip-live.mp4", sha256="a" * 64, size=1, manifest="m")
    queue.begin(dead, "clip", "front-door", expires=time.time() - 1)
    queue.prepared(dead, file="clip-dead.mp4", sha256="b" * 64, size=1, manifest="m")
    queue.close()
    for name in ("clip-live.mp4", "clip-dead.mp4", ".clip-x.mp4.1234.partial", "stray.jpg"):
        (tmp_path / "tmp" / name).write_bytes(b"x")
    store = StoreService(config)
    await store.start()
    delivery = DeliveryService(config, store=store, device_key=DeviceKey.generate())
    try:
        await delivery.start()
        assert [row.jti for row in delivery.jobs.all()] == [live]
        assert await asyncio.to_thread(
            lambda: sorted(p.name for p in (tmp_path / "tmp").iterdir())
        ) == ["clip-live.mp4"]
    finally:
        await delivery.stop()
        await store.stop()
