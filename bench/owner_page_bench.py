"""The owner's page with 16 cameras: server time of the overview, and the page's CPU while
nobody looks at it (issue 15).

    python -m bench.owner_page_bench [--cameras 16] [--requests 200] [--idle-seconds 60] [--json]

Everything real, each in its own process: camsim (N generic cameras, 1080p15 H.264 4 Mbit/s), a
TLS mosquitto (the test broker), `rtcc-edge run` recording all N and connected to the broker as
an enrolled site is (certificate, the RTCC's JWKS), and the page, `rtcc-edge owner serve`, with
its password set by `rtcc-edge owner passwd --stdin`.

1. **Server time**: signed in, once every camera records, `--requests` rounds of GET `/`,
   `/cameras`, `/requests` and the page's stylesheet, one after another; each answer's
   `Server-Timing: app;dur=` (from the request entering the page's application to its answer
   being prepared, the control-socket round trips to the daemon included). Peer in the same run:
   the same process serving its static stylesheet, the floor of a request in that process.
   Target: the overview in under 100 ms (p95).
2. **Idle CPU**: the client gone, user + system CPU (/proc/<pid>/stat) and wake-ups (voluntary
   context switches of all threads) of the page's process over `--idle-seconds`; in the same
   window, the daemon recording N cameras (its own process, and with its workers), and
   `python3 -c 'import time; time.sleep(…)'` as the "does nothing" peer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from agent.control.async_client import AsyncControlClient
from agent.identity import DeviceKey, device_key_path
from agent.store.index import Index
from agent.store.store import _STATUS
from agent.wire import Topics
from bench.record_cpu import PASSWORD, Camsim, cpu_seconds, machine, tree
from tests.support.broker import MosquittoBroker, free_port
from tests.support.owner_page import owner_jar
from tests.support.rtcc import RtccTestKey, make_request

REPO = Path(__file__).resolve().parents[1]
SITE = "bench-owner-page"
ISSUER = "https://rtcc.bench"
UPLOADS = "uploads.rtcc.bench"
OWNER_PASSWORD = "bench owner password"
TARGET_MS = 100.0
STYLESHEET = "/static/page.css"
PAGES = ("/", "/cameras", "/requests", STYLESHEET)
SERVER_TIMING = re.compile(r"app;dur=(\d+(?:\.\d+)?)")
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def write_config(
    work: Path, broker: MosquittoBroker, rtcc: RtccTestKey, cameras: list[dict[str, Any]]
) -> Path:
    cert, key = broker.issue_client_cert(SITE)
    jwks = rtcc.write_jwks(work / "jwks.json")
    state = work / "state"
    DeviceKey.load_or_create(device_key_path(state))
    lines = [
        f'state_dir = "{state}"',
        f'[site]\nid = "{SITE}"\nname = "bench"',
        f'[rtcc]\nbroker_url = "{broker.url()}"\nca_file = "{broker.ca_file}"\n'
        f'cert_file = "{cert}"\nkey_file = "{key}"\nissuer = "{ISSUER}"\n'
        f'jwks_file = "{jwks}"',
        f'[policy]\nallowed_upload_hosts = ["{UPLOADS}"]',
        "[store]\nsegment_seconds = 60\nmin_free = 0",
        f'[control]\nsocket = "{state / "control.sock"}"',
        '[log]\nlevel = "warning"\nformat = "json"',
        f'[owner_page]\nenabled = true\nlisten = "127.0.0.1:{free_port("127.0.0.1")}"',
    ]
    for n, camera in enumerate(cameras, 1):
        lines.append(
            f'[[cameras]]\nid = "cam{n}"\nname = "cam{n}"\n'
            f'rtsp_url = "{camera["rtsp"]["main"]}"\n'
            f'username = "{camera["username"]}"\nsecret = "{PASSWORD}"\nsharing = "registry"\n'
            f"[cameras.location]\nlat = 35.08{n:02d}\nlon = -106.65"
        )
    path = work / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def set_owner_password(config: Path) -> None:
    """As the installer does: `rtcc-edge owner passwd --stdin`."""
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "owner", "passwd", "--stdin"],
        input=OWNER_PASSWORD + "\n", capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"owner passwd failed: {done.stdout}{done.stderr}")


def agent(config: Path, *command: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "--config", str(config), *command],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


async def wait_recording(
    socket: Path, cameras: int, daemon: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the daemon says every camera records and its link is connected."""
    client = AsyncControlClient(socket)
    deadline = time.monotonic() + 180
    while True:
        if daemon.poll() is not None:
            tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-2000:]
            raise SystemExit(f"the daemon exited ({daemon.returncode}): {tail}")
        try:
            status = await client.call("status")
            recording = [r for r in status.get("recorders", []) if r["state"] == "recording"]
            if len(recording) == cameras and status["link"].get("state") == "connected":
                return
        except Exception:  # not up yet
            pass
        if time.monotonic() > deadline:
            raise SystemExit("not every camera recorded within 180 s")
        await asyncio.sleep(0.5)


