"""Measured facts about a camera → pass / warn / fail, each with its reason and remedy.

Pure functions: nothing here talks to a camera. The thresholds are the program's footage bar
from `config.compat` (Washington DC's CameraConnect rebate: 1 MP, 5 fps, 48 hours kept; its
police ask for 10 days), plus fixed ones from the issue: camera clock off by more than 2 s is a
warning and by more than 30 s a failure; H.265 is a warning because most browsers cannot play
it live. A check that cannot be decided says so ("cannot tell") and is never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.compat.report import (
    Check,
    CheckId,
    Clock,
    ErrorInfo,
    FirmwareCoverage,
    FirmwareFinding,
    Identity,
    Onvif,
    Profile,
    QuirkFound,
    Status,
    Storage,
    Stream,
    Vendor,
)
from agent.config import CompatConfig
from agent.store import sizing

CLOCK_WARN_S = 2.0
CLOCK_FAIL_S = 30.0
# Below this a sub stream is too small to recognise anyone in live view (CIF is 352x240/288).
SUB_MIN_PIXELS = 640 * 360
# Measured rates wobble a little around the configured one (15 fps measures 14.9).
RATE_TOLERANCE = 0.98

TITLES: dict[CheckId, str] = {
    "onvif": "ONVIF reachable and authenticated",
    "streaming": "Profile S streaming works",
    "codec": "Video codec",
    "resolution": "Resolution",
    "frame_rate": "Frame rate",
    "keyframe_interval": "Keyframe interval",
    "bitrate": "Bitrate against the upload budget",
    "clock": "Camera clock",
    "firmware": "Firmware vulnerabilities",
    "retention": "Footage the store can hold",
    "sub_stream": "Sub stream",
    "snapshot": "Snapshot",
    "config": "Configuration",
    "time_sync": "This host's clock",
    "store": "Clip store disk",
    "store_integrity": "Footage the index lost",
    "broker": "RTCC broker",
    "site_retention": "Footage the store can hold (all cameras)",
}


def check(check_id: CheckId, status: Status, reason: str, remedy: str | None = None) -> Check:
    return Check(id=check_id, title=TITLES[check_id], status=status, reason=reason, remedy=remedy)


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def _mbps(bps: float) -> str:
    return f"{bps / 1e6:.1f} Mbit/s"


def _gb(size: float) -> str:
    return f"{size / 1e9:.0f} GB" if size >= 10e9 else f"{size / 1e9:.1f} GB"


# -- ONVIF and streaming ------------------------------------------------------------------------

_ONVIF_REMEDIES = {
    "unreachable": "Check the camera's address and port. ONVIF may be switched off or on another "
    "port: `rtcc-edge discover --scan <the camera's subnet>` finds it.",
    "timeout": "The camera accepts connections but does not answer: power-cycle it, and check "
    "that nothing else (a firewall, a proxy) sits on that port.",
    "not_onvif": "Something answers on this port, but not as an ONVIF service (it may be the "
    "camera's web page, or another service altogether). Enable ONVIF in the camera's settings, "
    "or find its ONVIF port with `rtcc-edge discover --scan <subnet>`.",
    "malformed": "The camera's ONVIF answers are broken. Update its firmware, or set `rtsp_url` "
    "for this camera so it is recorded without ONVIF.",
    "auth": "Check the username and password. Many cameras keep a separate ONVIF user list "
    "(Hikvision, Dahua, Reolink): create the ONVIF user in the camera's web page.",
    "fault": "Update the camera's firmware, or set `rtsp_url` for this camera.",
}


def onvif_check(onvif: Onvif | None, quirks: Sequence[QuirkFound]) -> Check:
    if onvif is None:
        return check("onvif", "skip", "No ONVIF address is configured; only the RTSP stream.")
    if onvif.error is not None:
        return check(
            "onvif",
            "fail",
            f"{onvif.device_url}: {onvif.error.message}",
            _ONVIF_REMEDIES.get(onvif.error.kind),
        )
    method = {
        "password_digest": "WS-Security PasswordDigest",
        "password_text": "WS-Security PasswordText",
        "http_digest": "HTTP Digest",
    }.get(onvif.auth or "", "unknown")
    fixed = [q.detail for q in quirks if q.workaround and q.id.startswith("xaddr")]
    extra = f" Worked around: the camera {'; '.join(fixed)}." if fixed else ""
    if onvif.auth == "password_text":
        return check(
            "onvif",
            "warn",
            "ONVIF works, but the camera accepts only PasswordText: its password crosses the "
            f"network in clear with every request.{extra}",
            "Update the camera's firmware (PasswordDigest support), and keep cameras on their own "
            "network segment.",
        )
    return check("onvif", "pass", f"ONVIF answers and accepts the credentials ({method}).{extra}")


_STREAM_REMEDIES = {
    "auth": "The camera refused the RTSP login: check the password, and whether RTSP has its "
    "own user or authentication setting on this camera.",
    "not_found": "The RTSP path is wrong for this camera: find the right one in its manual and "
    "set `rtsp_url`.",
    "refused": "RTSP is switched off or on another port: enable RTSP in the camera's network "
    "settings.",
    "timeout": "The stream opened but no video came: restart the camera, check its encoder "
    "settings and the network between it and this host.",
    "dropped": "Try again. If it keeps breaking off: the camera may allow only a few RTSP "
    "viewers at once (close other viewers, or the recorder already pulling it), it may be "
    "restarting, or its network link is flaky (check its cable, PoE switch port or Wi-Fi).",
    "no_video": "Enable video on this stream in the camera's settings.",
    "error": "Check the camera's RTSP settings, or set `rtsp_url` to a URL that works in VLC.",
}


def streaming_check(stream: Stream | None, uri_error: ErrorInfo | None) -> Check:
    if stream is None or stream.url is None:
        reason = "No stream URL: " + (
            uri_error.message if uri_error else "ONVIF did not give one and none is configured."
        )
        return check(
            "streaming",
            "fail",
            reason,
            "Find the camera's RTSP URL (its manual, or VLC) and set `rtsp_url` for it.",
        )
    if stream.error is not None:
        return check(
            "streaming",
            "fail",
            f"{stream.url}: {stream.error.message}",
            _STREAM_REMEDIES.get(stream.error.kind),
        )
    opened = (
        f"opened in {stream.time_to_first_frame_s:.1f} s" if stream.time_to_first_frame_s else ""
    )
    if stream.url_source == "firmware_profile":
        cause = f" ({uri_error.message})" if uri_error else ""
        return check(
            "streaming",
            "warn",
            f"GetStreamUri failed{cause}; the vendor's known path {stream.url} works ({opened}).",
            f'Set rtsp_url = "{stream.url}" for this camera so recording does not depend on '
            "a guessed path, and update its firmware.",
        )
    origin = {
        "onvif": "ONVIF GetStreamUri",
        "configured": "the configured rtsp_url",
        "given": "the URL given",
    }.get(stream.url_source or "", "the stream URL")
    return check("streaming", "pass", f"The stream from {origin} works ({opened}).")


def _unavailable(check_id: CheckId, stream: Stream | None) -> Check | None:
    if stream is None or stream.error is not None or stream.codec is None:
        return check(check_id, "skip", "The stream could not be read.")
    return None


def codec_check(stream: Stream | None, *, claimed: str | None = None) -> Check:
    if (skipped := _unavailable("codec", stream)) is not None:
        return skipped
    assert stream is not None and stream.codec is not None
    if stream.codec == "h264":
        return check("codec", "pass", "H.264: recorded and played live in any browser.")
    if stream.codec == "hevc":
        claim = f" (the camera's ONVIF profile claims {claimed})" if claimed else ""
        return check(
            "codec",
            "warn",
            f"H.265{claim}: recorded fine, but most browsers cannot play it live.",
            "Set the camera's main stream to H.264 if the RTCC will watch it live.",
        )
    return check(
        "codec",
        "fail",
        f"{stream.codec}: the agent records H.264 and H.265 only.",
        "Set the camera's stream to H.264 in its video settings.",
    )


def resolution_check(stream: Stream | None, compat: CompatConfig) -> Check:
    if (skipped := _unavailable("resolution", stream)) is not None:
        return skipped
    assert stream is not None
    width, height = stream.width or 0, stream.height or 0
    mp = width * height / 1e6
    what = f"{width}x{height} ({mp:.1f} MP)"
    remedy = "Raise the stream's resolution in the camera's video settings."
    if mp < compat.min_megapixels:
        return check(
            "resolution",
            "fail",
            f"{what} is below the program's minimum of {compat.min_megapixels:g} MP.",
            remedy,
        )
    if mp < compat.recommended_megapixels:
        return check(
            "resolution",
            "warn",
            f"{what} meets the minimum of {compat.min_megapixels:g} MP but not the recommended "
            f"{compat.recommended_megapixels:g} MP.",
            remedy + " If the camera cannot, it still qualifies.",
        )
    return check("resolution", "pass", f"{what} meets the recommended resolution.")


def frame_rate_check(stream: Stream | None, compat: CompatConfig) -> Check:
    if (skipped := _unavailable("frame_rate", stream)) is not None:
        return skipped
    assert stream is not None
    if stream.fps is None:
        return check("frame_rate", "warn", "Cannot tell: the stream carried no usable timestamps.")
    what = f"{stream.fps:.1f} fps"
    remedy = "Raise the frame rate in the camera's video settings."
    if stream.fps < compat.min_fps * RATE_TOLERANCE:
        return check(
            "frame_rate",
            "fail",
            f"{what} is below the program's minimum of {compat.min_fps:g} fps.",
            remedy,
        )
    if stream.fps < compat.recommended_fps * RATE_TOLERANCE:
        return check(
            "frame_rate",
            "warn",
            f"{what} meets the minimum of {compat.min_fps:g} fps but not the recommended "
            f"{compat.recommended_fps:g} fps.",
            remedy,
        )
    return check("frame_rate", "pass", f"{what} meets the recommended frame rate.")


def keyframe_check(stream: Stream | None, compat: CompatConfig) -> Check:
    if (skipped := _unavailable("keyframe_interval", stream)) is not None:
        return skipped
    assert stream is not None
    limit = compat.max_keyframe_interval
    remedy = (
        f"Set the camera's I-frame interval (GOP) to at most {limit:g} s, i.e. the frame rate "
        f"× {limit:g} frames or less; switch off 'smart codec' / H.264+ long-GOP modes."
    )
    why = "a clip starts at the keyframe before the requested time, and live view waits for one"
    interval = stream.keyframe_interval_s
    if interval is None:
        seen = stream.keyframe_interval_at_least_s or 0.0
        return check(
            "keyframe_interval",
            "warn",
            f"Only one keyframe in {seen:.1f} s: the interval is longer than that ({why}).",
            remedy,
        )
    if interval > limit:
        return check(
            "keyframe_interval",
            "warn",
            f"A keyframe every {interval:.1f} s, more than {limit:g} s: {why}.",
            remedy,
        )
    return check("keyframe_interval", "pass", f"A keyframe every {interval:.1f} s.")


def bitrate_check(stream: Stream | None, compat: CompatConfig) -> Check:
    if (skipped := _unavailable("bitrate", stream)) is not None:
        return skipped
    assert stream is not None
    if not stream.bitrate_bps:
        return check("bitrate", "warn", "Cannot tell: the bitrate could not be measured.")
    budget = compat.upload_budget_mbps * 1e6
    what = f"{_mbps(stream.bitrate_bps)} against the site's upload budget of {_mbps(budget)}"
    remedy = (
        "Lower the camera's bitrate limit (or use H.265, or a variable bitrate), or raise "
        "compat.upload_budget_mbps if the site's uplink is faster."
    )
    if stream.bitrate_bps > budget:
        return check(
            "bitrate",
            "fail",
            f"{what}: live video cannot keep up, and a clip takes longer to upload than it lasts.",
            remedy,
        )
    if stream.bitrate_bps > budget / 2:
        return check(
            "bitrate",
            "warn",
            f"{what}: live view or an upload takes more than half the uplink.",
            remedy,
        )
    return check("bitrate", "pass", f"{what}.")


def clock_check(clock: Clock | None, *, onvif_failed: bool) -> Check:
    if clock is None:
        reason = "ONVIF did not answer." if onvif_failed else "No ONVIF address to ask."
        return check("clock", "skip", f"Cannot read the camera's clock: {reason}")
    if clock.offset_s is None:
        return _unknown_clock(clock, onvif_failed=onvif_failed)
    offset = clock.offset_s
    direction = "ahead of" if offset > 0 else "behind"
    what = f"The camera's clock is {_duration(offset)} {direction} this host's"
    notes = ["compensated for ONVIF authentication"] if clock.compensated else []
    if clock.needs_auth:
        notes.append("read with credentials: the camera tells its time to no one else")
    if notes:
        what += f" ({'; '.join(notes)})"
    remedy = "Enable NTP in the camera's time settings (this host, or pool.ntp.org)."
    if abs(offset) > CLOCK_FAIL_S:
        return check(
            "clock",
            "fail",
            f"{what}: the time burned into its picture contradicts the footage's timestamps "
            "by more than 30 s.",
            remedy,
        )
    if abs(offset) > CLOCK_WARN_S:
        return check("clock", "warn", f"{what}: more than {CLOCK_WARN_S:g} s.", remedy)
    return check("clock", "pass", f"{what}.")


def _unknown_clock(clock: Clock, *, onvif_failed: bool) -> Check:
    """Why the camera's time is unknown, with the advice that fits what actually failed."""
    footage = " Footage timestamps come from this host, but the camera's own overlay may differ."
    if clock.needs_auth:
        if onvif_failed:
            return check(
                "clock",
                "warn",
                "Cannot tell: the camera tells its time only to a logged-in client, and the "
                "ONVIF login did not work." + footage,
                "Fix the ONVIF login first (see the ONVIF check); the clock is read as soon as "
                "it works. Until then, compare the time in the camera's web page with a phone.",
            )
        return check(
            "clock",
            "warn",
            f"Cannot tell: {clock.error or 'the camera would not tell its time'}." + footage,
            "Check the time in the camera's web page, and enable NTP in its time settings.",
        )
    if clock.camera_utc is None and clock.error is None:
        return check(
            "clock",
            "warn",
            "Cannot tell: the camera answered without its UTC time." + footage,
            "Set the camera's time zone and enable NTP in its time settings, so it reports UTC.",
        )
    return check(
        "clock",
        "warn",
        f"Cannot tell: {clock.error or 'the camera did not report its time'}." + footage,
        "Check the time in the camera's web page; updating its firmware may fix its ONVIF "
        "time service.",
    )


