"""`rtcc-edge doctor`: is this whole site ready? And the support bundle a technician sends.

Site checks: the configuration loads; this host's clock is synchronised (NTP, as `agent.clock`
reads it for the whole agent: the kernel's adjtimex state, else timedatectl; "unknown" when
neither answers); the clip
store's disk is writable with room to spare; the RTCC broker accepts this site's identity over
TLS; the store holds enough days for all cameras together. Then every configured camera gets
the full `check`.

The broker check must not disturb the site's MQTT session. The broker binds the client id to
the site's identity, so any login takes over the daemon's connection, and a clean-session login
would wipe the requests queued for it. So: when the daemon runs, only the TLS handshake with
the site's certificate is tested (the daemon's own connection is the real proof); when it does
not, a bare MQTT CONNECT with clean session off, read CONNACK, DISCONNECT — no subscription, no
will, nothing acknowledged, so queued requests stay queued for the daemon.

The bundle (`write_bundle`) is a tar.gz: the report, the configuration with every secret
redacted, recent logs (journalctl for the unit, when there is a journal) and versions. Every
file in it is scrubbed of every secret the configuration holds (decrypted camera passwords,
their encrypted form, the broker password) before it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import platform
import re
import shutil
import ssl
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import tomlkit

from agent import __version__
from agent.clock import clock_sync
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
from agent.compat.report import Check, DoctorReport, worst
from agent.config import (
    AgentConfig,
    ConfigError,
    config_file_problems,
    config_warnings,
    load_config,
)
from agent.control.client import ControlClient, ControlError, DaemonNotRunning
from agent.fsutil import atomic_file
from agent.link.session import BrokerSettings
from agent.link.tls import TlsConfigError, client_tls_context
from agent.log import get_logger
from agent.redact import REDACTED, redact, redact_tree, secret_forms, url_secrets
from agent.secretbox import SecretError, reveal
from agent.store import ClipStore, StoreError, StoreNotFound, sizing
from agent.store.sizing import store_problems

log = get_logger(__name__)

UNIT = "rtcc-edge"
# Keys whose values are secrets wherever they appear in the configuration.
_SECRET_KEY = re.compile(r"secret|password|passwd|token|passphrase|private", re.IGNORECASE)
# `password = "…"` in a file too broken to parse: everything after the `=` goes.
_SECRET_LINE = re.compile(
    r"^(?P<key>[ \t]*[\w.\"'-]*(?:secret|password|passwd|token|passphrase|private)[\w.\"'-]*"
    r"[ \t]*=[ \t]*).*$",
    re.IGNORECASE | re.MULTILINE,
)
MQTT_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


# -- this host -----------------------------------------------------------------------------------


def time_sync_check() -> Check:
    """This host's clock, as `agent.clock` reads it for status messages and clip manifests (one
    reading everywhere: the kernel's adjtimex state, else timedatectl)."""
    sync = clock_sync()
    how = {"adjtimex": "the kernel (adjtimex)", "timedatectl": "timedatectl"}.get(
        sync.source, sync.source
    )
    if sync.synchronized is None:
        return verdicts.check(
            "time_sync",
            "warn",
            "Unknown: neither the kernel's clock state nor timedatectl could be read.",
            "Make sure an NTP client (systemd-timesyncd, chrony) runs on this host.",
        )
    if not sync.synchronized:
        return verdicts.check(
            "time_sync",
            "fail",
            f"This host's clock is not synchronised ({how} says so): every footage timestamp "
            "and every request's validity depends on it.",
            "Enable NTP: `timedatectl set-ntp true`, or install chrony; check that UDP port 123 "
            "may leave the site.",
        )
    error = (
        f", estimated error at most {sync.max_error_us / 1000:.0f} ms"
        if sync.max_error_us is not None
        else ""
    )
    return verdicts.check("time_sync", "pass", f"Synchronised by NTP ({how}{error}).")


