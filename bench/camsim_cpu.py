"""What camsim costs to serve: N cameras (default 16 at 1080p15, 4 Mbit/s, H.264), one RTSP
client each, CPU of the camsim process measured over a window, next to the ffmpeg clients' CPU.

    python -m bench.camsim_cpu [--seconds 60] [--cameras 16]

The cameras run in a separate process (this script re-invoked with --serve), built directly on
camsim.rtsp.RtspServer; each client is `ffmpeg -rtsp_transport tcp -i URL -c copy -f null -`.
Target (issue 2): camsim under 10 % of one core, so later benchmarks measure the agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import psutil

from agent.log import configure_logging
from camsim.faults import Faults
from camsim.media import VideoSpec, encode_stream
from camsim.rtsp import RtspServer

USER = "bench"
PASSWORD = "bench-pass"
PATH = "/Streaming/Channels/101"


@dataclass
class Client:
    process: subprocess.Popen[str]
    frames: int = 0


def _spec(args: argparse.Namespace) -> VideoSpec:
    return VideoSpec(
        codec=args.codec,
        width=args.width,
        height=args.height,
        fps=args.fps,
        gop=args.gop,
        bitrate=args.bitrate,
    )


async def _serve(args: argparse.Namespace) -> None:
    configure_logging("warning", fmt="json")
    stream = await asyncio.to_thread(encode_stream, _spec(args))
    servers = [
        RtspServer({PATH: stream}, username=USER, password=PASSWORD, faults=Faults())
        for _ in range(args.cameras)
    ]
    for server in servers:
        await server.start()
    print(json.dumps({"ports": [s.port for s in servers]}), flush=True)
    # Run until the parent closes our stdin.
    await asyncio.to_thread(sys.stdin.read)
    for server in servers:
        await server.close()


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _follow_progress(client: Client) -> None:
    """Keep the last frame count ffmpeg reports on -progress (runs in a thread)."""
    stdout = client.process.stdout
    assert stdout is not None
    for line in stdout:
        if line.startswith("frame="):
            client.frames = int(line.split("=", 1)[1].strip() or 0)


def _measure(args: argparse.Namespace) -> dict[str, object]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.camsim_cpu", "--serve", *_spec_args(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    clients: list[Client] = []
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())["ports"]
        for port in ports:
            url = f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}{PATH}"
            process = subprocess.Popen(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
                 "-i", url, "-c", "copy", "-f", "null", "-", "-progress", "pipe:1"],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            client = Client(process)
            threading.Thread(target=_follow_progress, args=(client,), daemon=True).start()
            clients.append(client)
        time.sleep(args.warmup)
        camsim = psutil.Process(server.pid)
        ffmpegs = [psutil.Process(c.process.pid) for c in clients]
        frames_before = [c.frames for c in clients]
        wall0 = time.monotonic()
        camsim0 = _cpu_seconds(camsim)
        ffmpeg0 = [_cpu_seconds(p) for p in ffmpegs]
        time.sleep(args.seconds)
        wall = time.monotonic() - wall0
        camsim_cpu = _cpu_seconds(camsim) - camsim0
        ffmpeg_cpu = [_cpu_seconds(p) - c0 for p, c0 in zip(ffmpegs, ffmpeg0, strict=True)]
        alive = sum(c.process.poll() is None for c in clients)
        received = [c.frames - b for c, b in zip(clients, frames_before, strict=True)]
    finally:
        for client in clients:
            client.process.terminate()
        for client in clients:
            client.process.wait(timeout=10)
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    total_ffmpeg = sum(ffmpeg_cpu)
    return {
        "cameras": args.cameras,
        "spec": f"{args.width}x{args.height} {args.codec} {args.fps} fps {args.bitrate} bit/s",
        "seconds": round(wall, 1),
        "camsim_percent_of_one_core": round(100 * camsim_cpu / wall, 2),
        "ffmpeg_clients_percent_of_one_core_total": round(100 * total_ffmpeg / wall, 2),
        "ffmpeg_client_percent_of_one_core_each": round(
            100 * total_ffmpeg / wall / len(clients), 2
        ),
        "camsim_vs_one_ffmpeg_client": round(camsim_cpu / (total_ffmpeg / len(clients)), 2),
        "clients_alive": alive,
        "frames_received_per_client_min": min(received),
        "frames_received_per_client_max": max(received),
        "frames_expected_per_client": round(wall * args.fps),
    }


def _spec_args(args: argparse.Namespace) -> list[str]:
    return [
        "--cameras", str(args.cameras), "--codec", args.codec, "--width", str(args.width),
        "--height", str(args.height), "--fps", str(args.fps), "--gop", str(args.gop),
        "--bitrate", str(args.bitrate),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--codec", choices=["h264", "hevc"], default="h264")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--gop", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=4_000_000)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args))
        return 0
    result = _measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {platform.platform()}, {psutil.cpu_count()} CPUs, Python "
              f"{platform.python_version()}")  # fmt: skip
        print(f"camsim: {result['cameras']} cameras, {result['spec']}, one ffmpeg client each, "
              f"measured over {result['seconds']} s")  # fmt: skip
        print(f"  camsim process:    {result['camsim_percent_of_one_core']:6.2f} % of one core")
        print(f"  ffmpeg clients:    {result['ffmpeg_clients_percent_of_one_core_total']:6.2f} % "
              f"of one core in total, {result['ffmpeg_client_percent_of_one_core_each']:.2f} % "
              "each")  # fmt: skip
        print(f"  camsim / one ffmpeg client: {result['camsim_vs_one_ffmpeg_client']:.2f}x")
        print(f"  clients alive: {result['clients_alive']}/{result['cameras']}, frames received "
              f"per client {result['frames_received_per_client_min']}.."
              f"{result['frames_received_per_client_max']} "
              f"(expected ~{result['frames_expected_per_client']})")  # fmt: skip
    ok = result["clients_alive"] == args.cameras
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
