"""Request verification rate and the request service's processing latency (no broker).

    .venv/bin/python -m bench.verify_rate [--count 2000]

1. Verifications per second of valid requests (each with a fresh jti, so the persisted replay
   cache is written, with fsync, every time: once on disk, once on tmpfs to show the cost of
   the disk) and of a mix of bad ones (forged signature, alg none, HS256
   key confusion, unknown kid, expired, wrong audience, malformed claims, not a JWT), against
   the peer: bare PyJWT `jwt.decode` (signature, exp, iss, aud) of the same valid tokens, which
   does no replay cache, no per-command model and no ordering of codes.
2. `RequestService.handle` latency per request on a real state directory (replay cache,
   request book, ledger with fsync, a SQLite hold per clip), p50/p95/p99, for valid clip
   requests to an integrated camera (verify → ledger → policy → hold → `accepted` event).
   The end-to-end latency over MQTT is `bench/request_latency.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import jwt

from agent.link import KeyRing, ReplayCache, Verified, Verifier
from agent.log import configure_logging
from tests.support.link_service import running_service, site_config
from tests.support.rtcc import (
    ISSUER,
    RTCC,
    SITE,
    RtccTestKey,
    alg_none,
    forged,
    hs256_with_public_key,
    make_claims,
    make_request,
)


def rate(label: str, count: int, action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    per_second = count / elapsed
    print(f"  {label:<42} {per_second:>9,.0f} /s   ({elapsed * 1e6 / count:,.0f} µs each)")
    return per_second


def bad_payloads(count: int) -> list[bytes]:
    stranger = RtccTestKey.generate()
    now = int(time.time())
    makers: list[Callable[[], bytes]] = [
        lambda: forged(make_claims()),
        lambda: alg_none(make_claims()),
        lambda: hs256_with_public_key(make_claims()),
        lambda: make_request(key=stranger),
        lambda: make_request(iat=now - 900, exp=now - 120),
        lambda: make_request(aud="site-9"),
        lambda: make_request(camera=["x"]),
        lambda: b"definitely not a jwt",
    ]
    return [makers[i % len(makers)]() for i in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def service_latency(count: int, state: Path) -> list[float]:
    config = site_config(state, requests_per_hour=10 * count)
    payloads = [make_request("clip", camera="front-door") for _ in range(count)]
    latencies = []
    async with running_service(config) as site:
        for payload in payloads:
            start = time.perf_counter()
            await site.service.handle(payload)
            latencies.append(time.perf_counter() - start)
        accepted = sum(1 for event in site.sink.events if event.state.value == "accepted")
        assert accepted == count, f"only {accepted} of {count} accepted"
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    configure_logging("error")
    count = args.count
    print(f"machine: {platform.platform()}, python {platform.python_version()}, count {count}")
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        root = Path(tmp)
        jwks = RTCC.write_jwks(root / "jwks.json")

        def verifier_in(directory: Path) -> Verifier:
            replay = ReplayCache(directory / "replay.db")
            return Verifier(
                KeyRing(jwks), replay, issuer=ISSUER, audience=SITE, leeway=timedelta(seconds=30)
            )

        verifier = verifier_in(root)
        shm = Path(tempfile.mkdtemp(prefix="bench-verify-", dir="/dev/shm"))
        in_memory = verifier_in(shm)
        valid = [make_request("clip") for _ in range(count)]
        valid_again = [make_request("clip") for _ in range(count)]
        bad = bad_payloads(count)
        public = RTCC.private_key.public_key()

        print(f"verification (state on disk: {root}; tmpfs: {shm})")

        def ours() -> None:
            for payload in valid:
                assert isinstance(verifier.verify(payload), Verified)

        def ours_tmpfs() -> None:
            for payload in valid_again:
                assert isinstance(in_memory.verify(payload), Verified)

        def peer() -> None:
            for payload in valid:
                jwt.decode(payload, public, algorithms=["EdDSA"], audience=SITE, issuer=ISSUER)

        def rejections() -> None:
            for payload in bad:
                assert not isinstance(verifier.verify(payload), Verified)

        ours_rate = rate("rtcc-edge Verifier, valid, replay cache on disk", count, ours)
        tmpfs_rate = rate("rtcc-edge Verifier, valid, replay cache on tmpfs", count, ours_tmpfs)
        peer_rate = rate("peer: PyJWT jwt.decode, same tokens", count, peer)
        rate("rtcc-edge Verifier, mix of 8 bad kinds", count, rejections)
        print(f"  ratio rtcc-edge / PyJWT (valid, disk):  {ours_rate / peer_rate:.2f}")
        print(f"  ratio rtcc-edge / PyJWT (valid, tmpfs): {tmpfs_rate / peer_rate:.2f}")
        verifier.replay.close()
        in_memory.replay.close()
        shutil.rmtree(shm, ignore_errors=True)

        print("service processing latency (handle → accepted event, no broker)")
        latencies = asyncio.run(service_latency(min(count, 1000), root / "state"))
        ms = [value * 1000 for value in latencies]
        print(
            f"  {len(ms)} clip requests: p50 {percentile(ms, 0.50):.2f} ms, "
            f"p95 {percentile(ms, 0.95):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
            f"mean {statistics.fmean(ms):.2f} ms, max {max(ms):.2f} ms"
        )


if __name__ == "__main__":
    main()
