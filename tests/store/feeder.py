"""A writer process for the crash tests: `python -m tests.store.feeder ROOT CAMERA MEDIA SPEED`.

Feeds the stamped MEDIA file into a store writer at SPEED times real time and prints the frame
number of every packet it has handed to the writer (one per line, flushed), so that the test can
`kill -9` it mid-segment and know exactly what had been fed.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from agent.config import StoreConfig
from agent.log import configure_logging
from agent.store import ClipStore
from tests.support.media import StampedPacket, feed, stamped_source


def main(root: str, camera: str, media: str, speed: str) -> None:
    configure_logging("warning")  # stdout is for frame numbers
    config = StoreConfig(segment_seconds=10, fragment_seconds=1.0, max_age=timedelta(days=30))
    store = ClipStore(Path(root), config=config)

    def fed(item: StampedPacket) -> None:
        sys.stdout.write(f"{item.stamp.frame_number}\n")
        sys.stdout.flush()

    with stamped_source(Path(media)) as source, store.open_writer(camera, source.stream) as writer:
        feed(writer, source, speed=float(speed), after=fed)
    sys.stdout.write("done\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
