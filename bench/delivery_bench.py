"""Request → `completed` for a 60 s 1080p clip on loopback, against ffmpeg + curl.

    .venv/bin/python -m bench.delivery_bench [--reps 5] [--seconds 60] [--segment-seconds 10]

Set-up (not timed): stamped 1080p15 4 Mbit/s H.264 (encoded once, cached) is recorded into a
fresh store through the real segment writer; `rtcc-hub serve` runs as its own process on a free
loopback port (HTTPS with the hub CA's certificate, the upload receiver writing to disk).

Timed, alternating, `--reps` times each:

* **ours**: a signed clip request handed to the request service as the MQTT session would
  (verification, replay cache, ledger, policy, hold), then the delivery service: extraction from
  the store (re-hashing every source segment, fsync, SHA-256 of the clip), the signed manifest,
  the HTTPS PUT of the clip and of the manifest (URLs minted by the hub), until `completed`.
  The breakdown comes from the agent's own log events: verify (→ `accepted`), extract incl.
  hashing (→ `clip_extracted`), manifest (→ `clip_prepared`), upload (→ `completed`).
* **baseline**: `ffmpeg -f concat -safe 0 -i list.txt -c copy -movflags +faststart` of the same
  segment files, then `curl -T clip.mp4` to a URL minted the same way on the same receiver.

Prints medians, the ratio ours / baseline (target ≤ 1.5), and checks every received clip with
ffprobe (and the SHA-256 the receiver recorded against the manifest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.identity import verify_device_jws
from agent.log import configure_logging
from agent.store import ClipStore
from agent.store.files import hash_file
from agent.store.model import from_us
from agent.wire import Manifest
from hub.ca import site_ca
from hub.presign import UploadSigner, case_directory, load_upload_key
from hub.state import HubHome
from tests.delivery.site import CAMERA, delivering_site, delivery_config
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source
from tests.support.rtcc import make_request

FPS = 15
CASE = "bench-0001"
REPO = Path(__file__).resolve().parents[1]


class Marks(logging.Handler):
    """Timestamps of the agent's log events, by name (the breakdown)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.seen: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = record.msg.get("event") if isinstance(record.msg, dict) else None
        if isinstance(event, str) and event not in self.seen:
            self.seen[event] = time.perf_counter()


def record_footage(config: AgentConfig, media: Path) -> None:
    with (
        ClipStore.from_config(config) as store,
        stamped_source(media) as source,
        store.open_writer(CAMERA, source.stream) as writer,
    ):
        feed(writer, source)


