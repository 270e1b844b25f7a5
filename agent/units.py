"""What people type for times, durations, distances and places: one parser for both CLIs and the
configuration.

The agent's owner (`rtcc-edge clips list --from -2h`, `audit --since 7d`, `pause --for 2h`), the
agent's configuration (`retention = "30d"`) and the RTCC analyst (`rtcc-hub request clip --from
now-15m`, `sites --near 35.08,-106.65 --radius 300m`) all write the same forms, so one module
reads them, and the hub imports it from here (the agent never imports the hub).

The forms:

- a duration is a number and a unit: `90s`, `15m`, `2h`, `7d`, `1w`, `250ms`, or several of
  them (`1h30m`, `2d 12h`); a bare number is seconds (`90`). Never negative.
- a time is `now`, a signed duration from now (`-5m`, `now-2h`, `+10m`), RFC 3339 with its
  offset (`2026-11-22T14:05:00Z`, `2026-11-22 07:05:00-07:00`), or a local date and time
  (`2026-11-22 07:05`) read in the time zone the caller gives: the site's (`[site] timezone`,
  by default the machine's own) for the agent. Without a zone to read it in, a time without an
  offset is refused rather than guessed: a wall clock and UTC differ by hours.
- `parse_since` also takes a bare duration as "that long ago" (`--since 7d`).
- a distance is metres or kilometres: `300`, `300m`, `1.5km`; more than 0.
- a point is `LAT,LON` in decimal degrees: `35.0844,-106.6504`.

Every refusal is a `ParseError` (a `ValueError`, so argparse and pydantic report it as bad input)
whose message says what was wrong and shows a form that works; no other exception leaves this
module, whatever the text (an earlier duration parser overflowed on `86400000000000`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EARTH_RADIUS_M = 6_371_008.8
LOCALTIME = Path("/etc/localtime")

# ASCII digits only: `\d` would also take other scripts' digits, which no one means here.
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_DURATION = re.compile(rf"^\s*{_NUMBER}\s*(ms|s|m|h|d|w)?\s*$")
_PART = re.compile(rf"\s*{_NUMBER}\s*(ms|s|m|h|d|w)\s*")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_DISTANCE = re.compile(rf"^\s*{_NUMBER}\s*(m|km)?\s*$")
_RELATIVE = re.compile(r"^(?:now)?\s*([-+])\s*(.*)$", re.IGNORECASE)

DURATION_EXAMPLES = "90s, 15m, 2h, 1h30m, 7d or 1w"
TIME_EXAMPLES = "e.g. now, -15m, now-2h, or RFC 3339 like 2026-11-22T14:05:00Z"


class ParseError(ValueError):
    """Text that is not a duration, time, distance or point; the message says why in plain words
    and gives an example that works."""


def duration_from_seconds(seconds: float) -> timedelta:
    """A number of seconds (from a configuration file, say) as a duration, or `ParseError` if it
    is not a finite number a duration can hold."""
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # infinite, or more days than a timedelta holds
        raise ParseError(
            f"{seconds!r} seconds is longer than any duration can be (e.g. 604800 is a week)"
        ) from None
    except ValueError:  # NaN
        raise ParseError(
            f"{seconds!r} is not a number of seconds (use e.g. 90, or {DURATION_EXAMPLES})"
        ) from None


def parse_duration(text: str) -> timedelta:
    """`90` (seconds), `90s`, `15m`, `2h`, `7d`, `1w`, `250ms`, or several parts, largest first or
    not, each unit once: `1h30m`, `2d 12h`."""
    match = _DURATION.match(text)
    if match:
        amount, unit = match.groups()
        return _seconds(text, float(amount) * _SECONDS[unit])
    parts = _compound(text)
    if parts is None:
        raise ParseError(
            f"not a duration: {text!r} (use a number and a unit, e.g. {DURATION_EXAMPLES})"
        )
    return _seconds(text, math.fsum(float(amount) * _SECONDS[unit] for amount, unit in parts))


def _compound(text: str) -> list[tuple[str, str]] | None:
    """The (number, unit) parts of `1h30m`, or None unless the whole text is such parts with
    each unit at most once (`1h1h` is more likely a typing slip than two hours)."""
    parts: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        part = _PART.match(text, position)
        if part is None or part.end() == position:
            return None
        parts.append((part.group(1), part.group(2)))
        position = part.end()
    units = [unit for _amount, unit in parts]
    if len(parts) < 2 or len(set(units)) != len(units):
        return None
    return parts


def _seconds(text: str, seconds: float) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ParseError(
            f"{text!r} is longer than any duration can be (use e.g. {DURATION_EXAMPLES})"
        ) from None


def site_zone(name: str | None = None) -> tzinfo:
    """The time zone local times are read and shown in: `name` (an IANA name such as
    `America/Denver`), or the machine's own zone. ParseError for a name the system does not
    know."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ParseError(
                f"unknown time zone {name!r} (use a name like America/Denver or Europe/Paris)"
            ) from None
    return _machine_zone()


