"""The fallback for cameras that ignore WS-Discovery: sweep the usual ONVIF ports.

Every (host, port) of the scanned hosts gets one unauthenticated GetSystemDateAndTime at the
device service path; whatever answers it as ONVIF (or with an ONVIF authentication fault) is a
camera. Connections are bounded by a semaphore and a connect timeout, so a /22 of mostly empty
addresses costs seconds, not minutes of hanging sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from agent.log import get_logger
from agent.onvif.addresses import device_service_url
from agent.onvif.errors import AuthFailed, OnvifError, OnvifFault
from agent.onvif.soap import ClockReading, system_date_and_time

log = get_logger(__name__)

# Common ONVIF HTTP ports: 80 (most vendors), 8000 (Reolink, many NVRs), 8080, 2020 (TP-Link),
# 8899 (XiongMai-based no-name cameras).
DEFAULT_PORTS: tuple[int, ...] = (80, 8000, 8080, 2020, 8899)
DEFAULT_CONCURRENCY = 128
CONNECT_TIMEOUT = 1.0
ANSWER_TIMEOUT = 3.0

SweepProgress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class SweepHit:
    host: str
    port: int
    device_url: str
    clock: ClockReading | None  # None: the camera wanted credentials even for its clock


async def _try(
    session: aiohttp.ClientSession, host: str, port: int, within: float
) -> SweepHit | None:
    url = device_service_url(host, port)
    try:
        clock = await system_date_and_time(session, url, within=within)
    except (AuthFailed, OnvifFault):
        return SweepHit(host, port, url, None)
    except OnvifError as exc:
        if exc.kind not in ("unreachable", "timeout"):
            log.debug("sweep_not_onvif", host=host, port=port, error=str(exc))
        return None
    return SweepHit(host, port, url, clock)


async def port_sweep(
    hosts: Sequence[str],
    ports: Sequence[int] = DEFAULT_PORTS,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    connect_timeout: float = CONNECT_TIMEOUT,
    answer_within: float = ANSWER_TIMEOUT,
    progress: SweepProgress | None = None,
) -> list[SweepHit]:
    """Every ONVIF device service found on `hosts` × `ports`, in host then port order."""
    targets = [(host, port) for host in hosts for port in dict.fromkeys(ports)]
    if not targets:
        return []
    limit = asyncio.Semaphore(concurrency)
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def attempt(host: str, port: int) -> SweepHit | None:
            nonlocal done
            async with limit:
                try:
                    return await _try(session, host, port, answer_within)
                finally:
                    done += 1
                    if progress is not None:
                        progress(done, len(targets))

        results = await asyncio.gather(*(attempt(host, port) for host, port in targets))
    hits = [hit for hit in results if hit is not None]
    log.debug("sweep_done", targets=len(targets), found=len(hits))
    return hits
