"""`rtcc-edge doctor` as a whole: every site check (`agent.doctor.checks`), then every
configured camera gets the full compatibility `check`, and the store is weighed against what
all cameras together record. The outcome is one `DoctorReport`, with the versions of the agent
and its libraries."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from agent import __version__
from agent.compat import verdicts
from agent.compat.check import (
    CheckOptions,
    Target,
    check_cameras,
    remember_report,
    storage_facts,
)
from agent.compat.probe import ProbeOptions
from agent.compat.profiles import ProfileError, load_profiles
from agent.compat.report import DoctorReport, worst
from agent.config import AgentConfig
from agent.doctor.checks import (
    broker_check,
    config_check,
    store_check,
    store_integrity_check,
    time_sync_check,
)
from agent.log import get_logger

log = get_logger(__name__)


def versions() -> dict[str, str]:
    found = {
        "rtcc-edge": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for package in ("av", "onvif-zeep-async", "zeep", "aiomqtt", "aiohttp", "pydantic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    with contextlib.suppress(ImportError, AttributeError):
        import av

        found["ffmpeg (libavformat)"] = ".".join(
            map(str, av.library_versions.get("libavformat", ()))
        )
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                found["os"] = line.partition("=")[2].strip('"')
    return found


@dataclass(frozen=True)
class DoctorOutcome:
    report: DoctorReport
    config: AgentConfig | None


async def run_doctor(
    config_path: Path,
    *,
    onvif_timeout: float = 5.0,
    probe: ProbeOptions | None = None,
    concurrency: int = 8,
) -> DoctorOutcome:
    started = time.monotonic()
    checked_at = datetime.now(UTC)
    config, config_result = config_check(config_path)
    checks = [config_result, await asyncio.to_thread(time_sync_check)]
    cameras = []
    if config is not None:
        checks.append(await asyncio.to_thread(store_check, config))
        integrity = await asyncio.to_thread(store_integrity_check, config)
        if integrity is not None:
            checks.append(integrity)
        checks.append(await broker_check(config))
        enabled = [c for c in config.cameras if c.enabled]
        storage = await asyncio.to_thread(storage_facts, config, cameras_sharing=len(enabled))
        try:
            profiles = load_profiles()
        except ProfileError as exc:
            log.warning("firmware_profiles_unavailable", error=str(exc))
            profiles = None
        results = await check_cameras(
            [Target.from_config(c, state_dir=config.state_dir) for c in enabled],
            options=CheckOptions(
                compat=config.compat,
                storage=storage,
                probe=probe or ProbeOptions(),
                onvif_timeout=onvif_timeout,
            ),
            profiles=profiles,
            concurrency=concurrency,
        )
        cameras = [r.report for r in results]
        for camera_report in cameras:
            remember_report(config.state_dir, camera_report)
        bitrates = [
            float(r.stream.bitrate_bps) for r in cameras if r.stream and r.stream.bitrate_bps
        ]
        checks.append(verdicts.site_retention_check(bitrates, storage, config.compat))
    statuses = [c.status for c in checks] + [r.status for r in cameras]
    report = DoctorReport(
        checked_at=checked_at,
        duration_s=round(time.monotonic() - started, 3),
        status=worst(statuses),
        config_path=str(config_path),
        site_id=config.site.id if config is not None else None,
        checks=checks,
        cameras=cameras,
        versions=await asyncio.to_thread(versions),
    )
    return DoctorOutcome(report, config)