def store_check(config: AgentConfig) -> Check:
    path = config.store_path
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a directory")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".doctor-") as probe:
            probe.write(os.urandom(4096))
            probe.flush()
            os.fsync(probe.fileno())
        usage = shutil.disk_usage(existing)
    except OSError as exc:
        return verdicts.check(
            "store",
            "fail",
            f"{existing} is not writable: {exc.strerror or exc}.",
            "Give the rtcc-edge user its state directory (the installer does: "
            "`chown -R rtcc-edge: /var/lib/rtcc-edge`), or set store.path to a writable disk.",
        )
    reserve = int(config.store.min_free)
    free = f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB"
    not_yet = "" if existing == path else f" ({path} will be created there)"
    remedy = _reserve_remedy(config, usage.total, usage.free)
    if usage.free < reserve:
        return verdicts.check(
            "store",
            "fail",
            f"{existing}: {free}, less than the reserve store.min_free "
            f"({reserve / 1e9:.1f} GB): retention deletes footage as fast as it is recorded.",
            remedy,
        )
    if usage.free < 2 * reserve:
        return verdicts.check(
            "store",
            "warn",
            f"{existing}: {free}, close to the reserve ({reserve / 1e9:.1f} GB){not_yet}.",
            remedy,
        )
    return verdicts.check("store", "pass", f"{existing} is writable: {free}{not_yet}.")


def store_integrity_check(config: AgentConfig) -> Check | None:
    """Intact segments in quarantine because the index lost them (None: no store yet)."""
    try:
        with ClipStore.from_config(config, create=False) as store:
            adoptable = store.adoptable()
    except StoreNotFound:
        return None
    except (StoreError, OSError) as exc:
        return verdicts.check(
            "store_integrity", "warn", f"the clip store cannot be read: {exc}", None
        )
    if not adoptable:
        return verdicts.check(
            "store_integrity", "pass", "No recorded segment is waiting in quarantine."
        )
    seconds = sum(a.seconds for a in adoptable)
    cameras = ", ".join(sorted({a.camera for a in adoptable}))
    return verdicts.check(
        "store_integrity",
        "warn",
        f"{len(adoptable)} intact segment(s) of {cameras} ({seconds:.0f} s of footage) are in "
        "quarantine because the store's index lost them (a power cut or a disk that lost "
        "its last writes).",
        "Run `rtcc-edge store verify --repair` to put them back.",
    )


def _reserve_remedy(config: AgentConfig, disk_total: int, disk_free: int) -> str:
    """What to change when the disk is at or near the reserve: the reserve itself if it is
    larger than this disk needs (`agent.store.sizing`), else the disk."""
    reserve = int(config.store.min_free)
    cameras = sum(1 for camera in config.cameras if camera.enabled)
    fitting = sizing.reserve_for(
        disk_total,
        cameras=cameras,
        segment_seconds=config.store.segment_seconds,
        bitrate_bps=sizing.ESTIMATED_CAMERA_BPS,
    )
    if fitting < reserve and 2 * fitting <= disk_free:
        return (
            f'Set store.min_free = "{sizing.bytes_text(fitting)}" (now '
            f"{sizing.bytes_text(reserve)}): enough for this disk of {disk_total / 1e9:.0f} GB; "
            "or free some space."
        )
    return (
        f"Free at least {max(0, 2 * reserve - disk_free) / 1e9:.1f} GB on this disk, or put "
        "the store (store.path) on a bigger disk."
    )


def config_check(path: Path) -> tuple[AgentConfig | None, Check]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        listed = "; ".join(str(p) for p in exc.problems[:5])
        return None, verdicts.check(
            "config",
            "fail",
            f"{path} is not valid: {listed}",
            "Fix it (`rtcc-edge config check` lists every problem), then run doctor again.",
        )
    problems = config_file_problems(config)
    if problems:
        return config, verdicts.check(
            "config",
            "fail",
            f"{path} names files that cannot be read: " + "; ".join(str(p) for p in problems),
            "Restore those files or re-run `rtcc-edge enroll`.",
        )
    conflicts = store_problems(config)
    if conflicts:
        return config, verdicts.check(
            "config",
            "fail",
            f"{path}: store settings that cannot work together: "
            + "; ".join(f"{p.field}: {p.message}" for p in conflicts),
            "Change them as said (`rtcc-edge config check` lists every problem).",
        )
    warnings = [p for p in config_warnings(config) if p.field != "rtcc.broker_url"]
    if warnings:
        return config, verdicts.check(
            "config",
            "warn",
            f"{path} loads, but: " + "; ".join(str(p) for p in warnings),
            "`rtcc-edge cameras add` stores camera passwords encrypted.",
        )
    return config, verdicts.check("config", "pass", f"{path} is valid.")