async def ask_owner(
    broker: MosquittoBroker, rtcc: RtccTestKey, socket: Path, count: int, cameras: int
) -> int:
    """Publish `count` clip requests (the last 10 s of a camera's footage each) as the RTCC
    does, so the Requests page has requests waiting with their previews; how many wait."""
    now = time.time()
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 12))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2))
    async with broker.client() as hub:
        for n in range(count):
            payload = make_request(
                "clip", key=rtcc, iss=ISSUER, aud=SITE, camera=f"cam{n % cameras + 1}",
                upload={"url": f"https://{UPLOADS}/put/{n}.mp4"}, start=start, end=end,
            )  # fmt: skip
            await hub.publish(Topics(SITE).req, payload, qos=1)
    client = AsyncControlClient(socket)
    deadline = time.monotonic() + 30
    while True:
        pending = int((await client.call("status")).get("pending", 0))
        if pending >= count or time.monotonic() > deadline:
            return pending
        await asyncio.sleep(0.2)


async def sign_in(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            async with http.get(url + "/login") as response:
                form = await response.text()
                break
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise SystemExit("the owner's page never answered") from None
            await asyncio.sleep(0.2)
    match = CSRF_FIELD.search(form)
    assert match is not None, form
    async with http.post(
        url + "/login",
        data={"csrf": match.group(1), "password": OWNER_PASSWORD},
        headers={"Origin": url},
        allow_redirects=False,
    ) as response:
        if response.status != 303:
            raise SystemExit(f"signing in failed: {response.status} {await response.text()}")


async def timed_get(http: aiohttp.ClientSession, url: str) -> tuple[float, float, str]:
    """(server ms from Server-Timing, client round trip ms, body)."""
    started = time.perf_counter()
    async with http.get(url, allow_redirects=False) as response:
        body = await response.text()
        wall = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"{url}: {response.status} {body[:300]}")
        match = SERVER_TIMING.fullmatch(response.headers.get("Server-Timing", ""))
        if match is None:
            raise SystemExit(f"{url}: no Server-Timing header")
    return float(match.group(1)), wall, body


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "p95": round(statistics.quantiles(values, n=100, method="inclusive")[94], 2),
        "max": round(max(values), 2),
    }


async def serve_times(url: str, rounds: int, cameras: int) -> dict[str, Any]:
    server: dict[str, list[float]] = {path: [] for path in PAGES}
    client: dict[str, list[float]] = {path: [] for path in PAGES}
    async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
        await sign_in(http, url)
        _, _, overview = await timed_get(http, url + "/")
        shown = overview.count("<p>Recording.</p>")
        if shown != cameras or "Connected to the RTCC." not in overview:
            raise SystemExit(f"the overview shows {shown} cameras recording: {overview[-2000:]}")
        for _ in range(10):  # warm-up: templates compiled, connections open
            for path in PAGES:
                await timed_get(http, url + path)
        for _ in range(rounds):
            # Interleaved, so the shared machine's noise falls on every page alike.
            for path in PAGES:
                app_ms, wall_ms, _ = await timed_get(http, url + path)
                server[path].append(app_ms)
                client[path].append(wall_ms)
    return {
        path: {"server_ms": summary(server[path]), "client_ms": summary(client[path])}
        for path in PAGES
    }