# -- firmware -----------------------------------------------------------------------------------


def firmware_check(
    identity: Identity | None,
    vendor: Vendor | None,
    findings: Sequence[FirmwareFinding],
    *,
    firmware_parses: bool,
    coverage: FirmwareCoverage | None = None,
    onvif: bool = True,
) -> Check:
    """PASS only when a firmware profile's advisories cover this model and firmware line and
    none applies; every other "nothing found" is a "cannot tell" that says what was known."""
    if identity is None:
        why = (
            "ONVIF did not report the model and firmware"
            if onvif
            else "the camera is checked by RTSP alone, so its model and firmware are unknown"
        )
        return check(
            "firmware",
            "warn",
            f"Cannot tell: {why}.",
            "Read the firmware version in the camera's web page and compare it with the "
            "vendor's security advisories.",
        )
    firmware = identity.firmware
    maker = identity.manufacturer or "unknown maker"
    if vendor is None:
        return check(
            "firmware",
            "warn",
            f"Cannot tell: no firmware profile recognises {maker} {identity.model or ''}".rstrip()
            + " — its firmware cannot be checked against published vulnerabilities.",
            "Check the vendor's security advisories for this model by hand.",
        )
    affected = [f for f in findings if f.kind == "vulnerability" and f.status == "affected"]
    if affected:
        first = affected[0]
        exploited = ", exploited in the wild" if first.known_exploited else ""
        severity = f" ({first.severity}{exploited})" if first.severity else ""
        others = f" and {len(affected) - 1} more" if len(affected) > 1 else ""
        return check(
            "firmware",
            "fail",
            f"Firmware {firmware} has {first.id}{severity}{others}: {first.summary}",
            " ".join(dict.fromkeys(f.remedy for f in affected)),
        )
    if not firmware or not firmware_parses:
        return check(
            "firmware",
            "warn",
            f"Cannot tell: firmware {firmware!r} is not in the version format "
            f"{vendor.name} publishes advisories in.",
            f"Compare the firmware with {vendor.name}'s security advisories by hand.",
        )
    unknown = [f for f in findings if f.kind == "vulnerability" and f.status == "unknown"]
    if unknown:
        ids = ", ".join(f.id for f in unknown)
        return check(
            "firmware",
            "warn",
            f"Cannot tell whether firmware {firmware} is affected by {ids}: {unknown[0].reason}",
            " ".join(dict.fromkeys(f.remedy for f in unknown)),
        )
    defects = [f for f in findings if f.kind == "onvif_defect" and f.status == "affected"]
    if defects:
        return check(
            "firmware",
            "warn",
            f"No published vulnerability affects firmware {firmware}, but it has a known ONVIF "
            f"defect: {defects[0].summary}",
            defects[0].remedy,
        )
    if coverage is None or not coverage.covered:
        known = coverage.reason if coverage is not None else "no advisory data was consulted"
        return check(
            "firmware",
            "warn",
            f"Cannot tell: no listed vulnerability affects firmware {firmware}, but {known}.",
            f"Check {vendor.name}'s security advisories for the {identity.model or 'camera'} "
            "by hand.",
        )
    return check(
        "firmware",
        "pass",
        f"No vulnerability published for {vendor.name} affects firmware {firmware}: "
        f"{coverage.reason}.",
    )


