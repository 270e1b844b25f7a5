"""Change notices inside one hub process: the ingestion says "request X moved", the console's
live pages wake up and re-read the database.

Only a hint that something changed, never the data itself: the database stays the one truth,
which is what lets several hub processes share it (a page served by one process also re-reads
on a short timer, so changes made by another process show up too).

    version = bus.version
    changed = await bus.wait(["incident:12"], since=version, within=2.0)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class ChangeBus:
    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._counter = 0
        self._changed = asyncio.Event()

    @property
    def version(self) -> int:
        return self._counter

    def publish(self, *topics: str) -> None:
        """Mark `topics` changed and wake every waiter."""
        self._counter += 1
        for topic in topics:
            self._versions[topic] = self._counter
        self._changed.set()
        self._changed = asyncio.Event()

    def changed_since(self, topics: Iterable[str], since: int) -> bool:
        return any(self._versions.get(topic, 0) > since for topic in topics)

    async def wait(self, topics: Iterable[str], *, since: int, within: float) -> bool:
        """Until one of `topics` changed after version `since` (True) or `within` s (False)."""
        wanted = list(topics)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.changed_since(wanted, since):
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True
