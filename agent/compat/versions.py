"""Firmware version strings as cameras report them, parsed per vendor style and compared.

Every vendor formats `GetDeviceInformation.FirmwareVersion` its own way, for example

    hikvision   V5.5.0 build 170725
    dahua       V2.800.0000000.25.R, Build Date: 2020-08-20   (also ...16.R.20160909)
    dotted      10.12.114
    tplink      1.1.16 Build 211209 Rel. 37726n
    reolink     v3.0.0.136_20121102
    uniview     DIPC-B1216.5.7.230109
    milesight   51.7.0.77-r12
    bosch       7.80.0128  or  7.80 B128
    vivotek     FD8136-VVTK-0301a

A string that does not fit its vendor's style parses to None, and any comparison that cannot
be decided returns None: a caller must treat None as "cannot tell", never as older or newer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal, get_args

VersionStyle = Literal[
    "hikvision", "dahua", "dotted", "tplink", "reolink", "uniview", "milesight", "bosch", "vivotek"
]
VERSION_STYLES: tuple[VersionStyle, ...] = get_args(VersionStyle)
CompareBy = Literal["version", "build_date"]

# Real firmware strings are short; anything longer is noise or hostile and not worth a regex.
MAX_VERSION_LENGTH = 120


@dataclass(frozen=True, slots=True)
class FirmwareVersion:
    """The comparable parts of one firmware string.

    line:       the firmware family, when the vendor encodes one (Uniview "DIPC-B1216",
                Milesight "51", Dahua "2.800"); versions of different lines are not ordered.
    numbers:    the ordered version numbers, compared element by element (zero-padded).
    build_date: the build date the string carries, if any.
    build:      a build or revision counter ordering equal numbers (TP-Link "Rel.", Bosch "B").
    """

    raw: str
    style: VersionStyle
    line: str | None
    numbers: tuple[int, ...]
    build_date: date | None = None
    build: int | None = None


def parse_version(raw: str, style: VersionStyle) -> FirmwareVersion | None:
    """Parse `raw` as a `style` firmware string; None when it does not fit that style."""
    text = raw.strip()
    if not text or len(text) > MAX_VERSION_LENGTH or not text.isprintable():
        return None
    return _PARSERS[style](text)


def compare_versions(
    a: FirmwareVersion, b: FirmwareVersion, *, by: CompareBy = "version"
) -> int | None:
    """-1, 0 or 1 as `a` is older than, equal to or newer than `b`; None when undecidable."""
    if by == "build_date":
        if a.build_date is None or b.build_date is None:
            return None
        return _sign(a.build_date.toordinal() - b.build_date.toordinal())
    if a.line != b.line:
        return None
    if order := _compare_numbers(a.numbers, b.numbers):
        return order
    pairs = (
        (_ordinal(a.build_date), _ordinal(b.build_date)),
        (a.build, b.build),
    )
    for left, right in pairs:
        if left is None and right is None:
            continue
        if left is None or right is None:
            # Same version numbers but only one side says which build: cannot tell.
            return None
        if left != right:
            return -1 if left < right else 1
    return 0


def _compare_numbers(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """-1, 0 or 1; missing trailing numbers count as 0 (1.2 == 1.2.0)."""
    width = max(len(a), len(b))
    padded_a, padded_b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (padded_a > padded_b) - (padded_a < padded_b)


def _ordinal(day: date | None) -> int | None:
    return None if day is None else day.toordinal()


def compare_to_release(version: FirmwareVersion, release: FirmwareVersion) -> int | None:
    """Order `version` against a published release; parts the release leaves out are ignored.

    An advisory's "1.1.15 and below" covers every build of 1.1.15, so comparing
    "1.1.15 Build 211010" with the release "1.1.15" gives 0. None when the lines differ or the
    release names a build that `version` does not report.
    """
    if version.line != release.line:
        return None
    if order := _compare_numbers(version.numbers, release.numbers):
        return order
    pairs = (
        (_ordinal(version.build_date), _ordinal(release.build_date)),
        (version.build, release.build),
    )
    for have, wanted in pairs:
        if wanted is None:
            continue
        if have is None:
            return None
        if have != wanted:
            return -1 if have < wanted else 1
    return 0


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _yymmdd(digits: str) -> date | None:
    try:
        return date(2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return None


def _yyyymmdd(digits: str) -> date | None:
    try:
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _ints(dotted: str) -> tuple[int, ...]:
    return tuple(int(part) for part in dotted.split("."))


_HIKVISION = re.compile(r"v?(\d{1,4}(?:\.\d{1,5}){1,3})(?:(?:\s*build\s*|_)(\d{6}))?", re.I)


def _parse_hikvision(text: str) -> FirmwareVersion | None:
    m = _HIKVISION.fullmatch(text)
    if m is None:
        return None
    built = None
    if m.group(2) is not None:
        built = _yymmdd(m.group(2))
        if built is None:
            return None
    return FirmwareVersion(text, "hikvision", None, _ints(m.group(1)), build_date=built)


_DAHUA = re.compile(
    r"v?(?P<core>\d{1,3}\.\d{1,4}(?:\.[0-9a-z]{1,12}){1,4})\.r"
    r"(?:\.(?P<suffix>\d{8}|\d{6}))?"
    r"(?:\s*,\s*build(?:\s*date)?\s*:\s*(?P<iso>\d{4}-\d{2}-\d{2}))?",
    re.I,
)


def _parse_dahua(text: str) -> FirmwareVersion | None:
    m = _DAHUA.fullmatch(text)
    if m is None:
        return None
    fields = m.group("core").split(".")
    # major.minor name the platform; alphanumeric fields (Amcrest "AC00") name an OEM branch.
    tags = [field.upper() for field in fields[2:] if not field.isdigit()]
    line = ".".join(str(int(field)) for field in fields[:2])
    if tags:
        line = "|".join([line, *tags])
    numbers = tuple(int(field) for field in fields[2:] if field.isdigit())
    built: date | None = None
    suffix, iso = m.group("suffix"), m.group("iso")
    if suffix is not None and iso is not None:
        return None
    if suffix is not None:
        built = _yyyymmdd(suffix) if len(suffix) == 8 else _yymmdd(suffix)
        if built is None:
            return None
    elif iso is not None:
        try:
            built = date.fromisoformat(iso)
        except ValueError:
            return None
    return FirmwareVersion(text, "dahua", line, numbers, build_date=built)


_DOTTED = re.compile(r"v?(\d{1,6}(?:\.\d{1,6}){0,5})", re.I)


def _parse_dotted(text: str) -> FirmwareVersion | None:
    m = _DOTTED.fullmatch(text)
    if m is None:
        return None
    return FirmwareVersion(text, "dotted", None, _ints(m.group(1)))


_TPLINK = re.compile(
    r"(?:v(?P<hw>\d{1,2})_)?(?P<num>\d{1,4}(?:\.\d{1,5}){1,3})"
    r"(?:[\s_]+build[\s_]+(?P<build>\d{6}))?"
    r"(?:[\s_]+rel\.?[\s_]*(?P<rel>\d{1,9})[a-z]?)?"
    r"(?:\s*\([^()]{0,40}\))?",
    re.I,
)


def _parse_tplink(text: str) -> FirmwareVersion | None:
    m = _TPLINK.fullmatch(text)
    if m is None:
        return None
    built = None
    if m.group("build") is not None:
        built = _yymmdd(m.group("build"))
        if built is None:
            return None
    line = f"V{int(m.group('hw'))}" if m.group("hw") is not None else None
    rel = int(m.group("rel")) if m.group("rel") is not None else None
    return FirmwareVersion(text, "tplink", line, _ints(m.group("num")), built, rel)


_REOLINK = re.compile(r"v?(\d{1,4}(?:\.\d{1,6}){2,4})_(\d{6})\d{0,6}", re.I)


def _parse_reolink(text: str) -> FirmwareVersion | None:
    m = _REOLINK.fullmatch(text)
    if m is None:
        return None
    built = _yymmdd(m.group(2))
    if built is None:
        return None
    return FirmwareVersion(text, "reolink", None, _ints(m.group(1)), build_date=built)


_UNIVIEW_LINE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_UNIVIEW_BUILD = re.compile(r"B(\d{1,4})", re.I)


def _parse_uniview(text: str) -> FirmwareVersion | None:
    fields = text.split(".")
    if len(fields) < 4 or _UNIVIEW_LINE.fullmatch(fields[0]) is None:
        return None
    stamp = fields[-1]
    if len(stamp) != 6 or not stamp.isdigit():
        return None
    built = _yymmdd(stamp)
    if built is None:
        return None
    numbers: list[int] = []
    build: int | None = None
    for field in fields[1:-1]:
        if field.isdigit() and len(field) <= 5:
            numbers.append(int(field))
            continue
        tagged = _UNIVIEW_BUILD.fullmatch(field)
        if tagged is None or build is not None:
            return None
        build = int(tagged.group(1))
    if not numbers:
        return None
    return FirmwareVersion(text, "uniview", fields[0].upper(), tuple(numbers), built, build)


_MILESIGHT = re.compile(
    r"(?:(?P<prefix>[a-z]{2})_)?(?P<line>\d{1,3})\.(?P<num>\d{1,4}(?:\.\d{1,5}){1,4})"
    r"(?:-r(?P<rev>\d{1,5}))?",
    re.I,
)


def _parse_milesight(text: str) -> FirmwareVersion | None:
    m = _MILESIGHT.fullmatch(text)
    if m is None:
        return None
    line = str(int(m.group("line")))
    if m.group("prefix") is not None:
        line = f"{m.group('prefix').upper()}_{line}"
    rev = int(m.group("rev")) if m.group("rev") is not None else None
    return FirmwareVersion(text, "milesight", line, _ints(m.group("num")), build=rev)


_BOSCH = re.compile(r"(\d{1,3})\.(\d{1,3})(?:\.(\d{1,5})|\s*b(\d{1,5}))?", re.I)


def _parse_bosch(text: str) -> FirmwareVersion | None:
    m = _BOSCH.fullmatch(text)
    if m is None:
        return None
    build_text = m.group(3) or m.group(4)
    build = int(build_text) if build_text is not None else None
    numbers = (int(m.group(1)), int(m.group(2)))
    return FirmwareVersion(text, "bosch", None, numbers, build=build)


_VIVOTEK = re.compile(r"(?:[a-z0-9]{2,20}-)?vvtk-(\d{4})([a-z])?(?:_(\d{1,4}))?", re.I)


def _parse_vivotek(text: str) -> FirmwareVersion | None:
    m = _VIVOTEK.fullmatch(text)
    if m is None:
        return None
    letter = m.group(2)
    numbers = (int(m.group(1)), ord(letter.lower()) - ord("a") + 1 if letter else 0)
    build = int(m.group(3)) if m.group(3) is not None else None
    return FirmwareVersion(text, "vivotek", None, numbers, build=build)


_PARSERS = {
    "hikvision": _parse_hikvision,
    "dahua": _parse_dahua,
    "dotted": _parse_dotted,
    "tplink": _parse_tplink,
    "reolink": _parse_reolink,
    "uniview": _parse_uniview,
    "milesight": _parse_milesight,
    "bosch": _parse_bosch,
    "vivotek": _parse_vivotek,
}