# -- storage ------------------------------------------------------------------------------------


def retention_hours(bitrate_bps: float, capacity_bytes: float, max_age_s: float) -> float:
    """Hours of footage `capacity_bytes` holds at `bitrate_bps`, at most `max_age_s`."""
    if bitrate_bps <= 0:
        return max_age_s / 3600
    return min(capacity_bytes / (bitrate_bps / 8) / 3600, max_age_s / 3600)


def _retention(
    check_id: CheckId,
    hours: float,
    what: str,
    storage: Storage,
    compat: CompatConfig,
    *,
    bitrate_bps: float,
    share: int = 1,
) -> Check:
    """`bitrate_bps` is what fills `1 / share` of the store (one camera of `share`, or the
    whole site with `share` 1)."""
    minimum = compat.min_retention.total_seconds() / 3600
    recommended = compat.recommended_retention.total_seconds() / 3600
    held = f"{what} holds about {_duration(hours * 3600)} of footage"
    if storage.max_age_s / 3600 < minimum:
        return check(
            check_id,
            "fail",
            f"store.max_age ({_duration(storage.max_age_s)}) deletes footage before the "
            f"program's minimum of {_duration(minimum * 3600)}.",
            f"Raise store.max_age to at least {_duration(recommended * 3600)}.",
        )
    if hours < minimum:
        return check(
            check_id,
            "fail",
            f"{held}, less than the program's minimum of {_duration(minimum * 3600)}.",
            storage_remedy(storage, minimum, bitrate_bps * share),
        )
    if hours < recommended:
        return check(
            check_id,
            "warn",
            f"{held}: the minimum of {_duration(minimum * 3600)} is met, the recommended "
            f"{_duration(recommended * 3600)} is not.",
            storage_remedy(storage, recommended, bitrate_bps * share),
        )
    return check(check_id, "pass", f"{held}.")


