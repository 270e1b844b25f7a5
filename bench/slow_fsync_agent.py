"""`rtcc-edge` with every `os.fsync` of its main process slowed, as on an SD card (50-500 ms).

    python -m bench.slow_fsync_agent SECONDS [rtcc-edge arguments…]

For `bench.live_bench --slow-fsync`: the daemon's ledger, signed head and owner-file writes then
wait `SECONDS` per fsync, as they would on a slow card, and whatever still waited for them on
the event loop would stall the live fragments it forwards. SQLite's own fsyncs (request book,
replay cache, store index) are not slowed (they do not go through `os.fsync`), nor are the
recorder workers' (started fresh by the forkserver).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from agent.cli import main


def run(delay: float, argv: list[str]) -> int:
    real = os.fsync

    def slow_fsync(fd: Any) -> None:
        time.sleep(delay)
        real(fd)

    os.fsync = slow_fsync
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run(float(sys.argv[1]), sys.argv[2:]))