# -- the broker ----------------------------------------------------------------------------------


def daemon_running(config: AgentConfig) -> bool | None:
    """True if the daemon answers on its control socket, None if that cannot be told."""
    try:
        ControlClient(config.control.socket, timeout=3.0).call("status")
    except DaemonNotRunning:
        return False
    except ControlError:
        return None
    return True


def _string(text: str | None) -> bytes:
    data = (text or "").encode()
    return struct.pack("!H", len(data)) + data


def mqtt_connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session off, no will (see the module docstring for why)."""
    flags = 0x00
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body = variable + payload
    length = len(body)
    encoded = bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x10]) + bytes(encoded) + body


async def _mqtt_login(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: BrokerSettings, site: str
) -> str | None:
    """None if the broker accepted the login; otherwise why not."""
    writer.write(mqtt_connect_packet(site, settings.username, settings.password))
    await writer.drain()
    try:
        connack = await reader.readexactly(4)
    except asyncio.IncompleteReadError:
        return "the broker closed the connection without answering (certificate refused?)"
    if connack[0] != 0x20 or connack[1] != 2:
        return "the broker's answer is not an MQTT CONNACK"
    if connack[3] != 0:
        return f"the broker refused the login: {MQTT_CONNACK_CODES.get(connack[3], connack[3])}"
    writer.write(b"\xe0\x00")  # DISCONNECT: no will is published
    await writer.drain()
    return None


async def broker_check(config: AgentConfig, *, within: float = 10.0) -> Check:
    rtcc = config.rtcc
    if rtcc.broker_url is None:
        return verdicts.check(
            "broker",
            "warn",
            "Not enrolled: rtcc.broker_url is not set, so the agent records but takes no requests.",
            "Enroll with the RTCC: `rtcc-edge enroll` (the installer runs it).",
        )
    try:
        settings = BrokerSettings.from_config(rtcc)
        context: ssl.SSLContext | None = None
        if settings.tls:
            context = await asyncio.to_thread(
                client_tls_context,
                ca_file=settings.ca_file,
                cert_file=settings.cert_file,
                key_file=settings.key_file,
            )
    except (ValueError, TlsConfigError) as exc:
        return verdicts.check(
            "broker", "fail", f"The broker settings cannot be used: {exc}", "Re-run enrollment."
        )
    where = f"{settings.host}:{settings.port}"
    running = await asyncio.to_thread(daemon_running, config)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(
                settings.host,
                settings.port,
                ssl=context,
                server_hostname=settings.host if context is not None else None,
            )
            problem = (
                None
                if running is not False
                else await _mqtt_login(reader, writer, settings, config.site.id)
            )
    except TimeoutError:
        return verdicts.check(
            "broker",
            "fail",
            f"{where} did not answer within {within:g} s.",
            "Check that this site may connect out to the broker's port (firewall, proxy).",
        )
    except ssl.SSLError as exc:
        return verdicts.check(
            "broker",
            "fail",
            f"TLS with {where} failed: {exc.reason or exc}.",
            "The CA file or the client certificate does not match this broker: re-run enrollment.",
        )
    except OSError as exc:
        return verdicts.check(
            "broker",
            "fail",
            f"Cannot connect to {where}: {exc.strerror or exc}.",
            "Check the broker address and that this site may connect out to it.",
        )
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    if problem is not None:
        return verdicts.check(
            "broker",
            "fail",
            f"{where}: {problem}.",
            "The site's identity is not accepted: re-run enrollment, or ask the RTCC whether "
            "this site was revoked.",
        )
    if running is not False:
        state = "is running" if running else "may be running"
        return verdicts.check(
            "broker",
            "pass",
            f"TLS to {where} works with this site's identity. The daemon {state}, so the MQTT "
            "login itself was not repeated (it would take over the daemon's session).",
        )
    return verdicts.check(
        "broker", "pass", f"{where} accepts this site's identity over TLS (MQTT login tested)."
    )


# -- the whole site ----------------------------------------------------------------------------


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


# -- the support bundle ------------------------------------------------------------------------


def known_secrets(config: AgentConfig | None) -> list[str]:
    """Every secret string the configuration holds, in every form it may appear in."""
    if config is None:
        return []
    found: list[str] = []
    if config.rtcc.password is not None:
        found.append(config.rtcc.password.get_secret_value())
    for camera in config.cameras:
        for url in (camera.rtsp_url, camera.onvif_url):
            found += url_secrets(url or "")
        if camera.secret is None:
            continue
        value = camera.secret.get_secret_value()
        found.append(value)
        with contextlib.suppress(SecretError, OSError):
            plain = reveal(value, config.state_dir)
            if plain:
                found.append(plain)
    return secret_forms(found)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` as it may go into the bundle: `agent.redact`, the one redaction there is."""
    return redact(text, secrets)