#: Headroom on a suggested budget: a camera's bitrate varies with what it sees.
BUDGET_HEADROOM = 1.1


def storage_remedy(storage: Storage, hours: float, bitrate_bps: float) -> str:
    """Which setting to change, and to what, for the store to hold `hours` at `bitrate_bps`
    (all cameras together)."""
    needed = sizing.round_up(int(hours * 3600 * bitrate_bps / 8 * BUDGET_HEADROOM))
    wanted = _duration(hours * 3600)
    setting = f'store.max_bytes = "{sizing.bytes_text(needed)}"'
    if storage.free_bytes is None:
        return f"Set {setting} ({wanted} at {_mbps(bitrate_bps)}, with 10 % to spare)."
    disk_room = storage.used_bytes + storage.free_bytes - storage.reserve_bytes
    if storage.budget_bytes < needed <= disk_room:
        return (
            f"Set {setting} in the configuration (now "
            f"{sizing.bytes_text(storage.budget_bytes)}): {wanted} at {_mbps(bitrate_bps)}, with "
            f"10 % to spare; the disk has room for it ({_gb(disk_room)} after the reserve "
            "store.min_free)."
        )
    missing = needed - max(0, disk_room)
    lower = max(0.0, disk_room) * 8 / (hours * 3600 * BUDGET_HEADROOM)
    return (
        f"The disk can give the store only {_gb(max(0, disk_room))} after the reserve "
        f"store.min_free, and {wanted} at {_mbps(bitrate_bps)} needs {_gb(needed)}: put the "
        f"store (store.path) on a disk with {_gb(missing)} more free, then set {setting}; or "
        f"lower the cameras' bitrate to {_mbps(lower)} in all; or record fewer cameras."
    )


