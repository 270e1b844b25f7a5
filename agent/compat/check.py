"""Check a camera end to end: ONVIF, its streams, its firmware, and the verdicts on all of it.

    target = Target.from_config(camera, state_dir=config.state_dir)
    result = await check_camera(target, options=..., profiles=load_profiles())
    result.report      # a CameraReport (agent.compat.report), result.snapshot (JPEG bytes)

The stream that gets recorded (the configured `stream`: main, sub or a profile token) is opened
and measured; for `main`, the sub stream is opened too (first picture only). When GetStreamUri
fails, the firmware profile's known RTSP paths for the vendor are tried, each verified by
actually opening it. Nothing here raises for a bad camera: every failure ends up in the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from agent.camera_info import CameraFacts, remember_camera_facts
from agent.compat import verdicts
from agent.compat.channels import recorder_info
from agent.compat.probe import ProbeError, ProbeOptions, StreamProbe, probe_stream_async
from agent.compat.profiles import ProfileMatch, ProfileSet
from agent.compat.report import (
    CameraReport,
    Clock,
    ErrorInfo,
    FirmwareCoverage,
    FirmwareFinding,
    Identity,
    KnownQuirk,
    Onvif,
    Profile,
    QuirkFound,
    Storage,
    Stream,
    UrlSource,
    Vendor,
    worst,
)
from agent.compat.versions import parse_version
from agent.config import AgentConfig, CameraConfig, CompatConfig
from agent.log import get_logger
from agent.media.source import SourceError, rtsp_source
from agent.onvif import (
    Channel,
    DeviceInfo,
    MediaProfile,
    OnvifCamera,
    OnvifError,
    OnvifFault,
    channel_of,
    choose_profile,
    rtsp_url,
)
from agent.quirks import QuirkId, describe
from agent.redact import redact_url
from agent.secretbox import SecretError, reveal
from agent.store import ClipStore, StoreError

log = get_logger(__name__)

# At most this many firmware-profile URLs are tried when GetStreamUri fails.
MAX_FALLBACK_URLS = 24
CIF_PIXELS = 352 * 288


@dataclass(frozen=True)
class Target:
    """What to check and how to log in."""

    label: str  # a camera id or the address given (never with credentials)
    camera_id: str | None = None
    onvif_url: str | None = None
    rtsp_url: str | None = None
    rtsp_url_source: Literal["configured", "given"] = "configured"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    stream: str = "main"
    channel: int | None = None  # a recorder's channel (None: a camera, or its first channel)
    credential_error: str | None = None  # the configured password could not be decrypted

    @classmethod
    def from_config(cls, camera: CameraConfig, *, state_dir: Path) -> Target:
        secret = camera.secret.get_secret_value() if camera.secret is not None else None
        error = None
        try:
            password = reveal(secret, state_dir)
        except SecretError as exc:
            password, error = None, f"cannot decrypt the configured password: {exc}"
        return cls(
            label=camera.id,
            camera_id=camera.id,
            onvif_url=camera.onvif_url,
            rtsp_url=camera.rtsp_url,
            username=camera.username,
            password=password,
            stream=camera.stream,
            channel=camera.channel,
            credential_error=error,
        )


@dataclass(frozen=True)
class CheckOptions:
    compat: CompatConfig = field(default_factory=CompatConfig)
    storage: Storage | None = None
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    onvif_timeout: float = 5.0
    rtsp_ports: tuple[int, ...] = ()  # extra ports for firmware-profile paths
    sub_stream: bool = True


@dataclass(frozen=True)
class CheckResult:
    report: CameraReport
    snapshot: bytes | None = field(default=None, repr=False)


def storage_facts(config: AgentConfig, *, cameras_sharing: int) -> Storage:
    """The store's byte budget, its disk's free space and what it already holds."""
    path = config.store_path
    probe_dir = path
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    try:
        free: int | None = shutil.disk_usage(probe_dir).free
    except OSError:
        free = None
    used = 0
    with (
        contextlib.suppress(StoreError, OSError),
        ClipStore(path, config=config.store, create=False) as store,
    ):
        used = sum(status.bytes for status in store.status())
    budget, reserve = int(config.store.max_bytes), int(config.store.min_free)
    return Storage(
        budget_bytes=budget,
        free_bytes=free,
        used_bytes=used,
        reserve_bytes=reserve,
        capacity_bytes=verdicts.storage_capacity(
            budget=budget, used=used, free=free, reserve=reserve
        ),
        cameras_sharing=max(1, cameras_sharing),
        max_age_s=config.store.max_age.total_seconds(),
    )


@dataclass
class _Facts:
    """What one check learns, filled in step by step."""

    onvif: Onvif | None = None
    identity: Identity | None = None
    clock: Clock | None = None
    channels: list[Channel] = field(default_factory=list)
    profiles: list[MediaProfile] = field(default_factory=list)  # of the channel checked
    profiles_listed: bool = False
    recorded: MediaProfile | None = None
    sub: MediaProfile | None = None
    mjpeg_sub: MediaProfile | None = None  # the only second profile, MJPEG: not opened
    host: str | None = None
    urls: dict[str, tuple[str, UrlSource]] = field(default_factory=dict)  # role -> url, source
    uri_errors: dict[str, ErrorInfo] = field(default_factory=dict)
    snapshot_uri: str | None = None
    quirks: dict[str, QuirkFound] = field(default_factory=dict)
    probes: dict[str, StreamProbe] = field(default_factory=dict)
    probe_errors: dict[str, ErrorInfo] = field(default_factory=dict)

    def quirk(self, quirk_id: str, detail: str, workaround: str | None) -> None:
        self.quirks.setdefault(
            quirk_id, QuirkFound(id=quirk_id, detail=detail, workaround=workaround)
        )

    def note(
        self, quirk_id: QuirkId, *, why: str | None = None, worked_around: bool = True
    ) -> None:
        info = describe(quirk_id, why=why, worked_around=worked_around)
        self.quirk(quirk_id, info.detail, info.workaround)


def identity_of(info: DeviceInfo | None) -> Identity | None:
    """GetDeviceInformation's answer as reports show it."""
    if info is None:
        return None
    return Identity(
        manufacturer=info.manufacturer,
        model=info.model,
        firmware=info.firmware,
        serial=info.serial,
        hardware_id=info.hardware_id,
    )


