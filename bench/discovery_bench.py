"""Discovery plus a full check of 16 cameras and one 8-channel NVR: how long a technician
waits on site.

    python -m bench.discovery_bench [--cameras 16] [--nvr-channels 8] [--json]

camsim runs the devices in a separate process (`camsim run --config`, each on its own loopback
address: the cameras a mix of every camera persona, so quirks, H.265, CIF sub streams, MJPEG
profiles and PasswordText cameras are all in the run, plus the `hikvision-nvr` persona: one
ONVIF device with a video source per channel). This process then does what `rtcc-edge discover
--scan` and `rtcc-edge check` do, through the same library calls and defaults: WS-Discovery
(unicast to the scanned range, listening 2 s; multicast needs a network namespace) with the
port sweep, then every recorder found is split into its channels (`expand_recorders`), then
`check_cameras` on every camera and channel (ONVIF interrogation, main stream measured over one
keyframe interval and decoded for a snapshot, sub stream's first picture, firmware, verdicts).

Peer in the same run: `ffprobe` opening the same main streams at once and counting the packets
of 2 s — what a technician would otherwise run per camera, without ONVIF or verdicts.
Target (issues 3 and 13): discovery plus the full check of 16 cameras and an 8-channel NVR in
under 10 s wall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from agent.compat import load_profiles
from agent.compat.check import CheckOptions, Target, check_cameras
from agent.compat.recorder_check import expand_recorders
from agent.log import configure_logging
from agent.onvif import find_cameras
from camsim.persona import PERSONAS

PASSWORD = "bench-Pa55"
FIRST_HOST = 101  # cameras on 127.0.0.101 and up
SCAN = "127.0.0.96/27"
TARGET_SECONDS = 10.0


NVR_PERSONA = "hikvision-nvr"


def camsim_config(count: int, nvr: bool) -> str:
    personas = [name for name, p in PERSONAS.items() if p.channels == 1]
    lines = ["[discovery]", "port = 0", "multicast = false", "[control]", "enabled = false"]
    for index in range(count):
        lines += [
            "[[cameras]]",
            f'id = "cam{index + 1}"',
            f'persona = "{personas[index % len(personas)]}"',
            f'host = "127.0.0.{FIRST_HOST + index}"',
            f'password = "{PASSWORD}"',
        ]
    if nvr:
        lines += [
            "[[cameras]]",
            'id = "nvr"',
            f'persona = "{NVR_PERSONA}"',
            f'host = "127.0.0.{FIRST_HOST + count}"',
            f'password = "{PASSWORD}"',
        ]
    return "\n".join(lines) + "\n"


def start_camsim(
    directory: Path, count: int, nvr: bool
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    config = directory / "cameras.toml"
    config.write_text(camsim_config(count, nvr))
    ready = directory / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "camsim", "run", "--config", str(config), "--ready-file",
         str(ready), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300  # the first run encodes every persona's streams
    while not ready.exists():
        if process.poll() is not None:
            raise SystemExit(f"camsim exited: {process.stderr.read() if process.stderr else ''}")
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("camsim did not become ready")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())


async def ffprobe_all(urls: list[str]) -> float:
    """Wall time for ffprobe to open every stream and count 2 s of its packets, all at once."""

    async def one(url: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
            "-read_intervals", "%+2", "-count_packets", "-show_entries",
            "stream=codec_name,width,height,nb_read_packets", "-of", "json", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        if process.returncode != 0 or not json.loads(out).get("streams"):
            raise SystemExit(f"ffprobe failed on a stream: {err.decode()[-300:]}")

    started = time.perf_counter()
    await asyncio.gather(*(one(url) for url in urls))
    return time.perf_counter() - started


async def run(count: int, camsim_pid: int, info: dict[str, Any]) -> dict[str, Any]:
    camsim = psutil.Process(camsim_pid)
    ports = sorted({c["onvif_port"] for c in info["cameras"]})
    profiles = load_profiles()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    camsim_before = camsim.cpu_times()

    started = time.perf_counter()
    found = await find_cameras(
        scan=[SCAN],
        multicast=False,
        ws_port=info["discovery"]["port"],
        sweep_ports=[*ports],  # camsim's ports are random; a site's are the defaults
    )
    discovered = time.perf_counter()
    targets = await expand_recorders(
        [
            Target(label=c.device_url, onvif_url=c.device_url, username="admin", password=PASSWORD)
            for c in found.cameras
        ]
    )
    expanded = time.perf_counter()
    results = await check_cameras(targets, options=CheckOptions(), profiles=profiles)
    finished = time.perf_counter()

    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    camsim_after = camsim.cpu_times()
    reports = [r.report for r in results]
    mains = [r.stream.url for r in reports if r.stream is not None and r.stream.url]
    peer = await ffprobe_all([url.replace("rtsp://", f"rtsp://admin:{PASSWORD}@") for url in mains])
    durations = [r.duration_s for r in reports]
    first_frames = [
        r.stream.time_to_first_frame_s
        for r in reports
        if r.stream and r.stream.time_to_first_frame_s
    ]
    read = [r.stream.seconds_read for r in reports if r.stream and r.stream.seconds_read]
    total = finished - started
    return {
        "cameras": count,
        "nvr_channels": sum(1 for t in targets if t.channel is not None),
        "devices": len(info["cameras"]),
        "found": len(found.cameras),
        "found_by_sweep_only": sum(1 for c in found.cameras if c.found_by == ["port_sweep"]),
        "discovery_s": round(discovered - started, 3),
        "channel_listing_s": round(expanded - discovered, 3),
        "checked": len(reports),
        "checks_s": round(finished - expanded, 3),
        "total_s": round(total, 3),
        "per_camera_check_s": {
            "min": min(durations),
            "median": statistics.median(durations),
            "max": max(durations),
        },
        "time_to_first_frame_s_median": statistics.median(first_frames) if first_frames else None,
        "seconds_read_median": statistics.median(read) if read else None,
        "statuses": {s: sum(1 for r in reports if r.status == s) for s in ("pass", "warn", "fail")},
        "streams_measured": sum(1 for r in reports if r.stream and r.stream.codec),
        "agent_cpu_s": round(
            cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime, 3
        ),
        "camsim_cpu_s": round(
            camsim_after.user + camsim_after.system - camsim_before.user - camsim_before.system, 3
        ),
        "ffprobe_streams": len(mains),
        "ffprobe_streams_s": round(peer, 3),
        "ratio_checks_to_ffprobe": round((finished - expanded) / peer, 2),
        "target_s": TARGET_SECONDS,
        "met": total < TARGET_SECONDS,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.discovery_bench", description=__doc__)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument(
        "--no-nvr", action="store_true", help="leave out the 8-channel NVR (the issue 3 run)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning", fmt="json")
    with tempfile.TemporaryDirectory(prefix="discovery-bench-") as tmp:
        process, info = start_camsim(Path(tmp), args.cameras, not args.no_nvr)
        try:
            result = asyncio.run(run(args.cameras, process.pid, info))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}")
        print(
            f"found {result['found']}/{result['devices']} devices "
            f"({result['found_by_sweep_only']} by the port sweep only) in "
            f"{result['discovery_s']:.2f} s; listed the recorder's {result['nvr_channels']} "
            f"channels in {result['channel_listing_s']:.2f} s"
        )
        per = result["per_camera_check_s"]
        print(
            f"checked {result['checked']} cameras and channels in {result['checks_s']:.2f} s "
            f"(per camera: min {per['min']:.2f}, "
            f"median {per['median']:.2f}, max {per['max']:.2f} s; time to first frame median "
            f"{result['time_to_first_frame_s_median']:.2f} s, stream read median "
            f"{result['seconds_read_median']:.2f} s); {result['streams_measured']} streams measured"
        )
        print(f"verdicts: {result['statuses']}")
        print(f"CPU: agent {result['agent_cpu_s']:.2f} s, camsim {result['camsim_cpu_s']:.2f} s")
        print(
            f"peer: ffprobe on the same {result['ffprobe_streams']} main streams at once (2 s "
            f"each) {result['ffprobe_streams_s']:.2f} s; checks / ffprobe = "
            f"×{result['ratio_checks_to_ffprobe']}"
        )
        verdict = "met" if result["met"] else "NOT met"
        print(
            f"total (discovery + channels + checks) {result['total_s']:.2f} s — target < "
            f"{TARGET_SECONDS:g} s {verdict}"
        )
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
