"""Request → `accepted` latency over the local TLS broker (issue 5).

    .venv/bin/python -m bench.request_latency [--requests 1000]

Starts a real mosquitto (TLS, client certificates, ACL, persistence) on loopback and, in a
separate process, the agent's link as the daemon composes it (MqttSession + RequestService +
ClipStore holds + ledger). From a hub client in this process it sends signed clip requests one
at a time and measures the time from publishing each to receiving its `accepted` event and
verifying that event's signature against the device key.

Peer, measured in the same run: an echo process that answers every request on its event topic
at once (no signing, no verification, no ledger): the floor the broker round trip sets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from agent.config import AgentConfig
from agent.identity import DeviceKey, verify_device_jws
from agent.wire import Topics
from tests.support.broker import MosquittoBroker

ISSUER = "https://rtcc.bench"
UPLOAD_HOST = "uploads.rtcc.bench"
AGENT_SITE = "bench-agent"
ECHO_SITE = "bench-echo"
REPO = Path(__file__).resolve().parents[1]


# --- the two child processes ------------------------------------------------------------------


async def run_agent(config: AgentConfig) -> None:
    from agent.link import registry_from_config
    from agent.link.compose import Link
    from agent.store import ClipStore

    key = DeviceKey.load_or_create(config.state_dir / "device.key")
    store = ClipStore.from_config(config)
    link = Link(config, device_key=key, holds=store, registry=registry_from_config(config))
    service, session = link.service, link.session
    await service.start()
    async with session:
        await session.wait_connected()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await service.close()
    store.close()


async def run_echo(settings: dict[str, Any]) -> None:
    import socket
    import ssl

    context = ssl.create_default_context(cafile=settings["ca"])
    context.load_cert_chain(settings["cert"], settings["key"])
    topics = Topics(ECHO_SITE)
    async with aiomqtt.Client(
        "127.0.0.1",
        settings["port"],
        identifier=ECHO_SITE,
        tls_context=context,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    ) as client:
        await client.subscribe(topics.req, qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            # Answer with the request's last 36 bytes (its id), nothing checked.
            await client.publish(topics.evt, bytes(message.payload)[-36:], qos=1)


# --- the measuring side -----------------------------------------------------------------------


def start_child(role: str, path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.request_latency", "--role", role, "--input", str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"{role} process did not start (said {line!r})")
    return proc


def stop_child(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "n": len(samples),
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "max_ms": max(samples) * 1000,
    }


async def measure(
    broker: MosquittoBroker,
    site: str,
    count: int,
    make: Callable[[], tuple[str, bytes]],
    answered: Callable[[bytes, str], bool],
) -> list[float]:
    """Send `count` requests one at a time; seconds from publish to the matching answer."""
    topics = Topics(site)
    samples: list[float] = []
    async with broker.client() as hub:
        await hub.subscribe(topics.evt, qos=1)
        messages = hub.messages
        for _ in range(count):
            request_id, payload = make()
            started = time.perf_counter()
            await hub.publish(topics.req, payload, qos=1)
            async with asyncio.timeout(30):
                async for message in messages:
                    if answered(bytes(message.payload), request_id):
                        break
            samples.append(time.perf_counter() - started)
    return samples


def clip_request(hub_key: DeviceKey) -> tuple[str, bytes]:
    now = datetime.now(UTC)
    jti = str(uuid.uuid4())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AGENT_SITE,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 600,
        "jti": jti,
        "cmd": "clip",
        "case": "BENCH-1",
        "camera": "front-door",
        "requester": "bench",
        "start": (now - timedelta(minutes=6)).isoformat(),
        "end": (now - timedelta(minutes=1)).isoformat(),
        "upload": {"url": f"https://{UPLOAD_HOST}/put/{jti}.mp4"},
    }
    return jti, hub_key.sign(claims).encode()


async def bench(count: int, warmup: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="rtcc-bench-link-"))
    broker = MosquittoBroker()
    broker.start()
    children: list[subprocess.Popen[str]] = []
    try:
        hub_key = DeviceKey.generate()
        jwks = workdir / "rtcc-jwks.json"
        jwks.write_text(json.dumps({"keys": [hub_key.public_jwk]}))
        state = workdir / "agent"
        cert, key = broker.issue_client_cert(AGENT_SITE)
        agent_config = {
            "state_dir": str(state),
            "site": {"id": AGENT_SITE, "name": "Bench site"},
            "rtcc": {
                "broker_url": broker.url(),
                "ca_file": str(broker.ca_file),
                "cert_file": str(cert),
                "key_file": str(key),
                "issuer": ISSUER,
                "jwks_file": str(jwks),
            },
            "cameras": [
                {
                    "id": "front-door",
                    "name": "Front door",
                    "rtsp_url": "rtsp://127.0.0.1:8554/front",
                    "sharing": "integrated",
                    "location": {"lat": 35.0844, "lon": -106.6504},
                }
            ],
            "policy": {"allowed_upload_hosts": [UPLOAD_HOST], "requests_per_hour": 1_000_000},
        }
        config_path = workdir / "agent.json"
        config_path.write_text(json.dumps(agent_config))
        echo_cert, echo_key = broker.issue_client_cert(ECHO_SITE)
        echo_path = workdir / "echo.json"
        echo_path.write_text(
            json.dumps(
                {
                    "ca": str(broker.ca_file),
                    "cert": str(echo_cert),
                    "key": str(echo_key),
                    "port": broker.cert_port,
                }
            )
        )

        # Peer: the bare broker round trip.
        children.append(echo := start_child("echo", echo_path))

        padding = b"x" * (len(clip_request(hub_key)[1]) - 36)  # as long as a real request

        def echo_request() -> tuple[str, bytes]:
            request_id = str(uuid.uuid4())
            return request_id, padding + request_id.encode()

        def echoed(payload: bytes, request_id: str) -> bool:
            return payload == request_id.encode()

        await measure(broker, ECHO_SITE, warmup, echo_request, echoed)
        floor = await measure(broker, ECHO_SITE, count, echo_request, echoed)
        stop_child(echo)

        children.append(agent := start_child("agent", config_path))
        device = DeviceKey.load(state / "device.key").public_jwk

        def accepted(payload: bytes, request_id: str) -> bool:
            claims = verify_device_jws(payload.decode(), device)
            if claims["req"] != request_id:
                return False
            if claims["state"] != "accepted":
                raise SystemExit(f"request {request_id} was not accepted: {claims}")
            return True

        await measure(broker, AGENT_SITE, warmup, lambda: clip_request(hub_key), accepted)
        link = await measure(broker, AGENT_SITE, count, lambda: clip_request(hub_key), accepted)
        stop_child(agent)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)
    link_ms, floor_ms = percentiles(link), percentiles(floor)
    return {
        "link": link_ms,
        "broker_round_trip": floor_ms,
        "ratio_p50": link_ms["p50_ms"] / floor_ms["p50_ms"],
        "ratio_p95": link_ms["p95_ms"] / floor_ms["p95_ms"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--role", choices=("agent", "echo"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "agent":
        from agent.log import configure_logging

        configure_logging("error")
        asyncio.run(run_agent(AgentConfig(**json.loads(args.input.read_text()))))
        return 0
    if args.role == "echo":
        asyncio.run(run_echo(json.loads(args.input.read_text())))
        return 0
    result = asyncio.run(bench(args.requests, args.warmup))
    link, floor = result["link"], result["broker_round_trip"]
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"requests: {link['n']} sequential clip requests (after {args.warmup} warm-up)")
    for name, row in (("request → accepted (agent)", link), ("broker round trip (echo)", floor)):
        print(
            f"{name:28} p50 {row['p50_ms']:6.2f} ms  p95 {row['p95_ms']:6.2f} ms  "
            f"p99 {row['p99_ms']:6.2f} ms  max {row['max_ms']:6.2f} ms"
        )
    print(f"agent / echo: p50 x{result['ratio_p50']:.2f}, p95 x{result['ratio_p95']:.2f}")
    print(f"target p95 <= 50 ms: {'met' if link['p95_ms'] <= 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