def _error(exc: OnvifError | ProbeError) -> ErrorInfo:
    return ErrorInfo(kind=exc.kind, message=str(exc))


def _profile_model(profile: MediaProfile, facts: _Facts) -> Profile:
    role: Literal["main", "sub"] | None = None
    if profile is facts.recorded:
        role = "main"
    elif profile is facts.sub or profile is facts.mjpeg_sub:
        role = "sub"
    return Profile(
        token=profile.token,
        name=profile.name,
        role=role,
        encoding=profile.encoding,
        width=profile.width,
        height=profile.height,
        fps_limit=profile.fps_limit,
        bitrate_kbps=profile.bitrate_kbps,
        gov_length=profile.gov_length,
    )


async def _interrogate(camera: OnvifCamera, target: Target, facts: _Facts) -> None:
    """Everything ONVIF can tell; raises OnvifError where it stops (what it learned before
    stays in `facts` and on `camera`)."""
    await camera.connect()
    facts.channels = await camera.channels()
    if target.channel is not None or len(facts.channels) > 1:
        facts.profiles = list(channel_of(facts.channels, target.channel).profiles)
    else:
        facts.profiles = [p for c in facts.channels for p in c.profiles]
    facts.profiles_listed = True
    facts.recorded = choose_profile(facts.profiles, target.stream).profile
    if facts.recorded is None:
        raise OnvifFault("GetProfiles", f"the camera has no media profile {target.stream!r}")
    if target.stream == "main":
        sub = choose_profile(facts.profiles, "sub")
        if sub.fallback_encoding is not None:
            facts.mjpeg_sub = sub.profile
            facts.note(QuirkId.MJPEG_SUB, why=f"profile {sub.profile.token if sub.profile else ''}")
        else:
            facts.sub = sub.profile
    roles = [("main", facts.recorded)]
    if facts.sub is not None:
        roles.append(("sub", facts.sub))
    for role, profile in roles:
        if role == "main" and target.rtsp_url is not None:
            continue
        try:
            facts.urls[role] = (await camera.stream_uri(profile.token), "onvif")
        except OnvifError as exc:
            facts.uri_errors[role] = _error(exc)
    with contextlib.suppress(OnvifError):
        facts.snapshot_uri = await camera.snapshot_uri(facts.recorded.token)


