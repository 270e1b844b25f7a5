"""The site checks of `rtcc-edge doctor`, one function each: the configuration loads; this
host's clock is synchronised (NTP, as `agent.clock` reads it for the whole agent: the kernel's
adjtimex state, else timedatectl; "unknown" when neither answers); the clip store's disk is
writable with room to spare, and holds no intact footage its index lost; the RTCC broker
accepts this site's identity over TLS.

The broker check must not disturb the site's MQTT session: it asks `agent.link.probe_broker`
for a full MQTT login only when the daemon is not running, and for the TLS handshake alone
otherwise (the daemon's own connection is the real proof); see `agent.link.probe` for why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import tempfile
from pathlib import Path

from agent.clock import clock_sync
from agent.compat import verdicts
from agent.compat.report import Check
from agent.config import (
    AgentConfig,
    ConfigError,
    config_file_problems,
    config_warnings,
    load_config,
)
from agent.control.client import ControlClient, ControlError, DaemonNotRunning
from agent.link import BrokerSettings, TlsConfigError, client_tls_context, probe_broker
from agent.store import ClipStore, StoreError, StoreNotFound, sizing
from agent.store.sizing import store_problems

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
    probe = await probe_broker(
        settings, context, client_id=config.site.id, login=running is False, within=within
    )
    if probe.outcome == "timeout":
        return verdicts.check(
            "broker",
            "fail",
            f"{where} did not answer within {within:g} s.",
            "Check that this site may connect out to the broker's port (firewall, proxy).",
        )
    if probe.outcome == "tls_failed":
        return verdicts.check(
            "broker",
            "fail",
            f"TLS with {where} failed: {probe.detail}.",
            "The CA file or the client certificate does not match this broker: re-run enrollment.",
        )
    if probe.outcome == "unreachable":
        return verdicts.check(
            "broker",
            "fail",
            f"Cannot connect to {where}: {probe.detail}.",
            "Check the broker address and that this site may connect out to it.",
        )
    if not probe.ok:
        problem = (
            f"the broker refused the login: {probe.detail}"
            if probe.outcome == "refused"
            else "the broker closed the connection without answering (certificate refused?)"
        )
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