def _machine_zone() -> tzinfo:
    """The machine's own zone with its daylight-saving rules (not today's fixed offset): `TZ`,
    then /etc/localtime (Debian makes it a link into the zone database)."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _linked_zone_name()):
        if name:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
                return ZoneInfo(name)
    with contextlib.suppress(OSError, ValueError), LOCALTIME.open("rb") as data:
        return ZoneInfo.from_file(data, key="localtime")
    return UTC


def _linked_zone_name() -> str:
    try:
        target = str(LOCALTIME.readlink())
    except OSError:
        return ""
    _, found, name = target.partition("zoneinfo/")
    return name if found else ""


def parse_time(text: str, *, now: datetime | None = None, zone: tzinfo | None = None) -> datetime:
    """`now`, `-15m`, `now-2h`, `+10m`, RFC 3339 with an offset (`2026-11-22T14:05:00Z`), or
    with `zone` a local time in it (`2026-11-22 07:05`); the result is in UTC. A relative time
    needs its unit (`-5` could be seconds or minutes)."""
    return _time(text, now=now, zone=zone, examples=TIME_EXAMPLES)


def parse_since(text: str, *, now: datetime | None = None, zone: tzinfo | None = None) -> datetime:
    """Like `parse_time`, and a bare duration is that long ago: `7d` is seven days before now."""
    if _DURATION.match(text) or _compound(text) is not None:
        current = now if now is not None else datetime.now(UTC)
        back = parse_duration(text)
        try:
            return current - back
        except OverflowError:
            raise ParseError(f"{text!r} is further back than any time can be (e.g. 7d)") from None
    return _time(
        text, now=now, zone=zone, examples=f"how long ago like 7d or 12h, or {TIME_EXAMPLES}"
    )


def _time(text: str, *, now: datetime | None, zone: tzinfo | None, examples: str) -> datetime:
    current = now if now is not None else datetime.now(UTC)
    value = text.strip()
    if value.lower() == "now":
        return current
    relative = _RELATIVE.match(value)
    if relative:
        sign, amount = relative.groups()
        match = _DURATION.match(amount)
        if (not match or match.group(2) is None) and _compound(amount) is None:
            raise ParseError(
                f"not a time: {text!r} (a time relative to now is a sign, a number and a unit, "
                "e.g. -15m, now-2h or +10m)"
            )
        delta = parse_duration(amount)
        try:
            return current - delta if sign == "-" else current + delta
        except OverflowError:
            raise ParseError(f"{text!r} is too far from now (e.g. -2h, -7d)") from None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ParseError(f"not a time: {text!r} (use {examples})") from None
    if (moment.tzinfo is None or moment.utcoffset() is None) and zone is not None:
        moment = _localize(moment, zone)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ParseError(
            f"{text!r} has no UTC offset: add Z for UTC or the local offset, "
            "e.g. 2026-11-22T14:05:00Z or 2026-11-22T07:05:00-07:00"
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # The very edge of the calendar (year 1 or 9999): the same instant, in its own offset.
        return moment


def _localize(moment: datetime, zone: tzinfo) -> datetime:
    """`moment` on the wall clocks of `zone`. A time the clocks skip (spring forward) or show
    twice (fall back) is refused: which hour the owner meant cannot be known."""
    first = moment.replace(tzinfo=zone, fold=0)
    second = moment.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        raise ParseError(
            f"{moment:%Y-%m-%d %H:%M} happens twice or not at all in {zone} (the clocks "
            "change then): add the offset, e.g. 2026-11-01T01:30:00-06:00"
        )
    return first


def parse_distance(text: str) -> float:
    """Metres from `300`, `300m` or `1.5km`."""
    match = _DISTANCE.match(text)
    if not match:
        raise ParseError(f"not a distance: {text!r} (use metres or kilometres, e.g. 300m or 1.5km)")
    metres = float(match.group(1)) * (1000 if match.group(2) == "km" else 1)
    if metres <= 0:
        raise ParseError(f"a distance must be more than 0 m, not {text!r} (e.g. 300m)")
    if math.isinf(metres):
        raise ParseError(f"{text!r} is further than any distance on Earth (e.g. 300m or 1.5km)")
    return metres


def parse_point(text: str) -> tuple[float, float]:
    """`LAT,LON` in decimal degrees."""
    example = "use LAT,LON in decimal degrees, e.g. 35.0844,-106.6504"
    parts = text.split(",")
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        raise ParseError(f"not a point: {text!r} ({example})") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ParseError(
            f"not a point on Earth: {text!r} (latitude is -90..90 and longitude -180..180; "
            f"{example})"
        )
    return lat, lon


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def human_distance(metres: float) -> str:
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.2f} km"