def _clock(camera: OnvifCamera) -> Clock | None:
    if camera.clock is None and camera.clock_error is None:
        return None
    reading = camera.clock
    return Clock(
        camera_utc=reading.camera_utc if reading else None,
        offset_s=round(reading.offset, 3) if reading and reading.offset is not None else None,
        round_trip_s=round(reading.round_trip, 4) if reading else None,
        ntp=reading.ntp if reading else None,
        compensated=camera.compensated,
        needs_auth=camera.clock_needs_auth,
        error=camera.clock_error,
    )


async def _onvif(target: Target, options: CheckOptions, facts: _Facts) -> None:
    assert target.onvif_url is not None
    if target.credential_error is not None or target.username is None:
        message = target.credential_error or "no username is configured for ONVIF"
        facts.onvif = Onvif(
            device_url=target.onvif_url, error=ErrorInfo(kind="auth", message=message)
        )
        return
    try:
        camera = OnvifCamera.from_url(
            target.onvif_url,
            username=target.username,
            password=target.password or "",
            timeout=options.onvif_timeout,
        )
    except OnvifError as exc:
        facts.onvif = Onvif(device_url=target.onvif_url, error=_error(exc))
        return
    facts.host = camera.host
    error: ErrorInfo | None = None
    try:
        await _interrogate(camera, target, facts)
    except OnvifError as exc:
        error = _error(exc)
        if not facts.profiles_listed and camera.info is not None:
            # Logged in, but no stream URI: the vendor's known paths get their chance.
            facts.uri_errors["main"] = facts.uri_errors["sub"] = error
    finally:
        await camera.close()
    # Whatever failed later, what the camera said about itself counts (its firmware above all).
    facts.identity = identity_of(camera.info)
    for seen in camera.quirks:
        facts.quirk(seen.id, seen.detail, seen.workaround)
    facts.clock = _clock(camera)
    facts.onvif = Onvif(
        device_url=camera.device_url,
        auth=camera.auth,
        services=camera.services,
        profiles=[_profile_model(p, facts) for p in facts.profiles],
        snapshot_uri=facts.snapshot_uri,
        error=error,
    )


def _vendor(profiles: ProfileSet | None, identity: Identity | None) -> ProfileMatch | None:
    if profiles is None or identity is None:
        return None
    return profiles.match(
        manufacturer=identity.manufacturer, model=identity.model, firmware=identity.firmware
    )


async def _probe(
    role: str,
    url: str,
    target: Target,
    options: ProbeOptions,
    facts: _Facts,
    executor: ThreadPoolExecutor | None,
) -> bool:
    try:
        source = rtsp_source(url, username=target.username, password=target.password)
    except SourceError as exc:
        facts.probe_errors[role] = ErrorInfo(kind="error", message=str(exc))
        return False
    try:
        facts.probes[role] = await probe_stream_async(source, options, executor=executor)
    except ProbeError as exc:
        facts.probe_errors[role] = _error(exc)
        return False
    facts.probe_errors.pop(role, None)
    return True