def _redact(node: object) -> None:
    if isinstance(node, MutableMapping):
        for key in list(node.keys()):
            value = node[key]
            if _SECRET_KEY.search(str(key)) and isinstance(value, str):
                node[key] = REDACTED
            else:
                _redact(value)
    elif isinstance(node, list):
        for item in node:
            _redact(item)


def redact_config_text(text: str, secrets: Iterable[str] = ()) -> str:
    """The configuration file with every secret value replaced (its comments kept)."""
    try:
        document = tomlkit.parse(text)
    except Exception:  # noqa: BLE001 - an unparseable file is still redacted, line by line
        return scrub(_SECRET_LINE.sub(rf"\g<key>{REDACTED}", text), secrets)
    _redact(document)
    return scrub(tomlkit.dumps(document), secrets)


def recent_logs(*, lines: int = 2000) -> str:
    exe = shutil.which("journalctl")
    if exe is None:
        return "journalctl is not available on this host: no logs collected.\n"
    try:
        proc = subprocess.run(
            [exe, "--unit", UNIT, "--since", "-24h", "--lines", str(lines), "--no-pager"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}\n"
    return proc.stdout + (f"\n[journalctl: {proc.stderr.strip()}]\n" if proc.stderr else "")


def write_bundle(
    path: Path, report: DoctorReport, *, config_path: Path, config: AgentConfig | None
) -> list[str]:
    """Write the support bundle (tar.gz) atomically; the names of the files in it."""
    secrets = known_secrets(config)
    try:
        config_text = redact_config_text(config_path.read_text(encoding="utf-8"), secrets)
    except (OSError, UnicodeDecodeError) as exc:
        config_text = f"# {config_path} could not be read: {exc}\n"
    members = {
        "README.txt": (
            "rtcc-edge support bundle\n\n"
            "report.json  the doctor report (site checks and every camera's check)\n"
            "agent.toml   the configuration, with every password, secret and token redacted\n"
            "logs.txt     the last 24 hours of the rtcc-edge unit's log (journalctl)\n"
            "versions.json  versions of the agent and its libraries\n"
        ),
        # Structured members are redacted value by value: replacing text in their serialised
        # form could break them (a password "true" or "1234").
        "report.json": json.dumps(redact_tree(report.model_dump(mode="json"), secrets), indent=2),
        "agent.toml": config_text,
        "logs.txt": recent_logs(),
        "versions.json": json.dumps(redact_tree(report.versions, secrets), indent=2),
    }
    directory = path.parent if str(path.parent) else Path()
    with (
        atomic_file(directory / path.name, mode=0o600) as raw,
        tarfile.open(fileobj=raw, mode="w:gz") as tar,
    ):
        now = time.time()
        for name, text in members.items():
            data = (text if name.endswith(".json") else scrub(text, secrets)).encode()
            info = tarfile.TarInfo(f"rtcc-edge-support/{name}")
            info.size, info.mtime, info.mode = len(data), now, 0o600
            tar.addfile(info, io.BytesIO(data))
    return list(members)
