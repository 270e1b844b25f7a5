"""Live view: request → first frame at the viewer, and the agent's CPU per live session
against the recorder alone, in the same run (issues 7 and 16).

    python -m bench.live_bench [--seconds 30] [--sessions 1] [--repeat 10] [--json]

Everything is real and in its own process except the relay:

* camsim (`camsim run`, one generic camera: 1920x1080 H.264 15 fps 4 Mbit/s, GOP 30 = 2 s);
* a TLS mosquitto (the test broker: client certificates, ACL);
* `rtcc-edge run`, the real daemon (recorder worker, link, tunnel), recording the camera;
* the hub's relay (`hub.relay` on HTTPS, the application `rtcc-hub serve` runs) in this process,
  which also signs and publishes the stream requests as the hub does.

1. **Recorder alone**: after a warm-up, CPU (user + system, psutil) of the agent's whole process
   tree over `--seconds`.
2. **Request → first frame**, `--repeat` times: a viewer is already waiting on a fresh relay
   session (an analyst who pressed "watch live"); a `stream` request is published at a random
   moment; measured from the publish: the relay's first media fragment, and the viewer holding
   the init segment and a fragment that starts with a keyframe (then decoded with PyAV, to be
   sure). Each session lasts 2 s and has ended before the next request.
3. **The peer**: `ffmpeg` opening the camera's RTSP itself, time to its first decoded frame.
4. **Live**: `--sessions` sessions streaming at once; the agent tree's CPU over `--seconds`, and
   the longest gap between two fragments at the relay in that window (a stall of the agent's
   event loop shows here: fragments are cut about every second).

`--ledger-load RATE`: from before the first CPU window to the end, signed requests are published
at RATE per second for a camera the site does not have: each is verified, recorded in the replay
cache, the ledger (arrival and decision, each fsynced) and the request book, and answered
`rejected`, on the same event loop that forwards the live fragments (issue 14 item 7). The
ledger entries written meanwhile are counted. `--slow-fsync SECONDS` makes each `os.fsync` of
the daemon's process (ledger, signed head, owner file) that slow, as on an SD card.

Printed: each latency and the median, the ratio to ffmpeg direct; CPU recorder alone, with the
sessions, the difference per session and the ratio live / alone. Without a cache the first
fragment cannot leave the site before the camera's next keyframe (up to a GOP, 2 s); the
recorder keeps the current GOP, so it leaves at once and the viewer starts up to a GOP behind
live.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import av

from agent.identity import DeviceKey, device_key_path
from agent.log import configure_logging
from agent.media import fmp4
from agent.wire import Topics
from bench.record_cpu import PASSWORD, Camsim, cpu_seconds, machine, tree
from hub.relay_media import fragment_keyframe, parse_init
from hub.relay_sessions import MintedSession
from tests.support.broker import MosquittoBroker
from tests.support.relay import RunningRelay, running_relay

ISSUER = "https://rtcc.bench"
SITE = "bench-live"
CAMERA = "front-door"
REPO = Path(__file__).resolve().parents[1]


def write_config(
    work: Path, broker: MosquittoBroker, jwks: Path, relay: RunningRelay, camera: Any
) -> Path:
    cert, key = broker.issue_client_cert(SITE)
    state = work / "state"
    text = f"""
state_dir = "{state}"
[site]
id = "{SITE}"
name = "bench"
[rtcc]
broker_url = "{broker.url()}"
ca_file = "{broker.ca_file}"
cert_file = "{cert}"
key_file = "{key}"
issuer = "{ISSUER}"
jwks_file = "{jwks}"
[store]
segment_seconds = 60
min_free = 0
[upload]
ca_file = "{relay.ca_file}"
[policy]
allowed_relay_hosts = ["127.0.0.1"]
requests_per_hour = 100000
[control]
socket = "{state / "control.sock"}"
[log]
level = "warning"
format = "json"
[[cameras]]
id = "{CAMERA}"
name = "bench"
rtsp_url = "{camera["rtsp"]["main"]}"
username = "{camera["username"]}"
secret = "{PASSWORD}"
sharing = "integrated"
live = true
[cameras.location]
lat = 35.0844
lon = -106.6504
"""
    path = work / "agent.toml"
    path.write_text(text)
    return path


def _claims_of(token: bytes) -> dict[str, Any]:
    payload = token.split(b".")[1]
    data: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    )
    return data


async def wait_online(broker: MosquittoBroker) -> None:
    """Until the agent's retained status says online (it then has its request subscription)."""
    async with broker.client() as hub, asyncio.timeout(60):
        await hub.subscribe(Topics(SITE).status, qos=1)
        async for message in hub.messages:
            if _claims_of(bytes(message.payload)).get("online"):
                return


