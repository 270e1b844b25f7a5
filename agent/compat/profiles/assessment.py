"""Assessment: a camera's model and firmware against one vendor's published advisories and
reported ONVIF defects.

Ranges combine as "affected" beats "unknown" beats "not affected"; a check that cannot be
decided (no model, no firmware, a firmware line no range speaks about) says "unknown", never
"safe", and `coverage` says whether the advisories on file speak about the camera at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Generic, Literal, TypeVar

from agent.compat.profiles.schema import (
    OnvifDefect,
    VendorProfile,
    VersionRange,
    Vulnerability,
    model_matches,
)
from agent.compat.versions import (
    FirmwareVersion,
    VersionStyle,
    compare_to_release,
    parse_version,
)

T = TypeVar("T", Vulnerability, OnvifDefect)


@dataclass(frozen=True, slots=True)
class Finding(Generic[T]):
    """A vulnerability or defect that applies (`affected`) or may apply (`unknown`)."""

    item: T
    status: Literal["affected", "unknown"]
    reason: str


@dataclass(frozen=True, slots=True)
class Coverage:
    """Whether the published advisories in a profile speak about this model and firmware line
    at all: without that, "no vulnerability found" means "no data", never "safe"."""

    covered: bool
    reason: str
    reviewed: date


RangeStatus = Literal["other_line", "affected", "unknown", "not_affected"]


def vulnerabilities(
    profile: VendorProfile, model: str | None, firmware: str | None
) -> list[Finding[Vulnerability]]:
    """Published vulnerabilities that affect, or may affect, this model and firmware."""
    findings: list[Finding[Vulnerability]] = []
    for vuln in profile.vulnerabilities:
        verdict = _assess(profile.firmware_style, vuln.affected, model, firmware)
        if verdict is not None:
            status, reason = verdict
            findings.append(Finding(vuln, status, f"{reason}; {vuln.remedy}"))
    return findings


def onvif_defects(
    profile: VendorProfile, model: str | None, firmware: str | None
) -> list[Finding[OnvifDefect]]:
    """Reported ONVIF defects for this model; `unknown` where no firmware range is known."""
    findings: list[Finding[OnvifDefect]] = []
    for defect in profile.onvif_defects:
        if model is not None and not model_matches(model, defect.models):
            continue
        if not defect.affected:
            findings.append(
                Finding(defect, "unknown", "reported for this vendor; no firmware range known")
            )
            continue
        verdict = _assess(profile.firmware_style, defect.affected, model, firmware)
        if verdict is not None:
            findings.append(Finding(defect, verdict[0], verdict[1]))
    return findings


def coverage(profile: VendorProfile, model: str | None, firmware: str | None) -> Coverage:
    """Whether this vendor's published advisories cover the camera's model and firmware line
    (see `Coverage`); the reason names what was known, and as of when."""
    reviewed = profile.advisories_reviewed
    as_of = f"advisories reviewed {reviewed.isoformat()}"
    ranges = [r for v in profile.vulnerabilities for r in v.affected]
    if not ranges:
        return Coverage(
            False,
            f"the {profile.name} profile lists no published vulnerability ({as_of})",
            reviewed,
        )
    if model is None:
        relevant = [r for r in ranges if "*" in r.models]
        if not relevant:
            return Coverage(
                False,
                f"the camera did not report its model, and every {profile.name} advisory "
                f"on file names particular models ({as_of})",
                reviewed,
            )
    else:
        relevant = [r for r in ranges if model_matches(model, r.models)]
        if not relevant:
            return Coverage(
                False,
                f"no published {profile.name} advisory on file names model {model} ({as_of})",
                reviewed,
            )
    version = parse_version(firmware, profile.firmware_style) if firmware else None
    if version is None:
        return Coverage(False, f"firmware {firmware!r} cannot be compared ({as_of})", reviewed)
    statuses = [_range_status(profile.firmware_style, r, version) for r in relevant]
    if all(status == "other_line" for status in statuses):
        return Coverage(
            False,
            f"the {profile.name} advisories on file for this model cover other firmware "
            f"lines than {firmware}'s ({as_of})",
            reviewed,
        )
    return Coverage(
        True,
        f"the {profile.name} advisories on file cover this model and firmware line ({as_of})",
        reviewed,
    )


def _assess(
    style: VersionStyle,
    ranges: Sequence[VersionRange],
    model: str | None,
    firmware: str | None,
) -> tuple[Literal["affected", "unknown"], str] | None:
    """Combine the ranges: affected beats unknown beats not affected; None when none apply."""
    if model is None:
        # Only ranges for every model can be judged; the others might be this camera's.
        relevant = [r for r in ranges if "*" in r.models]
        model_unknown = len(relevant) < len(ranges)
    else:
        relevant = [r for r in ranges if model_matches(model, r.models)]
        model_unknown = False
    verdict = _assess_firmware(style, relevant, firmware) if relevant else None
    if model_unknown and (verdict is None or verdict[0] != "affected"):
        return "unknown", "the camera did not report its model"
    return verdict


def _assess_firmware(
    style: VersionStyle, relevant: Sequence[VersionRange], firmware: str | None
) -> tuple[Literal["affected", "unknown"], str] | None:
    if firmware is None or not firmware.strip():
        return "unknown", "the camera did not report its firmware version"
    version = parse_version(firmware, style)
    if version is None:
        return "unknown", f"firmware {firmware!r} is not in the {style} format this data uses"
    statuses = [_range_status(style, rng, version) for rng in relevant]
    if "affected" in statuses:
        return "affected", f"firmware {firmware!r} is in the published affected range"
    if "unknown" in statuses:
        return "unknown", f"cannot tell whether firmware {firmware!r} is affected"
    if "not_affected" in statuses:
        return None
    return "unknown", f"no published range covers the firmware line of {firmware!r}"


def _range_status(style: VersionStyle, rng: VersionRange, version: FirmwareVersion) -> RangeStatus:
    if rng.compare == "build_date":
        return _date_status(rng, version.build_date)
    refs = {name: parse_version(text, style) for name, text in rng.bounds() if name != "exact"}
    exact = [parse_version(text, style) for text in rng.exact]
    sample = next((v for v in [*refs.values(), *exact] if v is not None), None)
    if sample is not None and sample.line != version.line:
        return "other_line"
    for release in exact:
        if release is None:
            return "unknown"
        order = compare_to_release(version, release)
        if order is None:
            return "unknown"
        if order == 0:
            return "affected"
    if not refs:
        return "not_affected"
    return _bounded_status(
        version, refs.get("introduced"), refs.get("last_affected"), refs.get("fixed")
    )


def _bounded_status(
    version: FirmwareVersion,
    introduced: FirmwareVersion | None,
    last_affected: FirmwareVersion | None,
    fixed: FirmwareVersion | None,
) -> RangeStatus:
    if introduced is not None:
        order = compare_to_release(version, introduced)
        if order is None:
            return "unknown"
        if order < 0:
            return "not_affected"
    if fixed is not None:
        order = compare_to_release(version, fixed)
        if order is None:
            return "unknown"
        if order >= 0:
            return "not_affected"
    if last_affected is not None:
        order = compare_to_release(version, last_affected)
        if order is None:
            return "unknown"
        # Past the last release known to be affected but before any known fix: cannot tell.
        return "affected" if order <= 0 else "unknown"
    return "affected"


def _date_status(rng: VersionRange, built: date | None) -> RangeStatus:
    if built is None:
        return "unknown"
    if rng.introduced is not None and built < date.fromisoformat(rng.introduced):
        return "not_affected"
    if rng.fixed is not None and built >= date.fromisoformat(rng.fixed):
        return "not_affected"
    if rng.last_affected is not None:
        return "affected" if built <= date.fromisoformat(rng.last_affected) else "unknown"
    return "affected"
