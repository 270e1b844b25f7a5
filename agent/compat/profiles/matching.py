"""Matching: which vendor a camera is, from what ONVIF and WS-Discovery report, and what its
profile says to try (RTSP paths and ports, ONVIF defaults, quirks, recorder channel paths).

`ProfileSet` is the validated profiles with the questions the agent asks of them; the firmware
questions it answers through `agent.compat.profiles.assessment`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agent.compat.profiles import assessment
from agent.compat.profiles.assessment import Coverage, Finding
from agent.compat.profiles.schema import (
    CHANNEL_PLACEHOLDERS,
    OnvifDefaults,
    OnvifDefect,
    Quirk,
    RtspDefaults,
    VendorProfile,
    Vulnerability,
    model_matches,
    normalise_name,
    render_channel_path,
)
from agent.compat.versions import parse_version
from agent.log import get_logger

log = get_logger(__name__)

# Identifiers longer than this are not a real camera's; they are ignored rather than matched.
MAX_IDENTIFIER_LENGTH = 256


@dataclass(frozen=True, slots=True)
class ProfileMatch:
    """Which vendor a camera is, how sure we are, and why (in words for the technician)."""

    vendor_id: str
    vendor_name: str
    confidence: Literal["high", "medium", "low"]
    reasons: tuple[str, ...]
    manufacturer: str | None
    model: str | None
    oem_of: str | None


@dataclass(frozen=True, slots=True)
class ChannelPath:
    """A recorder path template matched against a concrete path: whose, which stream, which
    channel."""

    vendor_id: str
    stream: Literal["main", "sub"]
    channel: int
    template: str


def _usable(value: str | None) -> str | None:
    if value is None or len(value) > MAX_IDENTIFIER_LENGTH or not value.isprintable():
        return None
    return value


class ProfileSet:
    """The validated profiles, with the questions the agent asks of them."""

    def __init__(self, profiles: Sequence[VendorProfile]) -> None:
        self._by_id = {p.id: p for p in profiles}

    @property
    def vendors(self) -> tuple[VendorProfile, ...]:
        return tuple(self._by_id.values())

    def get(self, vendor_id: str) -> VendorProfile:
        return self._by_id[vendor_id]

    def match(
        self,
        *,
        manufacturer: str | None,
        model: str | None,
        firmware: str | None = None,
        scopes: Sequence[str] = (),
        mac: str | None = None,
    ) -> ProfileMatch | None:
        """The vendor these identifiers point to, or None when nothing (or a tie) matches."""
        manufacturer, model = _usable(manufacturer), _usable(model)
        firmware, mac = _usable(firmware), _usable(mac)
        scopes = [s for s in scopes[:64] if _usable(s) is not None]
        scored: list[tuple[int, VendorProfile, list[str]]] = []
        for profile in self._by_id.values():
            score, reasons = _score(profile, manufacturer, model, firmware, scopes, mac)
            if score > 0:
                scored.append((score, profile, reasons))
        if not scored:
            return None
        scored.sort(key=lambda item: item[0], reverse=True)
        best_score, best, reasons = scored[0]
        if len(scored) > 1 and scored[1][0] == best_score:
            log.debug("profile_match_ambiguous", vendors=[s[1].id for s in scored[:2]])
            return None
        confidence: Literal["high", "medium", "low"] = (
            "high" if best_score >= 90 else "medium" if best_score >= 70 else "low"
        )
        return ProfileMatch(
            vendor_id=best.id,
            vendor_name=best.name,
            confidence=confidence,
            reasons=tuple(reasons),
            manufacturer=manufacturer,
            model=model,
            oem_of=best.match.oem_of,
        )

    def rtsp_candidates(self, match: ProfileMatch, *, stream: Literal["main", "sub"]) -> list[str]:
        """RTSP paths to try, model-specific ones first, then the OEM parent's."""
        specific: list[str] = []
        generic: list[str] = []
        for profile in self._chain(match):
            if profile.rtsp is None:
                continue
            for entry in profile.rtsp.paths:
                if entry.stream != stream:
                    continue
                if entry.models == ("*",):
                    generic.append(entry.path)
                elif match.model is not None and model_matches(match.model, entry.models):
                    specific.append(entry.path)
        return list(dict.fromkeys(specific + generic))

    def rtsp_defaults(self, match: ProfileMatch) -> RtspDefaults | None:
        """The vendor's RTSP port and scheme, or its OEM parent's when it has none."""
        for profile in self._chain(match):
            if profile.rtsp is not None:
                return profile.rtsp
        return None

    def onvif_defaults(self, match: ProfileMatch) -> OnvifDefaults | None:
        """The vendor's ONVIF ports and device service path, or its OEM parent's."""
        for profile in self._chain(match):
            if profile.onvif is not None:
                return profile.onvif
        return None

    def quirks(self, match: ProfileMatch) -> list[Quirk]:
        """The vendor's quirks that apply to the matched model (unknown model: all of them)."""
        profile = self._by_id[match.vendor_id]
        return [
            quirk
            for quirk in profile.quirks
            if match.model is None or model_matches(match.model, quirk.models)
        ]

    def vulnerabilities(
        self, match: ProfileMatch, firmware: str | None
    ) -> list[Finding[Vulnerability]]:
        """Published vulnerabilities that affect, or may affect, this model and firmware."""
        return assessment.vulnerabilities(self._by_id[match.vendor_id], match.model, firmware)

    def onvif_defects(
        self, match: ProfileMatch, firmware: str | None
    ) -> list[Finding[OnvifDefect]]:
        """Reported ONVIF defects for this model; `unknown` where no firmware range is known."""
        return assessment.onvif_defects(self._by_id[match.vendor_id], match.model, firmware)

    def coverage(self, match: ProfileMatch, firmware: str | None) -> Coverage:
        """Whether this vendor's published advisories cover the camera's model and firmware
        line (see `Coverage`); the reason names what was known, and as of when."""
        return assessment.coverage(self._by_id[match.vendor_id], match.model, firmware)

    # -- recorders ----------------------------------------------------------------------------

    def is_recorder_model(self, match: ProfileMatch) -> bool:
        """The firmware profiles list this model as one of the vendor's NVRs/DVRs."""
        if match.model is None:
            return False
        return any(
            p.recorder is not None and model_matches(match.model, p.recorder.models)
            for p in self._chain(match)
        )

    def recorder_paths(
        self, match: ProfileMatch, *, stream: Literal["main", "sub"], channel: int
    ) -> list[str]:
        """The vendor's recorder RTSP paths for `channel` (then its OEM parent's)."""
        paths = [
            render_channel_path(entry.path, channel)
            for profile in self._chain(match)
            if profile.recorder is not None
            for entry in profile.recorder.paths
            if entry.stream == stream
        ]
        return list(dict.fromkeys(paths))

    def recorder_port(self, match: ProfileMatch) -> int | None:
        """The RTSP port of the vendor's recorders, when it is not the vendor's usual one."""
        for profile in self._chain(match):
            if profile.recorder is not None and profile.recorder.port is not None:
                return profile.recorder.port
        return None

    def channel_path(self, path: str) -> ChannelPath | None:
        """Which vendor's recorder path `path` (with its query) is, and for which channel."""
        for profile in self.vendors:
            if profile.recorder is None:
                continue
            for entry in profile.recorder.paths:
                channel = _channel_in(entry.path, path)
                if channel is not None:
                    return ChannelPath(profile.id, entry.stream, channel, entry.path)
        return None

    def recorder_counterpart(
        self, found: ChannelPath, *, want: Literal["main", "sub"]
    ) -> str | None:
        """The `want` stream's path of the same recorder channel, if the profile lists one."""
        entries = list(self._by_id[found.vendor_id].recorder.paths)  # type: ignore[union-attr]
        index = next(i for i, e in enumerate(entries) if e.path == found.template)
        step = 1 if want == "sub" else -1
        position = index + step
        while 0 <= position < len(entries) and entries[position].stream == want:
            return render_channel_path(entries[position].path, found.channel)
        return None

    def _chain(self, match: ProfileMatch) -> list[VendorProfile]:
        chain = [self._by_id[match.vendor_id]]
        if match.oem_of is not None and match.oem_of in self._by_id:
            chain.append(self._by_id[match.oem_of])
        return chain


