"""Firmware profiles: what is publicly known about each camera vendor, and how to use it.

One TOML file per vendor in `firmware_profiles/` (see its README for the schema in words).
`load_profiles()` validates every file against the models below and fails with every problem
at once; `ProfileSet` recognises a camera from what ONVIF and WS-Discovery report, lists the
RTSP paths worth trying, and checks a firmware string against the published advisories and
known ONVIF defects. A check that cannot be decided says "unknown", never "safe".
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.compat.versions import (
    FirmwareVersion,
    VersionStyle,
    compare_to_release,
    parse_version,
)
from agent.config import ID_PATTERN
from agent.log import get_logger
from agent.quirks import CUSTOM_QUIRK_PATTERN, QuirkId

log = get_logger(__name__)

PROFILES_ENV = "RTCC_EDGE_FIRMWARE_PROFILES"
SCHEMA_VERSION = 1
MAX_PROFILE_BYTES = 512 * 1024
# Identifiers longer than this are not a real camera's; they are ignored rather than matched.
MAX_IDENTIFIER_LENGTH = 256


class ProfileError(ValueError):
    """One or more profile files are missing, unreadable or invalid; `problems` lists each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid firmware profiles:\n  " + "\n  ".join(self.problems))


def _check_source(value: str) -> str:
    parts = urlsplit(value)
    spaced = any(c.isspace() for c in value)
    if parts.scheme not in ("http", "https") or not parts.hostname or spaced:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


def _check_model_pattern(value: str) -> str:
    if not value.strip() or len(value) > 80 or not value.isprintable():
        raise ValueError(f"not a model pattern: {value!r}")
    return _normalise_model(value)


def _check_rtsp_path(value: str) -> str:
    if (
        not value.startswith("/")
        or len(value) > 200
        or "://" in value
        or "@" in value
        or any(c.isspace() or not c.isprintable() for c in value)
    ):
        raise ValueError(f"not an RTSP path: {value!r} (absolute, no host, no credentials)")
    return value


# A recorder path names its channel with one of these: {channel} counts from 1, {channel0} from 0
# (Hanwha), {channel:02} from 1 in two digits (Reolink's 01, 02, …).
CHANNEL_PLACEHOLDERS = ("{channel}", "{channel0}", "{channel:02}")


def render_channel_path(template: str, channel: int) -> str:
    """A recorder path template with its channel placeholder filled in (channel from 1)."""
    return (
        template.replace("{channel:02}", f"{channel:02d}")
        .replace("{channel0}", str(channel - 1))
        .replace("{channel}", str(channel))
    )


def _check_channel_path(value: str) -> str:
    if sum(value.count(p) for p in CHANNEL_PLACEHOLDERS) != 1 or value.count("{") != 1:
        wanted = ", ".join(CHANNEL_PLACEHOLDERS)
        raise ValueError(f"not a recorder path: {value!r} (needs exactly one of {wanted})")
    _check_rtsp_path(render_channel_path(value, 1))
    return value