def retention_check(stream: Stream | None, storage: Storage | None, compat: CompatConfig) -> Check:
    """This camera's share of the store, at its measured bitrate."""
    if (skipped := _unavailable("retention", stream)) is not None:
        return skipped
    assert stream is not None
    if storage is None or not stream.bitrate_bps:
        return check("retention", "skip", "Cannot tell: bitrate or store size unknown.")
    share = storage.capacity_bytes / max(1, storage.cameras_sharing)
    hours = retention_hours(stream.bitrate_bps, share, storage.max_age_s)
    what = (
        f"At {_mbps(stream.bitrate_bps)}, this camera's share of the store ({_gb(share)}: "
        f"{_gb(storage.capacity_bytes)} for {storage.cameras_sharing} camera(s))"
    )
    return _retention(
        "retention",
        hours,
        what,
        storage,
        compat,
        bitrate_bps=stream.bitrate_bps,
        share=max(1, storage.cameras_sharing),
    )


def site_retention_check(
    bitrates: Sequence[float], storage: Storage, compat: CompatConfig
) -> Check:
    """All cameras together, at their measured bitrates (doctor)."""
    total = sum(bitrates)
    if not bitrates or total <= 0:
        return check("site_retention", "skip", "Cannot tell: no camera's bitrate was measured.")
    hours = retention_hours(total, storage.capacity_bytes, storage.max_age_s)
    what = (
        f"At {_mbps(total)} for {len(bitrates)} camera(s), the store "
        f"({_gb(storage.capacity_bytes)} usable)"
    )
    return _retention("site_retention", hours, what, storage, compat, bitrate_bps=total)