def _fallback_urls(
    role: Literal["main", "sub"],
    match: ProfileMatch | None,
    profiles: ProfileSet | None,
    facts: _Facts,
    options: CheckOptions,
    channel: int | None,
) -> list[str]:
    """The vendor's known RTSP URLs for this stream: a recorder channel's paths for a channel
    of a recorder, a camera's paths otherwise."""
    if match is None or profiles is None or facts.host is None:
        return []
    defaults = profiles.rtsp_defaults(match)
    scheme = defaults.scheme if defaults is not None else "rtsp"
    recorder = channel is not None or len(facts.channels) > 1 or profiles.is_recorder_model(match)
    # A stream URI the camera did give (for its other stream) shows its real RTSP port; then
    # the ports the technician named; then the vendor's default (its recorders' own, if any).
    ports: list[int] = []
    for url, _source in facts.urls.values():
        with contextlib.suppress(ValueError):
            if (port := urlsplit(url).port) is not None:
                ports.append(port)
    ports += options.rtsp_ports
    if recorder and (recorder_port := profiles.recorder_port(match)) is not None:
        ports.append(recorder_port)
    ports.append(defaults.port if defaults is not None else 554)
    paths: list[str] = []
    if recorder:
        paths = profiles.recorder_paths(match, stream=role, channel=channel or 1)
    if channel in (None, 1):
        paths += profiles.rtsp_candidates(match, stream=role)
    urls = [
        rtsp_url(facts.host, port, path, scheme=scheme)
        for port in dict.fromkeys(ports)
        for path in dict.fromkeys(paths)
    ]
    return urls[:MAX_FALLBACK_URLS]


async def _streams(
    target: Target,
    options: CheckOptions,
    facts: _Facts,
    match: ProfileMatch | None,
    profiles: ProfileSet | None,
    executor: ThreadPoolExecutor | None,
) -> None:
    if target.rtsp_url is not None:
        facts.urls["main"] = (target.rtsp_url, target.rtsp_url_source)
    sub_options = ProbeOptions(
        open_timeout=options.probe.open_timeout,
        read_timeout=options.probe.read_timeout,
        max_seconds=options.probe.max_seconds,
        keyframes=1,
        snapshot=False,
    )

    async def one(role: Literal["main", "sub"], probe_options: ProbeOptions) -> None:
        if role in facts.urls:
            await _probe(role, facts.urls[role][0], target, probe_options, facts, executor)
            return
        if role not in facts.uri_errors:
            return  # no such stream (or ONVIF never got that far)
        candidates = _fallback_urls(role, match, profiles, facts, options, target.channel)
        for url in candidates:
            if await _probe(role, url, target, probe_options, facts, executor):
                facts.urls[role] = (url, "firmware_profile")
                return
        facts.probe_errors.pop(role, None)  # no candidate worked: the URI error says it all
        if role == "sub" and not facts.profiles_listed:
            del facts.uri_errors["sub"]  # whether there is a sub stream at all is unknown

    roles: list[tuple[Literal["main", "sub"], ProbeOptions]] = [("main", options.probe)]
    sub_unknown = not facts.profiles_listed and "sub" in facts.uri_errors
    if options.sub_stream and target.stream == "main" and (facts.sub is not None or sub_unknown):
        roles.append(("sub", sub_options))
    elif "sub" in facts.uri_errors and not facts.profiles_listed:
        del facts.uri_errors["sub"]
    await asyncio.gather(*(one(role, opts) for role, opts in roles))
    if "main" in facts.uri_errors and facts.recorded is not None:
        worked = facts.urls.get("main", ("", None))[1] == "firmware_profile"
        info = describe(QuirkId.STREAM_URI_FAILS, why=facts.uri_errors["main"].message)
        facts.quirk(
            info.id,
            info.detail,
            "used the vendor's known RTSP path instead" if worked else None,
        )