class Requester:
    def __init__(self, broker: MosquittoBroker, key: DeviceKey, relay: RunningRelay) -> None:
        self.broker = broker
        self.key = key
        self.relay = relay

    def token(self, minted: MintedSession, max_seconds: int) -> bytes:
        now = int(time.time())
        claims = {
            "iss": ISSUER, "aud": SITE, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()),
            "cmd": "stream", "case": "BENCH-LIVE", "camera": CAMERA, "requester": "bench",
            "relay": {"url": minted.ingest_url, "token": minted.publisher_token},
            "max_seconds": max_seconds,
        }  # fmt: skip
        return self.key.sign(claims).encode()

    async def first_fragment(self, max_seconds: int) -> tuple[MintedSession, float]:
        """Publish one stream request; seconds until the relay has its first media fragment."""
        minted, at_relay, _ = await self.first_frame(max_seconds, viewer=False)
        return minted, at_relay

    async def first_frame(
        self, max_seconds: int, *, viewer: bool = True
    ) -> tuple[MintedSession, float, float | None]:
        """Publish one stream request with a viewer already waiting on the relay (as an analyst
        who pressed "watch live" is); seconds until the relay has its first media fragment, and
        until the viewer holds a decodable first frame (the init segment and a fragment that
        starts with a keyframe). The frame is then decoded with PyAV to be sure it is one."""
        minted = self.relay.mint(site=SITE, camera=CAMERA, lifetime=timedelta(minutes=10))
        payload = self.token(minted, max_seconds)
        watching = asyncio.create_task(self._view(minted)) if viewer else None
        await asyncio.sleep(0.05)  # the viewer's request is at the relay
        async with self.broker.client() as hub:
            sent = time.time()
            await hub.publish(Topics(SITE).req, payload, qos=1)
        async with asyncio.timeout(60):
            while True:
                live = self.relay.relay.session(minted.record.id)
                if live is not None and live.fragments_in and live.last_received is not None:
                    at_relay = live.last_received - sent
                    break
                await asyncio.sleep(0.002)
        at_viewer = None
        if watching is not None:
            arrived, data = await asyncio.wait_for(watching, 60)
            at_viewer = arrived - sent
            await asyncio.to_thread(_decode_first_frame, data)
        return minted, at_relay, at_viewer

    async def _view(self, minted: MintedSession) -> tuple[float, bytes]:
        """Read the viewer URL until a decodable first frame is in; (wall time, the bytes)."""
        buffer = bytearray()
        async with (
            aiohttp.ClientSession() as http,
            http.get(minted.viewer_url, ssl=self.relay.client_ssl()) as response,
        ):
            response.raise_for_status()
            async for chunk in response.content.iter_any():
                buffer += chunk
                split = fmp4.split_stream(buffer, have_init=False)
                if split.init_end and split.fragments:
                    info = parse_init(bytes(buffer[: split.init_end]))
                    moof, mdat = split.fragments[0]
                    first = bytes(buffer[moof.offset : mdat.end])
                    if fragment_keyframe(first, info):
                        return time.time(), bytes(buffer[: mdat.end])
        raise RuntimeError("the viewer's stream ended before a keyframe")

    async def load(self, rate: float, sent: list[int]) -> None:
        """Publish a request every 1/rate s (for a camera that does not exist: ledger entries
        and a `rejected` event, no delivery) until cancelled; `sent[0]` counts them."""
        minted = self.relay.mint(site=SITE, camera=CAMERA, lifetime=timedelta(minutes=60))
        async with self.broker.client() as hub:
            next_at = time.monotonic()
            while True:
                now = int(time.time())
                claims = {
                    "iss": ISSUER, "aud": SITE, "iat": now, "exp": now + 600,
                    "jti": str(uuid.uuid4()), "cmd": "stream", "case": "BENCH-LOAD",
                    "camera": "not-here", "requester": "bench",
                    "relay": {"url": minted.ingest_url, "token": minted.publisher_token},
                    "max_seconds": 10,
                }  # fmt: skip
                await hub.publish(Topics(SITE).req, self.key.sign(claims).encode(), qos=1)
                sent[0] += 1
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def wait_gone(self, minted: MintedSession) -> None:
        deadline = time.monotonic() + 60
        while (live := self.relay.relay.session(minted.record.id)) and live.publisher:
            if time.monotonic() > deadline:
                raise TimeoutError("the live session did not end")
            await asyncio.sleep(0.05)


