"""Fleet health: one row per site, from its signed status and registry, with what needs
attention — offline sites and cameras, clock drift, footage held below the program's bar,
firmware with a published vulnerability (looked up in `firmware_profiles/`), and registries that
did not verify (why the site's cameras are not on the map).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from agent.compat import ProfileError, ProfileSet, load_profiles
from hub.core import Hub
from hub.csvout import to_csv
from hub.db import Camera, Site
from hub.trust import Verdict

DEFAULT_RETENTION_BAR_H = 72.0  # the program's bar: three days of footage held
DRIFT_WARN_S = 5.0
STALE_AFTER = timedelta(minutes=5)  # a status older than this (and no newer sign) is stale


@dataclass(frozen=True)
class Vulnerable:
    camera: str
    firmware: str
    cves: tuple[str, ...]


@dataclass
class FleetRow:
    site: str
    name: str
    online: bool | None
    last_seen: datetime | None
    cameras_total: int
    cameras_offline: list[str]
    clock_drift_s: float | None
    clock_synced: bool | None
    min_footage_h: float | None
    below_bar: list[str]
    vulnerable: list[Vulnerable]
    registry: str  # verified | forged | untrusted | malformed | none
    registry_reason: str
    version: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.registry not in (Verdict.VERIFIED.value,):
            return "not on the map"
        if self.online is False:
            return "offline"
        if self.online is None:
            return "unknown"
        return "online"

    def sort_value(self, key: str) -> Any:
        values: dict[str, Any] = {
            "site": self.site,
            "name": self.name.lower(),
            "state": self.state,
            "last_seen": self.last_seen.timestamp() if self.last_seen else 0.0,
            "cameras": self.cameras_total,
            "offline": len(self.cameras_offline),
            "drift": abs(self.clock_drift_s) if self.clock_drift_s is not None else -1.0,
            "footage": self.min_footage_h if self.min_footage_h is not None else -1.0,
            "firmware": len(self.vulnerable),
            "problems": len(self.problems),
        }
        return values[key]


SORT_KEYS = (
    "problems", "site", "name", "state", "last_seen", "cameras", "offline", "drift", "footage",
    "firmware",
)  # fmt: skip


@functools.cache
def _profiles() -> ProfileSet | None:
    try:
        return load_profiles()
    except ProfileError:
        return None


def vulnerabilities(vendor: str | None, model: str | None, firmware: str | None) -> list[str]:
    """CVE ids published for this vendor/model/firmware that affect it (firmware_profiles/)."""
    profiles = _profiles()
    if profiles is None or not (vendor or model) or not firmware:
        return []
    match = profiles.match(manufacturer=vendor, model=model, firmware=firmware)
    if match is None:
        return []
    return [f.item.cve for f in profiles.vulnerabilities(match, firmware) if f.status == "affected"]


async def fleet(
    hub: Hub,
    *,
    retention_bar_h: float = DEFAULT_RETENTION_BAR_H,
    now: datetime | None = None,
) -> list[FleetRow]:
    now = now or datetime.now(UTC)
    async with hub.db.session() as session:
        sites = (await session.execute(select(Site).order_by(Site.id))).scalars().all()
        cameras = (await session.execute(select(Camera))).scalars().all()
    by_site: dict[str, list[Camera]] = {}
    for camera in cameras:
        by_site.setdefault(camera.site_id, []).append(camera)
    rows = []
    for site in sites:
        listed = by_site.get(site.id, [])
        online = site.online if site.status_verdict == Verdict.VERIFIED.value else None
        if online and site.status_iat is not None and now - site.status_iat > STALE_AFTER * 3:
            online = None  # silent for long: its word that it is online is no longer news
        vulnerable = []
        for camera in listed:
            cves = vulnerabilities(camera.vendor, camera.model, camera.firmware)
            if cves:
                vulnerable.append(Vulnerable(camera.id, camera.firmware or "", tuple(cves)))
        row = FleetRow(
            site=site.id,
            name=site.name or site.id,
            online=online,
            last_seen=site.last_seen,
            cameras_total=len(listed),
            cameras_offline=[c.id for c in listed if not c.online],
            clock_drift_s=site.clock_drift_s,
            clock_synced=site.clock_synced,
            min_footage_h=min((c.footage_hours for c in listed), default=None),
            below_bar=[c.id for c in listed if c.footage_hours < retention_bar_h],
            vulnerable=vulnerable,
            registry=site.registry_verdict or "none",
            registry_reason=site.registry_reason,
            version=site.version,
        )
        row.problems = _problems(row, site, retention_bar_h)
        rows.append(row)
    return sort_rows(rows, "problems", descending=True)


def _problems(row: FleetRow, site: Site, bar_h: float) -> list[str]:
    problems = []
    if row.registry == "none":
        problems.append("no registry received yet: its cameras are not on the map")
    elif row.registry != Verdict.VERIFIED.value:
        problems.append(
            f"registry {row.registry}: its cameras are hidden from the map ({row.registry_reason})"
        )
    if site.status_verdict not in (None, Verdict.VERIFIED.value):
        problems.append(f"status {site.status_verdict}: {site.status_reason}")
    if row.online is False:
        problems.append("site offline")
    if row.cameras_offline:
        problems.append(f"camera(s) offline: {', '.join(row.cameras_offline)}")
    if row.clock_drift_s is not None and abs(row.clock_drift_s) > DRIFT_WARN_S:
        problems.append(f"clock off by {row.clock_drift_s:+.0f} s")
    if row.clock_synced is False:
        problems.append("clock not synchronised (NTP)")
    if row.below_bar:
        problems.append(f"less than {bar_h:.0f} h of footage: {', '.join(row.below_bar)}")
    for found in row.vulnerable:
        problems.append(f"{found.camera} firmware {found.firmware}: {', '.join(found.cves)}")
    return problems


def sort_rows(rows: list[FleetRow], key: str, *, descending: bool = False) -> list[FleetRow]:
    if key not in SORT_KEYS:
        key = "problems"
    return sorted(rows, key=lambda r: (r.sort_value(key), r.site), reverse=descending)


CSV_HEADER = (
    "site", "name", "state", "last seen (UTC)", "cameras", "cameras offline", "clock drift (s)",
    "clock synchronised", "least footage held (h)", "below the footage bar", "vulnerable firmware",
    "registry", "agent version", "problems",
)  # fmt: skip


def fleet_csv(rows: list[FleetRow]) -> str:
    return to_csv(
        CSV_HEADER,
        (
            (
                r.site,
                r.name,
                r.state,
                r.last_seen.isoformat() if r.last_seen else "",
                r.cameras_total,
                " ".join(r.cameras_offline),
                "" if r.clock_drift_s is None else f"{r.clock_drift_s:.1f}",
                "" if r.clock_synced is None else ("yes" if r.clock_synced else "no"),
                "" if r.min_footage_h is None else f"{r.min_footage_h:.1f}",
                " ".join(r.below_bar),
                "; ".join(f"{v.camera} {v.firmware} {' '.join(v.cves)}" for v in r.vulnerable),
                r.registry,
                r.version or "",
                "; ".join(r.problems),
            )
            for r in rows
        ),
    )
