"""The owner's stop: `live stop` and `pause` → the relay sees the live session end (issue 12).

    python -m bench.owner_stop [--repeat 10] [--json]

Everything is real and in its own process except the relay (the set-up of `bench.live_bench`):
camsim (one generic camera, 1080p15 H.264 4 Mbit/s), a TLS mosquitto, `rtcc-edge run` (the real
daemon: recorder, link, tunnel, owner socket), and the hub's relay on HTTPS in this process,
which also signs and publishes the stream requests.

`--repeat` times each: a stream request is published, and once the relay has had video for a
second the owner's command is written to the control socket (`agent.control.ControlClient`, what
`rtcc-edge live stop` / `rtcc-edge pause` use, without the CLI's interpreter start-up). Measured
from writing the command: its answer on the socket, and the relay seeing the session end (the
site's close frame, with its reason). After each pause, `resume`.

Then the same two commands against a **wedged relay** (a websocket server that accepts the
site's connection and never reads, so the site's sends and its close handshake cannot complete):
there the relay sees nothing, and what matters is that the owner's command is still answered at
once (the socket never waits behind a session's I/O), measured from writing it to its answer.

Printed: each latency and the medians. The issue's bound is 1 s from command to the relay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.config import load_config
from agent.control import ControlClient
from agent.identity import DeviceKey, device_key_path
from agent.log import configure_logging
from agent.wire import Topics
from bench.live_bench import CAMERA, ISSUER, SITE, Requester, start_agent, wait_online, write_config
from bench.record_cpu import Camsim, machine
from hub.relay_sessions import MintedSession
from tests.support.broker import MosquittoBroker
from tests.support.relay import RunningRelay, running_relay


async def _ended_at(relay: RunningRelay, minted: MintedSession) -> tuple[float, str]:
    """Until the relay has seen the session end: (when, the reason it was given)."""
    deadline = time.monotonic() + 60
    while True:
        status = relay.relay.status(minted.record.id)
        if status is not None and status["state"] == "ended":
            ended: Any = status["ended_at"]
            return ended.timestamp(), str(status["reason"])
        if time.monotonic() > deadline:
            raise TimeoutError("the relay never saw the session end")
        await asyncio.sleep(0.002)


async def _one(
    requester: Requester, relay: RunningRelay, owner: ControlClient, cmd: str
) -> tuple[float, float]:
    """One session ended by `cmd`: (seconds to the answer, seconds to the relay's end)."""
    minted, _ = await requester.first_fragment(max_seconds=120)
    await asyncio.sleep(1)
    args: dict[str, Any] = {"seconds": 600} if cmd == "pause" else {}
    if cmd == "live_stop":
        sessions = (await asyncio.to_thread(owner.call, "status"))["live"]
        args["id"] = sessions[0]["id"]
    sent = time.time()
    await asyncio.to_thread(owner.call, cmd, **args)
    answered = time.time() - sent
    at, reason = await _ended_at(relay, minted)
    expected = "paused" if cmd == "pause" else "owner_stopped"
    if reason != expected:
        raise RuntimeError(f"the session ended with {reason}, not {expected}")
    if cmd == "pause":
        await asyncio.to_thread(owner.call, "resume")
    await requester.wait_gone(minted)
    return answered, at - sent


@contextlib.asynccontextmanager
async def wedged_relay() -> AsyncIterator[int]:
    """A websocket server that accepts a publisher and never reads (small receive buffer)."""
    forever = asyncio.Event()

    async def ingest(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        await forever.wait()
        return ws

    app = web.Application()
    app.router.add_get("/ingest/{session}", ingest)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    listening.bind(("127.0.0.1", 0))
    await web.SockSite(runner, listening).start()
    try:
        yield int(listening.getsockname()[1])
    finally:
        forever.set()
        await runner.cleanup()


async def _wedged_one(requester: Requester, port: int, owner: ControlClient, cmd: str) -> float:
    """One session to a relay that reads nothing, ended by `cmd`: seconds to the answer."""
    now = int(time.time())
    claims = {
        "iss": ISSUER, "aud": SITE, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()),
        "cmd": "stream", "case": "BENCH-STOP", "camera": CAMERA, "requester": "bench",
        "relay": {"url": f"ws://127.0.0.1:{port}/ingest/{'W' * 22}", "token": "w" * 32},
        "max_seconds": 120,
    }  # fmt: skip
    async with requester.broker.client() as hub:
        await hub.publish(Topics(SITE).req, requester.key.sign(claims).encode(), qos=1)
    deadline = time.monotonic() + 60
    while not (await asyncio.to_thread(owner.call, "status"))["live"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the session to the wedged relay never started")
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)  # the socket's buffers are full: every send waits
    args: dict[str, Any] = {"seconds": 600} if cmd == "pause" else {"id": claims["jti"]}
    sent = time.time()
    await asyncio.to_thread(owner.call, cmd, **args)
    answered = time.time() - sent
    if cmd == "pause":
        await asyncio.to_thread(owner.call, "resume")
    while (await asyncio.to_thread(owner.call, "status"))["live"]:
        if time.monotonic() > deadline + 60:
            raise TimeoutError("the session to the wedged relay never ended")
        await asyncio.sleep(0.2)
    return answered


async def bench(repeat: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rtcc-bench-owner-stop-"))
    broker = MosquittoBroker()
    broker.start()
    agent = None
    results: dict[str, list[tuple[float, float]]] = {"live_stop": [], "pause": []}
    wedged: dict[str, list[float]] = {"live_stop": [], "pause": []}
    try:
        with Camsim(work / "camsim", cameras=1) as camsim:
            async with running_relay(work / "hub") as relay:
                key = DeviceKey.generate()
                jwks = work / "jwks.json"
                jwks.write_text(json.dumps({"keys": [key.public_jwk]}))
                config = write_config(work, broker, jwks, relay, camsim.cameras[0])
                DeviceKey.load_or_create(device_key_path(work / "state"))
                agent = start_agent(config, work / "agent.log")
                await wait_online(broker)
                owner = ControlClient(load_config(config).control.socket)
                requester = Requester(broker, key, relay)
                for _ in range(repeat):
                    for cmd in results:
                        results[cmd].append(await _one(requester, relay, owner, cmd))
                async with wedged_relay() as port:
                    for _ in range(max(1, repeat // 2)):
                        for cmd in wedged:
                            wedged[cmd].append(await _wedged_one(requester, port, owner, cmd))
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            agent.wait(60)
        broker.close()
    shutil.rmtree(work, ignore_errors=True)  # kept (with the agent's log) when a run fails
    out: dict[str, Any] = {"machine": machine(), "repeat": repeat}
    for cmd, pairs in results.items():
        answers = [a for a, _ in pairs]
        ends = [e for _, e in pairs]
        out[cmd] = {
            "answer_s": [round(x, 4) for x in answers],
            "relay_end_s": [round(x, 4) for x in ends],
            "answer_median_s": round(statistics.median(answers), 4),
            "relay_end_median_s": round(statistics.median(ends), 4),
            "relay_end_max_s": round(max(ends), 4),
            "wedged_answer_s": [round(x, 4) for x in wedged[cmd]],
            "wedged_answer_median_s": round(statistics.median(wedged[cmd]), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="sessions ended by each command")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning", fmt="console")  # to stderr: stdout is the result
    result = asyncio.run(bench(args.repeat))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    for cmd, label in (("live_stop", "live stop"), ("pause", "pause")):
        r = result[cmd]
        print(
            f"{label}: command → relay sees the end, median {r['relay_end_median_s'] * 1000:.0f} ms"
            f" (max {r['relay_end_max_s'] * 1000:.0f} ms); command → answer, median "
            f"{r['answer_median_s'] * 1000:.0f} ms; with a wedged relay, command → answer, "
            f"median {r['wedged_answer_median_s'] * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