def _stream_model(role: Literal["main", "sub"], facts: _Facts) -> Stream | None:
    url = facts.urls.get(role)
    probe = facts.probes.get(role)
    error = facts.probe_errors.get(role) or (facts.uri_errors.get(role) if url is None else None)
    if url is None and probe is None and error is None:
        return None
    if probe is None:
        return Stream(
            role=role,
            url=_display(url[0]) if url else None,
            url_source=url[1] if url else None,
            error=error,
        )
    return Stream(
        role=role,
        url=probe.url,
        url_source=url[1] if url else None,
        codec=probe.codec,
        profile=probe.profile,
        width=probe.width,
        height=probe.height,
        megapixels=round(probe.megapixels, 2),
        fps=probe.fps,
        keyframe_interval_s=probe.keyframe_interval,
        keyframe_interval_at_least_s=probe.keyframe_interval_at_least,
        bitrate_bps=int(probe.bitrate) if probe.bitrate else None,
        audio_codec=probe.audio_codec,
        audio_sample_rate=probe.audio_sample_rate,
        time_to_first_frame_s=probe.time_to_first_frame,
        seconds_read=probe.seconds_read,
        frames=probe.frames,
    )


def _display(url: str) -> str:
    """`url` without its credentials."""
    try:
        return rtsp_source(url, username=None, password=None).display_url
    except SourceError:
        return redact_url(
            urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[2]).geturl()
        )


def _stream_quirks(facts: _Facts) -> None:
    main, sub = facts.probes.get("main"), facts.probes.get("sub")
    claimed = (facts.recorded.encoding or "") if facts.recorded else ""
    if main is not None and main.codec == "hevc" and claimed.upper() == "H264":
        facts.note(QuirkId.H265_MAIN, worked_around=False)
    if sub is not None and sub.width * sub.height <= CIF_PIXELS:
        facts.note(QuirkId.SUB_352X240, why=f"{sub.width}x{sub.height}", worked_around=False)


def _firmware(
    match: ProfileMatch | None, profiles: ProfileSet | None, identity: Identity | None
) -> tuple[list[FirmwareFinding], list[KnownQuirk], bool, FirmwareCoverage | None]:
    if match is None or profiles is None or identity is None:
        return [], [], False, None
    firmware = identity.firmware
    findings = [
        FirmwareFinding(
            kind="vulnerability",
            id=f.item.cve,
            status=f.status,
            summary=f.item.summary,
            reason=f.reason,
            remedy=f.item.remedy,
            severity=f.item.severity,
            known_exploited=f.item.known_exploited,
            source=f.item.source,
        )
        for f in profiles.vulnerabilities(match, firmware)
    ]
    findings += [
        FirmwareFinding(
            kind="onvif_defect",
            id=f.item.id,
            status=f.status,
            summary=f.item.summary,
            reason=f.reason,
            remedy=f.item.workaround,
            source=f.item.source,
        )
        for f in profiles.onvif_defects(match, firmware)
    ]
    known = [
        KnownQuirk(id=q.id, summary=q.summary, workaround=q.workaround, source=q.source)
        for q in profiles.quirks(match)
    ]
    style = profiles.get(match.vendor_id).firmware_style
    parses = firmware is not None and parse_version(firmware, style) is not None
    covered = profiles.coverage(match, firmware)
    coverage = FirmwareCoverage(
        covered=covered.covered, reason=covered.reason, advisories_reviewed=covered.reviewed
    )
    return findings, known, parses, coverage


