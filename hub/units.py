"""Parsing what an analyst types: durations, distances, points and times."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_DISTANCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|km)?\s*$")
_RELATIVE = re.compile(r"^\s*(?:now)?\s*([-+])\s*(.+)$")
EARTH_RADIUS_M = 6_371_008.8


def parse_duration(text: str) -> timedelta:
    """`90` or `90s`, `10m`, `2h`, `7d`."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 10m, 2h, 7d)")
    try:
        return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any duration can be") from None


def parse_distance(text: str) -> float:
    """Metres from `300`, `300m` or `1.5km`."""
    match = _DISTANCE.match(text)
    if not match:
        raise ValueError(f"not a distance: {text!r} (use e.g. 300m or 1.5km)")
    metres = float(match.group(1)) * (1000 if match.group(2) == "km" else 1)
    if metres <= 0:
        raise ValueError("a radius must be more than 0 m")
    return metres


def parse_point(text: str) -> tuple[float, float]:
    """`LAT,LON` in decimal degrees."""
    parts = text.split(",")
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"not a point: {text!r} (use LAT,LON, e.g. 35.0844,-106.6504)") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat + lon):
        raise ValueError(f"not a point on Earth: {text!r}")
    return lat, lon


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An RFC 3339 time with its offset (`2026-11-22T14:05:00Z`), `now`, or relative to now
    (`-15m`, `now-2h`). A time without an offset is refused: the site's clock is UTC."""
    current = now or datetime.now(UTC)
    stripped = text.strip()
    if stripped == "now":
        return current
    relative = _RELATIVE.match(stripped)
    if relative:
        delta = parse_duration(relative.group(2))
        return current - delta if relative.group(1) == "-" else current + delta
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use RFC 3339, e.g. 2026-11-22T14:05:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or e.g. -07:00)")
    return moment.astimezone(UTC)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def human_distance(metres: float) -> str:
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.2f} km"
