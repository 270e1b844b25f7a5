"""What the simulated sites are: ids, names, places, cameras and how their owners share them.

`city(count, centre=…, spread_m=…)` lays out `count` sites deterministically (the same seed, the
same city) in a square around a centre, each with one to three cameras, most of them integrated,
some registry only, a few with live view; one camera in ten runs firmware with a published
vulnerability, so fleet pages have something to show.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

Sharing = Literal["integrated", "registry", "private"]
_NAMES = (
    "Corner Grocery", "Main St Pharmacy", "Riverside Laundromat", "Oak Avenue Bakery",
    "Central Hardware", "Night Owl Diner", "Plaza Liquor", "Sunrise Auto Repair",
    "Mesa Dental", "Eastside Barber", "Union Pawn", "Copper Cafe", "Depot Gas",
    "Old Town Books", "Canyon Fitness", "Elm St Apartments",
)  # fmt: skip
_CAMERA_NAMES = ("Front door", "Parking lot", "Side alley", "Back door", "Register")
# (vendor, model, firmware) as an ONVIF check would read them; the last one is affected by a
# CVE listed in firmware_profiles/hikvision.toml.
_FIRMWARE = (
    ("Axis", "P3245-LVE", "10.12.114"),
    ("Hanwha", "XNV-6080R", "2.21.00"),
    ("Dahua", "IPC-HFW2431S-S-S2", "2.820.0000000.10.R"),
    ("Hikvision", "DS-2CD2143G2-I", "V5.5.0 build 170725"),
)
_EARTH_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class CameraSpec:
    id: str
    name: str
    sharing: Sharing = "integrated"
    live: bool = False
    lat: float | None = None
    lon: float | None = None
    heading: float | None = None
    fov: float | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None


@dataclass(frozen=True)
class SiteSpec:
    id: str
    name: str
    lat: float
    lon: float
    cameras: tuple[CameraSpec, ...] = field(default_factory=tuple)
    address: str = ""


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point `north_m` north and `east_m` east of (lat, lon)."""
    dlat = north_m / _EARTH_M_PER_DEG
    dlon = east_m / (_EARTH_M_PER_DEG * max(math.cos(math.radians(lat)), 1e-6))
    return lat + dlat, lon + dlon


def city(
    count: int,
    *,
    centre: tuple[float, float] = (35.0844, -106.6504),
    spread_m: float = 3000.0,
    prefix: str = "sim",
    seed: int = 7,
    cameras_per_site: tuple[int, int] = (1, 3),
) -> list[SiteSpec]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible layout, not a secret
    sites = []
    for index in range(count):
        site_id = f"{prefix}-{index:04d}"
        lat, lon = offset(
            centre[0], centre[1], rng.uniform(-spread_m, spread_m), rng.uniform(-spread_m, spread_m)
        )
        cameras = []
        for number in range(rng.randint(*cameras_per_site)):
            clat, clon = offset(lat, lon, rng.uniform(-15, 15), rng.uniform(-15, 15))
            vendor, model, firmware = _FIRMWARE[rng.randrange(len(_FIRMWARE))]
            sharing: Sharing = "registry" if rng.random() < 0.3 else "integrated"
            cameras.append(
                CameraSpec(
                    id=f"cam-{number + 1}",
                    name=_CAMERA_NAMES[number % len(_CAMERA_NAMES)],
                    sharing=sharing,
                    live=sharing == "integrated" and rng.random() < 0.3,
                    lat=round(clat, 6),
                    lon=round(clon, 6),
                    heading=float(rng.randrange(0, 360, 15)),
                    fov=float(rng.choice((60, 90, 110))),
                    vendor=vendor,
                    model=model,
                    firmware=firmware,
                )
            )
        name = f"{_NAMES[index % len(_NAMES)]} #{index}"
        sites.append(SiteSpec(site_id, name, round(lat, 6), round(lon, 6), tuple(cameras)))
    return sites