def start_receiver(home: HubHome, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = work / "serve.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "--home", str(home.root), "serve", "--port", "0",
         "--ready-file", str(ready)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=(work / "serve.log").open("wb"),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"rtcc-hub serve did not start: {(work / 'serve.log').read_text()}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["url"]


def probe_frames(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v",
         "-show_entries", "stream=nb_read_packets", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(json.loads(out)["streams"][0]["nb_read_packets"])


async def ours_once(
    config: AgentConfig, mint: Callable[[str, str], str], window: tuple[datetime, datetime]
) -> dict[str, Any]:
    jti = str(uuid.uuid4())
    upload = {"url": mint(jti, "clip.mp4"), "manifest_url": mint(jti, "manifest.jws")}
    payload = make_request(
        "clip",
        jti=jti,
        camera=CAMERA,
        case=CASE,
        start=window[0].isoformat(),
        end=window[1].isoformat(),
        upload=upload,
    )
    marks = Marks()
    logging.getLogger().addHandler(marks)
    try:
        async with delivering_site(config) as site:
            t0 = time.perf_counter()
            await site.service.handle(payload)
            accepted = time.perf_counter()
            done = await site.sink.wait_for(jti, "completed", within=300)
            finished = time.perf_counter()
            manifest = Manifest.model_validate(
                verify_device_jws(done.manifest or "", site.key.public_jwk)
            )
    finally:
        logging.getLogger().removeHandler(marks)
    extracted = marks.seen["clip_extracted"]
    prepared = marks.seen["clip_prepared"]
    return {
        "total": finished - t0,
        "verify": accepted - t0,
        "extract": extracted - accepted,
        "manifest": prepared - extracted,
        "upload": finished - prepared,
        "bytes": manifest.file.bytes,
        "frames": manifest.file.frames or 0,
        "jti": jti,
        "sha256": manifest.file.sha256,
    }


def baseline_once(listing: Path, out: Path, url: str, ca_file: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-c", "copy", "-movflags", "+faststart", str(out)],
        check=True,
    )  # fmt: skip
    concat = time.perf_counter()
    subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(ca_file), "-T", str(out), "-o", "/dev/null",
         url],
        check=True,
    )  # fmt: skip
    done = time.perf_counter()
    return {"total": done - t0, "concat": concat - t0, "curl": done - concat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=60, help="window length")
    parser.add_argument("--segment-seconds", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rtcc-edge-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging("info")  # the marks need info events; the console shows warnings only
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    if args.seconds % args.segment_seconds:
        parser.error("--seconds must be a multiple of --segment-seconds")

    seconds = args.seconds + 2 * args.segment_seconds
    hour = int(time.time()) // 3600 * 3600  # the media is re-used (cached) within the hour
    spec = MediaSpec(
        width=1920,
        height=1080,
        fps=FPS,
        gop=30,
        seconds=seconds,
        bitrate=4_000_000,
        start_us=(hour - 2 * 3600) * 1_000_000,
    )
    print(f"encoding {seconds} s of 1080p15 4 Mbit/s H.264 (cached in {args.cache}) ...")
    media = encode_stamped(args.cache, spec)

    work = Path(tempfile.mkdtemp(prefix="delivery-bench-"))
    home = HubHome(work / "hub")
    home.root.mkdir(parents=True)
    receiver, base_url = start_receiver(home, work)
    ca_file = site_ca(home).cert_path
    signer = UploadSigner(load_upload_key(home))

    def mint(jti: str, name: str) -> str:
        return signer.upload_url(base_url, CASE, jti, name, expires=int(time.time()) + 3600)

    try:
        config = delivery_config(work / "state", ca_file=ca_file)
        config = config.model_copy(
            update={
                "store": config.store.model_copy(
                    update={"segment_seconds": args.segment_seconds, "max_bytes": 10**12}
                ),
            }
        )
        record_footage(config, media)
        with ClipStore.from_config(config) as store:
            rows = store.segments(CAMERA)
            paths = [store.layout.segment(r.path) for r in rows]
        window_rows = rows[1 : 1 + args.seconds // args.segment_seconds]
        first, last = window_rows[0], window_rows[-1]
        # The window of whole segments; ffmpeg concatenates exactly those files.
        window = (from_us(first.start_us), from_us(last.end_us - 1))
        listing = work / "list.txt"
        chosen = paths[1 : 1 + len(window_rows)]
        listing.write_text("".join(f"file '{p}'\n" for p in chosen))
        mb = sum(r.bytes for r in window_rows) / 1e6
        print(f"window: {len(window_rows)} segments, {mb:.1f} MB, {args.seconds} s")

        out = work / "baseline.mp4"
        baseline_once(listing, out, mint(str(uuid.uuid4()), "clip.mp4"), ca_file)  # warm-up
        asyncio.run(ours_once(config, mint, window))  # warm-up: imports, page cache
        ours: list[dict[str, Any]] = []
        base: list[dict[str, float]] = []
        for rep in range(args.reps):
            runs: list[Callable[[], None]] = [
                lambda: ours.append(asyncio.run(ours_once(config, mint, window))),
                lambda: base.append(
                    baseline_once(listing, out, mint(str(uuid.uuid4()), "clip.mp4"), ca_file)
                ),
            ]
            for run in runs if rep % 2 == 0 else reversed(runs):
                run()
        for result in ours:
            received = case_directory(home, CASE, result["jti"]) / "clip.mp4"
            assert hash_file(received)[0] == result["sha256"], "the receiver got other bytes"
            assert probe_frames(received) == result["frames"]
        baseline_frames = probe_frames(out)
    finally:
        receiver.terminate()
        receiver.wait(30)

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    ours_total, base_total = median(ours, "total"), median(base, "total")
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "reps": args.reps,
        "clip_bytes": int(ours[0]["bytes"]),
        "clip_frames": int(ours[0]["frames"]),
        "baseline_frames": baseline_frames,
        "ours_ms": {
            k: round(median(ours, k) * 1000, 1)
            for k in ("total", "verify", "extract", "manifest", "upload")
        },
        "ours_best_ms": round(min(float(r["total"]) for r in ours) * 1000, 1),
        "baseline_ms": {k: round(median(base, k) * 1000, 1) for k in ("total", "concat", "curl")},
        "baseline_best_ms": round(min(r["total"] for r in base) * 1000, 1),
        "ratio": round(ours_total / base_total, 2),
    }
    if args.json:
        print(json.dumps(summary))
        return
    o, b = summary["ours_ms"], summary["baseline_ms"]
    print(
        f"ours (request → completed): median {o['total']:.0f} ms (best "
        f"{summary['ours_best_ms']:.0f}): verify {o['verify']:.1f}, extract+hash "
        f"{o['extract']:.0f}, manifest {o['manifest']:.1f}, upload {o['upload']:.0f} ms"
    )
    print(
        f"baseline (ffmpeg concat + curl -T): median {b['total']:.0f} ms (best "
        f"{summary['baseline_best_ms']:.0f}): concat {b['concat']:.0f}, curl {b['curl']:.0f} ms"
    )
    print(
        f"clip {summary['clip_bytes'] / 1e6:.1f} MB, {summary['clip_frames']} frames "
        f"(baseline {baseline_frames}); ratio ours/baseline {summary['ratio']:.2f} (target ≤ 1.5)"
    )


if __name__ == "__main__":
    main()