SourceUrl = Annotated[str, AfterValidator(_check_source)]
ChannelPathText = Annotated[str, AfterValidator(_check_channel_path)]
ModelPattern = Annotated[str, AfterValidator(_check_model_pattern)]
RtspPathText = Annotated[str, AfterValidator(_check_rtsp_path)]
VendorId = Annotated[str, Field(pattern=ID_PATTERN)]
Port = Annotated[int, Field(ge=1, le=65535)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Oui = Annotated[str, Field(pattern=r"^[0-9A-F]{2}(:[0-9A-F]{2}){2}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchRules(_Model):
    """How a camera is recognised as this vendor's."""

    manufacturers: tuple[Text, ...] = Field(
        default=(), title="Manufacturer names and aliases, compared without case or punctuation"
    )
    models: tuple[ModelPattern, ...] = Field(default=(), title="Model globs unique to the vendor")
    scopes: tuple[Text, ...] = Field(default=(), title="Substrings of WS-Discovery scopes")
    ouis: tuple[Oui, ...] = Field(default=(), title="MAC address prefixes (OUI)")
    oem_of: VendorId | None = Field(default=None, title="Vendor whose firmware this brand ships")
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()

    @model_validator(mode="after")
    def _something_to_match(self) -> MatchRules:
        if not (self.manufacturers or self.models or self.scopes or self.ouis):
            raise ValueError("give at least one of manufacturers, models, scopes, ouis")
        return self


class OnvifDefaults(_Model):
    ports: tuple[Port, ...] = Field(min_length=1, title="ONVIF HTTP ports, most likely first")
    device_service_path: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9_./-]{1,100}$")
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()


class RtspPath(_Model):
    stream: Literal["main", "sub"]
    path: RtspPathText
    models: tuple[ModelPattern, ...] = Field(default=("*",), min_length=1)
    note: Text | None = None
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()


class RtspDefaults(_Model):
    port: Port = 554
    scheme: Literal["rtsp", "rtsps"] = "rtsp"
    paths: tuple[RtspPath, ...] = ()
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()


class RecorderPath(_Model):
    stream: Literal["main", "sub"]
    path: ChannelPathText
    note: Text | None = None
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()


class RecorderDefaults(_Model):
    """The vendor's NVRs/DVRs: which models are recorders, and their per-channel RTSP paths
    (for recorders whose ONVIF media does not work)."""

    models: tuple[ModelPattern, ...] = Field(default=(), title="Recorder model globs")
    port: Port | None = Field(default=None, title="RTSP port, when not the vendor's [rtsp] port")
    paths: tuple[RecorderPath, ...] = ()
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()


class Quirk(_Model):
    id: str = Field(title="A QuirkId, or x_<name> for a vendor-specific one")
    summary: Text
    symptom: Text
    workaround: Text
    models: tuple[ModelPattern, ...] = Field(default=("*",), min_length=1)
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()

    @field_validator("id")
    @classmethod
    def _known_or_custom(cls, value: str) -> str:
        if value in {q.value for q in QuirkId} or re.fullmatch(CUSTOM_QUIRK_PATTERN, value):
            return value
        known = ", ".join(q.value for q in QuirkId)
        raise ValueError(f"unknown quirk {value!r}: use one of {known}, or x_<name>")


class VersionRange(_Model):
    """Which firmware of which models a published fact covers.

    compare = "version": bounds are firmware strings in the vendor's style; `introduced` and
    `last_affected` are inclusive, `fixed` is the first release known not to be affected.
    compare = "build_date": bounds are ISO dates compared with the firmware's build date.
    `exact` lists releases named as affected (a release without a build names all its builds).
    """

    models: tuple[ModelPattern, ...] = Field(min_length=1)
    compare: Literal["version", "build_date"] = "version"
    introduced: str | None = None
    last_affected: str | None = None
    fixed: str | None = None
    exact: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _has_a_bound(self) -> VersionRange:
        if self.last_affected is None and self.fixed is None and not self.exact:
            raise ValueError("give at least one of last_affected, fixed, exact")
        if self.exact and self.compare == "build_date":
            raise ValueError("exact releases need compare = 'version'")
        return self

    def bounds(self) -> Iterable[tuple[str, str]]:
        for name in ("introduced", "last_affected", "fixed"):
            value = getattr(self, name)
            if value is not None:
                yield name, value
        for value in self.exact:
            yield "exact", value


class Vulnerability(_Model):
    cve: str = Field(pattern=r"^CVE-\d{4}-\d{4,7}$")
    summary: Text
    severity: Literal["critical", "high", "medium", "low"] | None = None
    cvss: float | None = Field(default=None, ge=0.0, le=10.0)
    known_exploited: bool = Field(default=False, title="Listed in CISA's KEV catalog")
    remedy: Text = Field(title="The fixed firmware, in words the technician can act on")
    affected: tuple[VersionRange, ...] = Field(min_length=1)
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()


class OnvifDefect(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{1,60}$")
    summary: Text
    symptom: Text
    workaround: Text
    models: tuple[ModelPattern, ...] = Field(default=("*",), min_length=1)
    affected: tuple[VersionRange, ...] = Field(
        default=(), title="Firmware ranges; empty when the report names no firmware"
    )
    source: SourceUrl
    references: tuple[SourceUrl, ...] = ()


class VendorProfile(_Model):
    schema_version: Literal[1]
    id: VendorId
    name: Text
    firmware_style: VersionStyle
    advisories_reviewed: date = Field(
        title="When the vendor's published advisories were last compared with this file"
    )
    match: MatchRules
    onvif: OnvifDefaults | None = None
    rtsp: RtspDefaults | None = None
    recorder: RecorderDefaults | None = None
    quirks: tuple[Quirk, ...] = ()
    vulnerabilities: tuple[Vulnerability, ...] = ()
    onvif_defects: tuple[OnvifDefect, ...] = ()

    @model_validator(mode="after")
    def _bounds_parse(self) -> VendorProfile:
        problems: list[str] = []
        ranges = [
            (f"vulnerabilities[{v.cve}]", r) for v in self.vulnerabilities for r in v.affected
        ]
        ranges += [(f"onvif_defects[{d.id}]", r) for d in self.onvif_defects for r in d.affected]
        for where, rng in ranges:
            lines: set[str | None] = set()
            for name, text in rng.bounds():
                if rng.compare == "build_date":
                    try:
                        date.fromisoformat(text)
                    except ValueError:
                        problems.append(f"{where}.{name}: {text!r} is not an ISO date")
                    continue
                parsed = parse_version(text, self.firmware_style)
                if parsed is None:
                    problems.append(
                        f"{where}.{name}: {text!r} is not a {self.firmware_style} firmware version"
                    )
                else:
                    lines.add(parsed.line)
            if len(lines) > 1:
                problems.append(f"{where}: bounds mix firmware lines {sorted(map(str, lines))}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


T = TypeVar("T", Vulnerability, OnvifDefect)


@dataclass(frozen=True, slots=True)
class Finding(Generic[T]):
    """A vulnerability or defect that applies (`affected`) or may apply (`unknown`)."""

    item: T
    status: Literal["affected", "unknown"]
    reason: str


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
class Coverage:
    """Whether the published advisories in a profile speak about this model and firmware line
    at all: without that, "no vulnerability found" means "no data", never "safe"."""

    covered: bool
    reason: str
    reviewed: date


@dataclass(frozen=True, slots=True)
class ChannelPath:
    """A recorder path template matched against a concrete path: whose, which stream, which
    channel."""

    vendor_id: str
    stream: Literal["main", "sub"]
    channel: int
    template: str


RangeStatus = Literal["other_line", "affected", "unknown", "not_affected"]


def _usable(value: str | None) -> str | None:
    if value is None or len(value) > MAX_IDENTIFIER_LENGTH or not value.isprintable():
        return None
    return value


def _normalise_model(value: str) -> str:
    return " ".join(value.replace("_", " ").upper().split())


def _normalise_name(value: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", value.casefold()).split())


def _model_matches(model: str, patterns: Iterable[str]) -> bool:
    norm = _normalise_model(model)
    return any(fnmatchcase(norm, pattern) for pattern in patterns)


def default_profiles_dir() -> Path:
    """$RTCC_EDGE_FIRMWARE_PROFILES; else `firmware_profiles/` of the source checkout (editable
    installs, tests); else the copy a wheel installs under `<prefix>/share/rtcc-edge/`."""
    configured = os.environ.get(PROFILES_ENV)
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[2] / "firmware_profiles"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "rtcc-edge" / "firmware_profiles"


def load_profiles(path: Path | None = None) -> ProfileSet:
    """Load and validate every `*.toml` in `path`; raise ProfileError naming every problem."""
    directory = path if path is not None else default_profiles_dir()
    if not directory.is_dir():
        raise ProfileError([f"{directory}: not a directory of firmware profiles"])
    problems: list[str] = []
    profiles: list[VendorProfile] = []
    files = sorted(directory.glob("*.toml"))
    if not files:
        problems.append(f"{directory}: no *.toml profile files")
    for file in files:
        profile = _load_file(file, problems)
        if profile is not None:
            profiles.append(profile)
    problems.extend(_cross_check(profiles))
    if problems:
        raise ProfileError(problems)
    log.debug("firmware_profiles_loaded", directory=str(directory), vendors=len(profiles))
    return ProfileSet(profiles)


def _load_file(file: Path, problems: list[str]) -> VendorProfile | None:
    try:
        if file.stat().st_size > MAX_PROFILE_BYTES:
            problems.append(f"{file.name}: larger than {MAX_PROFILE_BYTES} bytes")
            return None
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{file.name}: cannot read: {exc}")
        return None
    try:
        profile = VendorProfile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"{file.name}: {where}: {error['msg']}")
        return None
    if profile.id != file.stem:
        problems.append(f"{file.name}: id {profile.id!r} must equal the file name")
    return profile


def _cross_check(profiles: Sequence[VendorProfile]) -> list[str]:
    problems: list[str] = []
    ids = [p.id for p in profiles]
    for vendor_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"vendor id {vendor_id!r} is used by more than one file")
    known = set(ids)
    owners: dict[str, str] = {}
    for profile in profiles:
        parent = profile.match.oem_of
        if parent is not None and (parent not in known or parent == profile.id):
            problems.append(f"{profile.id}.toml: match.oem_of {parent!r} is not another vendor")
        for alias in profile.match.manufacturers:
            key = _normalise_name(alias)
            if not key:
                problems.append(f"{profile.id}.toml: manufacturer alias {alias!r} is empty")
            elif owners.setdefault(key, profile.id) != profile.id:
                problems.append(
                    f"{profile.id}.toml: manufacturer alias {alias!r} also belongs to "
                    f"{owners[key]!r}"
                )
    return problems


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
                elif match.model is not None and _model_matches(match.model, entry.models):
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
            if match.model is None or _model_matches(match.model, quirk.models)
        ]

    def vulnerabilities(
        self, match: ProfileMatch, firmware: str | None
    ) -> list[Finding[Vulnerability]]:
        """Published vulnerabilities that affect, or may affect, this model and firmware."""
        profile = self._by_id[match.vendor_id]
        findings: list[Finding[Vulnerability]] = []
        for vuln in profile.vulnerabilities:
            verdict = _assess(profile.firmware_style, vuln.affected, match.model, firmware)
            if verdict is not None:
                status, reason = verdict
                findings.append(Finding(vuln, status, f"{reason}; {vuln.remedy}"))
        return findings

    def onvif_defects(
        self, match: ProfileMatch, firmware: str | None
    ) -> list[Finding[OnvifDefect]]:
        """Reported ONVIF defects for this model; `unknown` where no firmware range is known."""
        profile = self._by_id[match.vendor_id]
        findings: list[Finding[OnvifDefect]] = []
        for defect in profile.onvif_defects:
            if match.model is not None and not _model_matches(match.model, defect.models):
                continue
            if not defect.affected:
                findings.append(
                    Finding(defect, "unknown", "reported for this vendor; no firmware range known")
                )
                continue
            verdict = _assess(profile.firmware_style, defect.affected, match.model, firmware)
            if verdict is not None:
                findings.append(Finding(defect, verdict[0], verdict[1]))
        return findings

    def coverage(self, match: ProfileMatch, firmware: str | None) -> Coverage:
        """Whether this vendor's published advisories cover the camera's model and firmware
        line (see `Coverage`); the reason names what was known, and as of when."""
        profile = self._by_id[match.vendor_id]
        reviewed = profile.advisories_reviewed
        as_of = f"advisories reviewed {reviewed.isoformat()}"
        ranges = [r for v in profile.vulnerabilities for r in v.affected]
        if not ranges:
            return Coverage(
                False,
                f"the {profile.name} profile lists no published vulnerability ({as_of})",
                reviewed,
            )
        if match.model is None:
            relevant = [r for r in ranges if "*" in r.models]
            if not relevant:
                return Coverage(
                    False,
                    f"the camera did not report its model, and every {profile.name} advisory "
                    f"on file names particular models ({as_of})",
                    reviewed,
                )
        else:
            relevant = [r for r in ranges if _model_matches(match.model, r.models)]
            if not relevant:
                return Coverage(
                    False,
                    f"no published {profile.name} advisory on file names model {match.model} "
                    f"({as_of})",
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

    # -- recorders ----------------------------------------------------------------------------

    def is_recorder_model(self, match: ProfileMatch) -> bool:
        """The firmware profiles list this model as one of the vendor's NVRs/DVRs."""
        if match.model is None:
            return False
        return any(
            p.recorder is not None and _model_matches(match.model, p.recorder.models)
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
        name = _normalise_name(manufacturer)
        for alias in rules.manufacturers:
            key = _normalise_name(alias)
            if name == key:
                score, reasons = 100, [f"manufacturer {manufacturer!r} is {profile.name}"]
                break
            if key and f" {key} " in f" {name} " and score < 80:
                score, reasons = 80, [f"manufacturer {manufacturer!r} names {alias!r}"]
    recorders = profile.recorder.models if profile.recorder is not None else ()
    if model and (rules.models or recorders) and _model_matches(model, (*rules.models, *recorders)):
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
        relevant = [r for r in ranges if _model_matches(model, r.models)]
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
