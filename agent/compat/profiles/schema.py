"""The firmware profile schema: what one vendor's TOML file may say, validated as it is read.

The models below are the schema `firmware_profiles/README.md` describes in words; a file that
does not fit them is refused with the field and the reason. The name and model normalisation
that the schema's patterns assume lives here too, so that matching and assessment compare a
camera's identifiers exactly the way the patterns were stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from fnmatch import fnmatchcase
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agent.compat.versions import VersionStyle, parse_version
from agent.config import ID_PATTERN
from agent.quirks import CUSTOM_QUIRK_PATTERN, QuirkId

SCHEMA_VERSION = 1


def _check_source(value: str) -> str:
    parts = urlsplit(value)
    spaced = any(c.isspace() for c in value)
    if parts.scheme not in ("http", "https") or not parts.hostname or spaced:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


def _check_model_pattern(value: str) -> str:
    if not value.strip() or len(value) > 80 or not value.isprintable():
        raise ValueError(f"not a model pattern: {value!r}")
    return normalise_model(value)


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


def normalise_model(value: str) -> str:
    """A model name or model glob as stored and compared: upper case, `_` as space, single
    spaces."""
    return " ".join(value.replace("_", " ").upper().split())


def normalise_name(value: str) -> str:
    """A manufacturer name as compared: without case or punctuation."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", value.casefold()).split())


def model_matches(model: str, patterns: Iterable[str]) -> bool:
    """`model` fits one of the (normalised) model globs."""
    norm = normalise_model(model)
    return any(fnmatchcase(norm, pattern) for pattern in patterns)