def full_store_status(days: float, cameras: int, repeat: int = 5) -> dict[str, Any]:
    """The daemon's side of the overview with a full store: the store's own index (its schema,
    its connection) holding `days` of 60 s segments per camera, and ClipStore.status's query
    over it, timed. The running daemon cannot be given that: its store holds minutes, and rows
    without their files would not survive its start-up reconciliation."""
    per_camera = int(days * 24 * 60)
    with tempfile.TemporaryDirectory(prefix="owner-page-bench-index-") as tmp:
        index = Index(Path(tmp) / "index.sqlite3")
        start = 1_700_000_000_000_000
        with index.transaction() as db:
            db.executemany(
                "INSERT INTO segments (camera, path, session, state, start_us, end_us, "
                "timescale, first_pts, end_pts, anchor_pts, anchor_us, codec, width, height, "
                "frames, bytes, created_us) VALUES (?, ?, 's', 'complete', ?, ?, 90000, 0, "
                "5400000, 0, ?, 'h264', 1920, 1080, 900, 30000000, ?)",
                (
                    (f"cam{c}", f"cam{c}/{n}.mp4", t, t + 60_000_000, t, t)
                    for c in range(1, cameras + 1)
                    for n in range(per_camera)
                    for t in (start + n * 60_000_000,)
                ),
            )
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            index.query(_STATUS)
            times.append((time.perf_counter() - began) * 1000)
        index.close()
    return {
        "days": days,
        "segments": per_camera * cameras,
        "query_ms": [round(t, 1) for t in times],
        "median_ms": round(statistics.median(times), 1),
    }