def storage_capacity(*, budget: int, used: int, free: int | None, reserve: int) -> int:
    """What footage can use: the byte budget, or less if the disk runs out first."""
    if free is None:
        return budget
    return max(0, min(budget, used + free - reserve))


# -- the other streams --------------------------------------------------------------------------


def sub_stream_check(
    sub: Stream | None,
    *,
    profiles_listed: bool = True,
    mjpeg: Profile | None = None,
) -> Check:
    """`profiles_listed`: ONVIF listed the media profiles (else nothing can be said about a
    sub stream); `mjpeg`: the only second profile, when it is MJPEG (not opened)."""
    if mjpeg is not None:
        size = f" {mjpeg.width}x{mjpeg.height}" if mjpeg.width and mjpeg.height else ""
        return check(
            "sub_stream",
            "warn",
            f"The camera's only second stream is {mjpeg.encoding or 'MJPEG'}{size} (profile "
            f"{mjpeg.token!r}): a whole picture per frame, several times the bandwidth of H.264, "
            "and not playable live by the agent. Not needed for recording.",
            "Set the camera's sub stream to H.264 in its video settings, if a low-bandwidth "
            "live view is wanted.",
        )
    if sub is None:
        if not profiles_listed:
            return check(
                "sub_stream",
                "skip",
                "Cannot tell whether the camera has a sub stream: ONVIF did not list its media "
                "profiles.",
            )
        return check("sub_stream", "skip", "The camera lists a single H.264/H.265 stream.")
    if sub.error is not None or not sub.width or not sub.height:
        message = sub.error.message if sub.error else "no picture"
        return check(
            "sub_stream",
            "warn",
            f"The sub stream could not be read: {message}.",
            "Not needed for recording; enable the sub stream if a low-bandwidth view is wanted.",
        )
    what = f"{sub.width}x{sub.height}"
    if sub.width * sub.height < SUB_MIN_PIXELS:
        return check(
            "sub_stream",
            "warn",
            f"The sub stream is only {what}: too small to recognise anyone if it is used for a "
            "low-bandwidth live view. The main stream is what gets recorded.",
            "Raise the sub stream to 640x360 or more in the camera's video settings.",
        )
    return check("sub_stream", "pass", f"The sub stream is {what}.")


def snapshot_check(stream: Stream | None, *, has_snapshot: bool, onvif_snapshot: bool) -> Check:
    if (skipped := _unavailable("snapshot", stream)) is not None:
        return skipped
    if not has_snapshot:
        return check(
            "snapshot",
            "fail",
            "No picture could be decoded from the stream.",
            "Check the camera's video encoder settings.",
        )
    note = (
        ""
        if onvif_snapshot
        else " The camera offers no ONVIF snapshot URL; the agent does not need one."
    )
    return check("snapshot", "pass", "A snapshot was taken from the video stream." + note)