def _decode_first_frame(data: bytes) -> None:
    with av.open(io.BytesIO(data), "r", format="mp4") as container:
        for _frame in container.decode(video=0):
            return
    raise RuntimeError("the viewer's first fragment holds no decodable frame")


def ffmpeg_first_frame(camera: Any) -> float:
    """The peer: `ffmpeg` opening the camera's RTSP stream itself (as a VMS client would), time
    to its first decoded frame (it, too, must wait for a keyframe)."""
    url = camera["rtsp"]["main"].replace("rtsp://", f"rtsp://{camera['username']}:{PASSWORD}@")
    started = time.monotonic()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "1",
         "-f", "null", "-"],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    return time.monotonic() - started


def start_agent(config: Path, log: Path, *, slow_fsync: float = 0.0) -> subprocess.Popen[bytes]:
    """`rtcc-edge run` on `config` (the real daemon, in its own process); with `slow_fsync`,
    each of its process's `os.fsync` calls waits that long first (`bench.slow_fsync_agent`)."""
    command = ["-m", "agent"]
    if slow_fsync > 0:
        command = ["-m", "bench.slow_fsync_agent", str(slow_fsync)]
    return subprocess.Popen(
        [sys.executable, *command, "--config", str(config), "run"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def ledger_lines(work: Path) -> int:
    path = work / "state" / "ledger" / "ledger.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def fragment_gaps(relay: RunningRelay, minted: MintedSession, gaps: list[float]) -> None:
    """Until cancelled: the time between successive fragments of `minted` at the relay."""
    last: float | None = None
    while True:
        live = relay.relay.session(minted.record.id)
        received = live.last_received if live is not None else None
        if received is not None and received != last:
            if last is not None:
                gaps.append(received - last)
            last = received
        await asyncio.sleep(0.005)


def cpu_percent(pid: int, seconds: float) -> float:
    processes = tree(pid)
    before = {p.pid: cpu_seconds(p) for p in processes}
    wall = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - wall
    used = sum(cpu_seconds(p) - before[p.pid] for p in processes if p.pid in before)
    return 100 * used / elapsed


async def bench(
    seconds: float,
    sessions: int,
    repeat: int,
    warmup: float,
    *,
    ledger_load: float = 0.0,
    slow_fsync: float = 0.0,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rtcc-bench-live-"))
    broker = MosquittoBroker()
    broker.start()
    agent: subprocess.Popen[bytes] | None = None
    try:
        with Camsim(work / "camsim", cameras=1) as camsim:
            async with running_relay(work / "hub") as relay:
                key = DeviceKey.generate()
                jwks = work / "jwks.json"
                jwks.write_text(json.dumps({"keys": [key.public_jwk]}))
                config = write_config(work, broker, jwks, relay, camsim.cameras[0])
                DeviceKey.load_or_create(device_key_path(work / "state"))
                agent = start_agent(config, work / "agent.log", slow_fsync=slow_fsync)
                await wait_online(broker)
                requester = Requester(broker, key, relay)
                sent = [0]
                loading = None
                if ledger_load > 0:
                    loading = asyncio.create_task(requester.load(ledger_load, sent))
                await asyncio.sleep(warmup)
                lines_before, load_started = ledger_lines(work), time.monotonic()
                sent_before = sent[0]
                alone = await asyncio.to_thread(cpu_percent, agent.pid, seconds)

                latencies: list[float] = []
                frames: list[float] = []
                for _ in range(repeat):
                    # A random pause: without the GOP cache the wait for the camera's next
                    # keyframe depends on when the request lands in its GOP, so sample that
                    # phase rather than lock to it.
                    await asyncio.sleep(random.uniform(0, 2.5))
                    minted, latency, frame = await requester.first_frame(max_seconds=2)
                    latencies.append(latency)
                    assert frame is not None
                    frames.append(frame)
                    await requester.wait_gone(minted)
                direct = [
                    await asyncio.to_thread(ffmpeg_first_frame, camsim.cameras[0])
                    for _ in range(min(repeat, 5))
                ]

                running = [
                    await requester.first_fragment(max_seconds=int(seconds + warmup + 30))
                    for _ in range(sessions)
                ]
                await asyncio.sleep(3)
                gaps: list[float] = []
                watching = asyncio.create_task(fragment_gaps(relay, running[0][0], gaps))
                live = await asyncio.to_thread(cpu_percent, agent.pid, seconds)
                watching.cancel()
                load_seconds = time.monotonic() - load_started
                entries = ledger_lines(work) - lines_before
                requests_sent = sent[0] - sent_before
                if loading is not None:
                    loading.cancel()
                    await asyncio.gather(loading, return_exceptions=True)
                fragments = [
                    s.fragments_in
                    for minted, _ in running
                    if (s := relay.relay.session(minted.record.id)) is not None
                ]
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            agent.wait(60)
        broker.close()
    shutil.rmtree(work, ignore_errors=True)  # kept (with the agent's log) when a run fails
    per_session = (live - alone) / sessions
    return {
        "machine": machine(),
        "seconds": seconds,
        "sessions": sessions,
        "first_fragment_s": [round(x, 3) for x in latencies],
        "first_fragment_median_s": round(statistics.median(latencies), 3),
        "first_frame_at_viewer_s": [round(x, 3) for x in frames],
        "first_frame_at_viewer_median_s": round(statistics.median(frames), 3),
        "ffmpeg_direct_first_frame_s": [round(x, 3) for x in direct],
        "ffmpeg_direct_first_frame_median_s": round(statistics.median(direct), 3),
        "cpu_recorder_alone_percent": round(alone, 2),
        "cpu_with_live_percent": round(live, 2),
        "cpu_per_session_percent": round(per_session, 2),
        "ratio_live_over_alone": round(live / alone, 2) if alone else None,
        "fragments_at_relay": fragments,
        "fragment_gap_max_s": round(max(gaps), 3) if gaps else None,
        "fragment_gap_median_s": round(statistics.median(gaps), 3) if gaps else None,
        "ledger_load_per_s": ledger_load,
        "slow_fsync_s": slow_fsync,
        "load_requests_sent": requests_sent,
        "ledger_entries_per_s": round(entries / load_seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each CPU window")
    parser.add_argument("--sessions", type=int, default=1, help="live sessions at once")
    parser.add_argument("--repeat", type=int, default=10, help="request → first fragment runs")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument(
        "--ledger-load",
        type=float,
        default=0.0,
        metavar="RATE",
        help="meanwhile, requests per second that the agent records in its ledger (0: none)",
    )
    parser.add_argument(
        "--slow-fsync",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="each os.fsync of the daemon's process waits this long first (an SD card)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning", fmt="console")  # to stderr: stdout is the result
    result = asyncio.run(
        bench(
            args.seconds,
            args.sessions,
            args.repeat,
            args.warmup,
            ledger_load=args.ledger_load,
            slow_fsync=args.slow_fsync,
        )
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print(
        "request → first fragment at the relay: "
        + ", ".join(f"{x:.2f} s" for x in result["first_fragment_s"])
        + f" (median {result['first_fragment_median_s']:.2f} s)"
    )
    viewer, direct = (
        result["first_frame_at_viewer_median_s"],
        result["ffmpeg_direct_first_frame_median_s"],
    )
    print(
        "request → first frame at the viewer: "
        + ", ".join(f"{x:.2f} s" for x in result["first_frame_at_viewer_s"])
        + f" (median {viewer:.2f} s)"
    )
    print(
        f"ffmpeg opening the camera's RTSP itself → first decoded frame: median {direct:.2f} s; "
        f"ratio viewer / ffmpeg direct: {viewer / direct:.2f}"
    )
    alone, live = result["cpu_recorder_alone_percent"], result["cpu_with_live_percent"]
    print(
        f"agent CPU over {args.seconds:.0f} s: recorder alone {alone:.2f} % of one core; "
        f"with {args.sessions} live session(s) {live:.2f} % "
        f"(+{result['cpu_per_session_percent']:.2f} % per session, "
        f"x{result['ratio_live_over_alone']} of the recorder alone)"
    )
    print(
        f"fragments at the relay in that window: gap median {result['fragment_gap_median_s']} s, "
        f"max {result['fragment_gap_max_s']} s"
    )
    if args.ledger_load:
        print(
            f"ledger load: {result['load_requests_sent']} requests at {args.ledger_load}/s, "
            f"{result['ledger_entries_per_s']} ledger entries per second during the windows"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