def wakeups(pid: int) -> int:
    """Voluntary context switches of all the process's threads: each is a sleep it woke from."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def idle(page: int, daemon: int, seconds: float) -> dict[str, Any]:
    sleeper = subprocess.Popen(
        ["python3", "-c", f"import time; time.sleep({seconds + 30})"], stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(2)  # the sleeper's start-up and the page's last connection closed
        agent_tree = tree(daemon)
        solo = {"page": page, "daemon": daemon, "sleeper": sleeper.pid}
        # User + system CPU seconds of each process, all its threads (/proc/<pid>/stat).
        processes = {name: psutil.Process(pid) for name, pid in solo.items()}
        cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
        wake_before = {name: wakeups(pid) for name, pid in solo.items()}
        tree_before = {p.pid: cpu_seconds(p) for p in agent_tree}
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        cpu = {name: cpu_seconds(p) - cpu_before[name] for name, p in processes.items()}
        woke = {name: wakeups(pid) - wake_before[name] for name, pid in solo.items()}
        cpu["agent_tree"] = sum(cpu_seconds(p) - tree_before[p.pid] for p in agent_tree)
    finally:
        sleeper.terminate()
        sleeper.wait(10)
    return {
        "seconds": round(elapsed, 1),
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "percent": {k: round(100 * v / elapsed, 3) for k, v in cpu.items()},
        "wakeups_per_minute": {k: round(60 * v / elapsed, 1) for k, v in woke.items()},
        "agent_processes": len(agent_tree),
    }


async def bench(
    cameras: int, rounds: int, idle_seconds: float, waiting: int, store_days: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="owner-page-bench-") as tmp:
        work = Path(tmp)
        broker = MosquittoBroker()
        broker.start()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            with Camsim(work / "camsim", cameras=cameras) as camsim:
                rtcc = RtccTestKey.generate(ISSUER)
                config = write_config(work, broker, rtcc, camsim.cameras)
                await asyncio.to_thread(set_owner_password, config)
                daemon = agent(config, "run", log=work / "agent.log")
                processes.append(daemon)
                socket = work / "state" / "control.sock"
                await wait_recording(socket, cameras, daemon, work / "agent.log")
                await asyncio.sleep(15)  # footage for the requests' windows
                pending = await ask_owner(broker, rtcc, socket, waiting, cameras)
                page = agent(config, "owner", "serve", log=work / "page.log")
                processes.append(page)
                listen = re.search(r'listen = "([^"]+)"', config.read_text())
                assert listen is not None
                url = f"http://{listen.group(1)}"
                served = await serve_times(url, rounds, cameras)
                quiet = await asyncio.to_thread(idle, page.pid, daemon.pid, idle_seconds)
                for process, log in ((daemon, "agent.log"), (page, "page.log")):
                    if process.poll() is not None:
                        tail = (work / log).read_text(errors="replace")[-2000:]
                        raise SystemExit(f"exited early ({process.returncode}): {tail}")
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(60)
            broker.close()
    return {
        "machine": machine(),
        "cpu_model": cpu_model(),
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
        "cameras": cameras,
        "pending_requests": pending,
        "rounds": rounds,
        "pages": served,
        "idle": quiet,
        "full_store": await asyncio.to_thread(full_store_status, store_days, cameras)
        if store_days > 0
        else None,
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def report(result: dict[str, Any]) -> None:
    pages = result["pages"]
    print(f"machine: {result['machine']}, {result['cpu_model']}; load {result['load_average']}")
    print(
        f"{result['cameras']} cameras recording, site enrolled and connected, "
        f"{result['pending_requests']} clip requests waiting for the owner; "
        f"{result['rounds']} rounds of GET {', '.join(PAGES)} (signed in, one at a time)"
    )
    print(f"{'page':<18}{'server ms: median':>18}{'p95':>9}{'max':>9}{'client median':>15}")
    for path in PAGES:
        s, c = pages[path]["server_ms"], pages[path]["client_ms"]
        print(f"{path:<18}{s['median']:>18.2f}{s['p95']:>9.2f}{s['max']:>9.2f}{c['median']:>15.2f}")
    over, floor = pages["/"]["server_ms"], pages[STYLESHEET]["server_ms"]
    print(
        f"overview / target {TARGET_MS:g} ms: median ×{over['median'] / TARGET_MS:.3f}, "
        f"p95 ×{over['p95'] / TARGET_MS:.3f}, max ×{over['max'] / TARGET_MS:.3f} — target "
        f"{'met' if over['p95'] < TARGET_MS else 'NOT met'} (p95)"
    )
    print(
        f"peer: the stylesheet from the same process, median {floor['median']:.2f} ms; "
        f"overview / stylesheet ×{over['median'] / max(floor['median'], 0.01):.1f} (median)"
    )
    quiet = result["idle"]
    cpu, pct, woke = quiet["cpu_s"], quiet["percent"], quiet["wakeups_per_minute"]
    print(f"idle, nobody connected, {quiet['seconds']} s:")
    for name, label in (
        ("page", "owner's page"),
        ("sleeper", "python3 time.sleep (nothing)"),
        ("daemon", "daemon process"),
        ("agent_tree", f"agent, all {quiet['agent_processes']} processes"),
    ):
        wakes = f"{woke[name]:>8.1f} wake-ups/min" if name in woke else ""
        print(f"  {label:<32}{cpu[name]:>8.2f} CPU s {pct[name]:>8.3f} % of one core {wakes}")
    daemon = cpu["daemon"] or None
    ratio = f"×{cpu['page'] / daemon:.3f}" if daemon else "n/a (daemon 0)"
    print(
        f"page / daemon process {ratio}; page − nothing {cpu['page'] - cpu['sleeper']:+.2f} CPU s"
    )
    full = result["full_store"]
    if full is not None:
        print(
            f"with a full store ({full['days']:g} days of 60 s segments, {full['segments']:,} "
            f"rows): the daemon's footage query for the overview alone {full['median_ms']:.1f} ms "
            f"median ({', '.join(f'{t:.0f}' for t in full['query_ms'])}), "
            f"×{full['median_ms'] / TARGET_MS:.2f} of the overview's {TARGET_MS:g} ms; "
            f"×{full['median_ms'] / max(over['median'], 0.01):.0f} of today's overview"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.owner_page_bench", description=__doc__)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200, help="rounds of GETs per page")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument(
        "--pending", type=int, default=2, help="clip requests waiting for the owner (Requests)"
    )
    parser.add_argument(
        "--store-days",
        type=float,
        default=30.0,
        help="also time the overview's footage query over an index of this many days (0: no)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(
        bench(args.cameras, args.requests, args.idle_seconds, args.pending, args.store_days)
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 0 if result["pages"]["/"]["server_ms"]["p95"] < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