def _score(
    profile: VendorProfile,
    manufacturer: str | None,
    model: str | None,
    firmware: str | None,
    scopes: Sequence[str],
    mac: str | None,
) -> tuple[int, list[str]]:
    rules = profile.match
    score = 0
    reasons: list[str] = []
    if manufacturer:
        name = normalise_name(manufacturer)
        for alias in rules.manufacturers:
            key = normalise_name(alias)
            if name == key:
                score, reasons = 100, [f"manufacturer {manufacturer!r} is {profile.name}"]
                break
            if key and f" {key} " in f" {name} " and score < 80:
                score, reasons = 80, [f"manufacturer {manufacturer!r} names {alias!r}"]
    recorders = profile.recorder.models if profile.recorder is not None else ()
    if model and (rules.models or recorders) and model_matches(model, (*rules.models, *recorders)):
        score += 10 if score else 60
        reasons.append(f"model {model!r} follows {profile.name}'s naming")
    lowered = [s.casefold() for s in scopes]
    hint = next((h for h in rules.scopes if any(h.casefold() in s for s in lowered)), None)
    if hint is not None:
        score += 10 if score else 50
        reasons.append(f"WS-Discovery scope contains {hint!r}")
    if mac and rules.ouis:
        prefix = re.sub(r"[^0-9A-F]", "", mac.upper())[:6]
        if any(prefix == oui.replace(":", "") for oui in rules.ouis):
            score += 10 if score else 40
            reasons.append(f"MAC address {mac} has one of {profile.name}'s OUIs")
    if score and firmware and parse_version(firmware, profile.firmware_style) is not None:
        score += 5
        reasons.append(f"firmware {firmware!r} is in {profile.name}'s format")
    return score, reasons


def _channel_in(template: str, path: str) -> int | None:
    """The channel number (from 1) `path` has in `template`, or None if it does not fit."""
    placeholder = next(p for p in CHANNEL_PLACEHOLDERS if p in template)
    head, _, tail = template.partition(placeholder)
    digits = r"(\d{2})" if placeholder == "{channel:02}" else r"(\d{1,3})"
    found = re.fullmatch(re.escape(head) + digits + re.escape(tail), path)
    if found is None:
        return None
    number = int(found.group(1)) + (1 if placeholder == "{channel0}" else 0)
    return number if number >= 1 else None