async def check_camera(
    target: Target,
    *,
    options: CheckOptions | None = None,
    profiles: ProfileSet | None = None,
    executor: ThreadPoolExecutor | None = None,
) -> CheckResult:
    """Check one camera; every failure is a verdict in the report, never an exception."""
    options = options or CheckOptions()
    started = time.monotonic()
    checked_at = datetime.now(UTC)
    facts = _Facts()
    if target.onvif_url is not None:
        await _onvif(target, options, facts)
    match = _vendor(profiles, facts.identity)
    await _streams(target, options, facts, match, profiles, executor)
    _stream_quirks(facts)
    main, sub = _stream_model("main", facts), _stream_model("sub", facts)
    findings, known, parses, coverage = _firmware(match, profiles, facts.identity)
    vendor = (
        Vendor(
            id=match.vendor_id,
            name=match.vendor_name,
            confidence=match.confidence,
            reasons=list(match.reasons),
        )
        if match is not None
        else None
    )
    quirks = list(facts.quirks.values())
    main_probe = facts.probes.get("main")
    onvif_failed = facts.onvif is not None and facts.onvif.error is not None
    compat = options.compat
    checks = [
        verdicts.onvif_check(facts.onvif, quirks),
        verdicts.streaming_check(main, facts.uri_errors.get("main")),
        verdicts.codec_check(main, claimed=facts.recorded.encoding if facts.recorded else None),
        verdicts.resolution_check(main, compat),
        verdicts.frame_rate_check(main, compat),
        verdicts.keyframe_check(main, compat),
        verdicts.bitrate_check(main, compat),
        verdicts.clock_check(facts.clock, onvif_failed=onvif_failed),
        verdicts.firmware_check(
            facts.identity,
            vendor,
            findings,
            firmware_parses=parses,
            coverage=coverage,
            onvif=target.onvif_url is not None,
        ),
        verdicts.retention_check(main, options.storage, compat),
        verdicts.sub_stream_check(
            sub,
            profiles_listed=facts.profiles_listed,
            mjpeg=_profile_model(facts.mjpeg_sub, facts) if facts.mjpeg_sub else None,
        )
        if target.stream == "main"
        else verdicts.check("sub_stream", "skip", f"Recording the {target.stream!r} stream."),
        verdicts.snapshot_check(
            main,
            has_snapshot=main_probe is not None and main_probe.snapshot is not None,
            onvif_snapshot=facts.snapshot_uri is not None,
        ),
    ]
    report = CameraReport(
        checked_at=checked_at,
        duration_s=round(time.monotonic() - started, 3),
        target=target.label,
        camera_id=target.camera_id,
        channel=target.channel,
        status=worst([c.status for c in checks]),
        identity=facts.identity,
        vendor=vendor,
        onvif=facts.onvif,
        clock=facts.clock,
        stream=main,
        sub_stream=sub,
        quirks=quirks,
        known_quirks=known,
        firmware=findings,
        firmware_coverage=coverage,
        recorder=recorder_info(facts.channels, match=match, profiles=profiles),
        storage=options.storage,
        checks=checks,
    )
    log.info("camera_checked", target=target.label, status=report.status, seconds=report.duration_s)
    return CheckResult(report, main_probe.snapshot if main_probe is not None else None)


async def check_cameras(
    targets: Sequence[Target],
    *,
    options: CheckOptions | None = None,
    profiles: ProfileSet | None = None,
    concurrency: int = 32,
) -> list[CheckResult]:
    """Check many cameras at once (each opens up to two RTSP streams at a time). Checks mostly
    wait for keyframes, so a 16-camera site with an 8-channel recorder runs in one wave."""
    limit = asyncio.Semaphore(concurrency)
    with ThreadPoolExecutor(max_workers=2 * concurrency, thread_name_prefix="probe") as executor:

        async def one(target: Target) -> CheckResult:
            async with limit:
                return await check_camera(
                    target, options=options, profiles=profiles, executor=executor
                )

        return list(await asyncio.gather(*(one(t) for t in targets)))


def remember_report(state_dir: Path, report: CameraReport) -> None:
    """Keep what a check of a configured camera learned (vendor, model, firmware, clock offset,
    verdict) for clip manifests and the registry; a cache that cannot be written is logged,
    never fatal to the check."""
    if report.camera_id is None:
        return
    identity = report.identity
    facts = CameraFacts(
        vendor=(report.vendor.name if report.vendor else None)
        or (identity.manufacturer if identity else None),
        model=identity.model if identity else None,
        firmware=identity.firmware if identity else None,
        clock_offset_s=report.clock.offset_s if report.clock else None,
        verdict="unknown" if report.status == "skip" else report.status,
        # The failed checks' advice first: the owner's page leads with it.
        advice=tuple(
            " ".join(part for part in (check.reason, check.remedy) if part)
            for status in ("fail", "warn")
            for check in report.checks
            if check.status == status
        ),
    )
    try:
        remember_camera_facts(state_dir, report.camera_id, facts)
    except OSError as exc:
        log.warning("camera_info_not_saved", camera=report.camera_id, error=str(exc))
