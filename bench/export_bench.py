"""Clip export time against ffmpeg's concat demuxer on the same segments.

    .venv/bin/python -m bench.export_bench [--reps 7] [--seconds 60] [--segment-seconds 10]

Encodes (once, cached) stamped 1080p15 4 Mbit/s H.264, records it into a fresh store through
the real segment writer, then repeatedly exports a window of `--seconds` aligned to segment
boundaries two ways, alternating:

* ours:   `ClipStore.extract()` — which also re-hashes every source segment against the index,
          fsyncs the clip and hashes it;
* ffmpeg: `ffmpeg -f concat -safe 0 -i list.txt -c copy -movflags +faststart` of the same
          segment files (no hashing, no fsync).

Prints wall time (median and best) and CPU time of both and the ratio ours/ffmpeg (target
≤ 1.5), and checks both outputs with ffprobe (frame count, duration). Also prints the CPU cost
of recording the file through the segment writer against `ffmpeg -c copy -f segment` writing
fragmented MP4 segments from the same file (a file, not RTSP: the recorder's bench is separate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from agent.config import StoreConfig
from agent.log import configure_logging
from agent.store import ClipStore
from agent.store.model import from_us
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source

FPS = 15


def probe(path: Path) -> tuple[int, float]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_read_packets:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(out)
    return int(info["streams"][0]["nb_read_packets"]), float(info["format"]["duration"])


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its children) of one call."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    action()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        (a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime)
        for a, b in zip(after, before, strict=True)
    )
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=60, help="window length")
    parser.add_argument("--segment-seconds", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rtcc-edge-bench")
    args = parser.parse_args()
    configure_logging("warning")
    if args.seconds % args.segment_seconds:
        parser.error("--seconds must be a multiple of --segment-seconds")

    seconds = args.seconds + 2 * args.segment_seconds
    start_us = (time.time_ns() // 1000 - 3600 * 1_000_000) // 1_000_000 * 1_000_000
    spec = MediaSpec(
        width=1920,
        height=1080,
        fps=FPS,
        gop=30,
        seconds=seconds,
        bitrate=4_000_000,
        start_us=start_us,
    )
    print(f"encoding {seconds} s of 1080p15 4 Mbit/s H.264 (cached in {args.cache}) ...")
    media = encode_stamped(args.cache, spec)

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    try:
        config = StoreConfig(
            segment_seconds=args.segment_seconds,
            max_age=timedelta(days=30),
            min_free=0,
            max_bytes=10**12,
        )
        store = ClipStore(work / "store", config=config)

        def record() -> None:
            with (
                stamped_source(media) as source,
                store.open_writer("bench", source.stream) as writer,
            ):
                feed(writer, source)

        def segment_muxer() -> None:
            out = work / "ffseg"
            out.mkdir(exist_ok=True)
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(media),
                    "-c",
                    "copy",
                    "-f",
                    "segment",
                    "-segment_time",
                    str(args.segment_seconds),
                    "-segment_format",
                    "mp4",
                    "-segment_format_options",
                    "movflags=frag_keyframe+empty_moov+default_base_moof",
                    str(out / "seg%03d.mp4"),
                ],
                check=True,
            )

        segment_muxer()  # warm-up
        _, record_cpu = timed(record)
        _, ff_cpu = timed(segment_muxer)
        print(
            f"recording {seconds} s through the writer (demux + remux + hash + index): "
            f"cpu {record_cpu * 1000:.0f} ms = {record_cpu / seconds * 1000:.2f} ms per "
            f"second of video; ffmpeg -c copy -f segment: cpu {ff_cpu * 1000:.0f} ms "
            f"= {ff_cpu / seconds * 1000:.2f} ms/s; ratio {record_cpu / ff_cpu:.2f}"
        )
        rows = store.segments("bench")
        window = rows[1 : 1 + args.seconds // args.segment_seconds]
        start, end = window[0].start_us, window[-1].end_us
        mb = sum(r.bytes for r in window) / 1e6
        print(f"window: {len(window)} segments, {mb:.1f} MB, {(end - start) / 1e6:.1f} s")
        listing = work / "list.txt"
        listing.write_text("".join(f"file '{store.layout.segment(r.path)}'\n" for r in window))
        ours_out, ffmpeg_out = work / "ours.mp4", work / "ffmpeg.mp4"

        def ours() -> None:
            store.extract("bench", from_us(start), from_us(end - 1), ours_out)

        def ffmpeg() -> None:
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "concat",
                    "-safe",
                    "0",
                    "-i",
                    str(listing),
                    "-c",
                    "copy",
                    "-movflags",
                    "+faststart",
                    str(ffmpeg_out),
                ],
                check=True,
            )

        ours()
        ffmpeg()  # warm-up: page cache, imports
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "ffmpeg": []}
        for rep in range(args.reps):
            order = (("ours", ours), ("ffmpeg", ffmpeg))
            for name, action in order if rep % 2 == 0 else reversed(order):
                results[name].append(timed(action))
        for name, path in (("ours", ours_out), ("ffmpeg", ffmpeg_out)):
            frames, duration = probe(path)
            print(
                f"  {name:<7} output: {frames} frames, {duration:.3f} s, "
                f"{path.stat().st_size / 1e6:.1f} MB"
            )
        med = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
        best = {k: min(w for w, _ in v) for k, v in results.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
        for name in ("ours", "ffmpeg"):
            print(
                f"  {name:<7} wall median {med[name] * 1000:7.1f} ms  best "
                f"{best[name] * 1000:7.1f} ms  cpu median {cpu[name] * 1000:7.1f} ms"
            )
        print(
            f"ratio ours/ffmpeg: wall median {med['ours'] / med['ffmpeg']:.2f}, "
            f"best {best['ours'] / best['ffmpeg']:.2f}, cpu {cpu['ours'] / cpu['ffmpeg']:.2f}"
            "  (target ≤ 1.5)"
        )
        print(
            f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
            f"python {platform.python_version()}"
        )
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
