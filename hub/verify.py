"""`rtcc-hub verify CLIP MANIFEST`: is this the footage the site signed for, and does it cover
what was asked? Works offline on copies of the two files.

Checks, each `ok`, `warn` or `fail` (any `fail` fails the verification):

1. **manifest** — a compact JWS of a manifest (`typ: rtcc-manifest+jwt`), claims that match the
   wire contract (`agent.wire.Manifest`);
2. **signature** — by the site's registered device key (`sites trust` / enrollment), or by the
   key given with `--site-key`;
3. **sha256** and **size** of the file against the manifest;
4. **media** — the file is what the manifest says: codec, width, height, and for a clip the
   frame count and duration (read with PyAV, nothing decoded);
5. **window** — a clip's actual window (first to last frame) covers the requested one, except
   for gaps the manifest declares (each reported as a warning); a stretch missing and not
   declared fails. A snapshot's frame is reported with its distance from the requested moment;
6. **request** (with `--from/--to`) — the manifest's requested window is the one the analyst
   asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import jwt
from pydantic import ValidationError

from agent.identity import JwsError, verify_device_jws
from agent.wire import Manifest
from agent.wire.manifest import MANIFEST_TYP, Window
from hub.state import TrustedSite

MAX_MANIFEST_BYTES = 1024 * 1024
_DURATION_SLACK = 1.0  # seconds between the file's length and the manifest's window
_SNAPSHOT_NEAR = 1.0  # a snapshot frame this close to the requested moment is fine
_REQUEST_SLACK = timedelta(milliseconds=1)

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)
    manifest: Manifest | None = None
    site: str | None = None

    @property
    def ok(self) -> bool:
        return not any(check.status == "fail" for check in self.checks)

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def to_json(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "ok": self.ok,
            "site": self.site,
            "request": manifest.req if manifest else None,
            "case": manifest.case if manifest else None,
            "camera": manifest.camera.id if manifest else None,
            "kind": manifest.kind if manifest else None,
            "requested": _window_json(manifest.requested) if manifest else None,
            "actual": _window_json(manifest.actual) if manifest else None,
            "gaps": [_window_json(gap) for gap in manifest.gaps] if manifest else [],
            "checks": [check.to_json() for check in self.checks],
        }


def _window_json(window: Window) -> dict[str, str]:
    return {"start": window.start.isoformat(), "end": window.end.isoformat()}


def read_manifest_text(path: Path) -> str:
    """The JWS in a manifest file (as PUT to `manifest_url`, or saved from the event)."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path} is larger than a manifest can be")
    return raw.decode("ascii", "replace").strip()


def verify_files(
    clip: Path,
    manifest_text: str,
    *,
    trusted: Mapping[str, TrustedSite],
    site_key: Mapping[str, Any] | None = None,
    expect_window: tuple[datetime, datetime] | None = None,
) -> Verification:
    """Run every check (see the module docstring); never raises for what the files contain."""
    result = Verification()
    claims = _signed_claims(result, manifest_text, trusted, site_key)
    if claims is None:
        return result
    try:
        manifest = Manifest.model_validate(claims)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "claims"
        result.add("manifest", "fail", f"not a valid manifest: {where}: {first['msg']}")
        return result
    if manifest.site != manifest.iss:
        result.add("manifest", "fail", f"site {manifest.site!r} is not the signer {manifest.iss!r}")
        return result
    result.manifest = manifest
    result.add(
        "manifest",
        "ok",
        f"{manifest.kind} of camera {manifest.camera.id} for request {manifest.req}, "
        f"case {manifest.case}",
    )
    if not _file_checks(result, clip, manifest):
        return result
    _media_check(result, clip, manifest)
    if manifest.kind == "clip":
        _window_check(result, manifest)
    else:
        _moment_check(result, manifest)
    if expect_window is not None:
        _request_check(result, manifest, expect_window)
    return result


def _signed_claims(
    result: Verification,
    token: str,
    trusted: Mapping[str, TrustedSite],
    site_key: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        result.add("manifest", "fail", f"not a JWS: {exc}")
        return None
    if header.get("typ") != MANIFEST_TYP:
        result.add("manifest", "fail", f"not a manifest (typ {header.get('typ')!r})")
        return None
    site = unverified.get("iss")
    result.site = site if isinstance(site, str) else None
    if site_key is not None:
        jwk, whose = site_key, "the given key"
    elif result.site is not None and result.site in trusted:
        jwk, whose = trusted[result.site].jwk, f"{result.site}'s registered device key"
    else:
        result.add(
            "signature",
            "fail",
            f"no device key is registered for site {site!r}: `rtcc-hub sites trust` it, "
            "or give --site-key",
        )
        return None
    try:
        claims = verify_device_jws(token, jwk)
    except JwsError as exc:
        result.add("signature", "fail", f"not signed by {whose}: {exc}")
        return None
    result.add("signature", "ok", f"signed by {whose} ({header.get('kid')})")
    return claims


def _file_checks(result: Verification, path: Path, manifest: Manifest) -> bool:
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        result.add("sha256", "fail", f"cannot read {path}: {exc.strerror}")
        return False
    expected = manifest.file
    if digest.hexdigest() == expected.sha256:
        result.add("sha256", "ok", expected.sha256)
    else:
        result.add("sha256", "fail", f"{digest.hexdigest()} is not the signed {expected.sha256}")
    if size == expected.bytes:
        result.add("size", "ok", f"{size:,} bytes")
    else:
        result.add("size", "fail", f"{size:,} bytes, the manifest says {expected.bytes:,}")
    return result.ok


def _media_check(result: Verification, path: Path, manifest: Manifest) -> None:
    expected = manifest.file
    try:
        with av.open(str(path), "r") as container:
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            width, height = stream.codec_context.width, stream.codec_context.height
            frames = 0
            end = Fraction(0)
            start: Fraction | None = None
            time_base = Fraction(stream.time_base or 1)
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                frames += 1
                begin = packet.pts * time_base
                start = begin if start is None else min(start, begin)
                end = max(end, (packet.pts + (packet.duration or 0)) * time_base)
    except (av.FFmpegError, IndexError, OSError) as exc:
        result.add("media", "fail", f"the file cannot be read as {expected.container}: {exc}")
        return
    problems = []
    if (codec, width, height) != (expected.codec, expected.width, expected.height):
        problems.append(
            f"{codec} {width}x{height}, the manifest says "
            f"{expected.codec} {expected.width}x{expected.height}"
        )
    if expected.frames is not None and frames != expected.frames:
        problems.append(f"{frames} frames, the manifest says {expected.frames}")
    duration = float(end - (start or 0))
    if expected.duration is not None and abs(duration - expected.duration) > _frame(manifest) * 2:
        problems.append(f"{duration:.3f} s long, the manifest says {expected.duration:.3f} s")
    if manifest.kind == "clip":
        span = (manifest.actual.end - manifest.actual.start).total_seconds()
        if abs(duration - span) > _DURATION_SLACK + _frame(manifest):
            problems.append(
                f"{duration:.3f} s long, but its first and last frames are {span:.3f} s apart"
            )
    if problems:
        result.add("media", "fail", "; ".join(problems))
        return
    what = f"{codec} {width}x{height}"
    if manifest.kind == "clip":
        what += f", {frames} frames, {duration:.3f} s"
    result.add("media", "ok", what)


def _frame(manifest: Manifest) -> float:
    """One frame interval of the clip, from its length and frame count (0.1 s if unknown)."""
    file = manifest.file
    if file.duration and file.frames:
        return min(1.0, max(0.01, file.duration / file.frames))
    return 0.1


def _window_check(result: Verification, manifest: Manifest) -> None:
    requested, actual = manifest.requested, manifest.actual
    slack = timedelta(seconds=2 * _frame(manifest))
    missing: list[tuple[datetime, datetime]] = []
    if actual.start > requested.start + slack:
        missing.append((requested.start, min(actual.start, requested.end)))
    if actual.end < requested.end - slack:
        missing.append((max(actual.end, requested.start), requested.end))
    inside = [
        gap for gap in manifest.gaps if gap.end > requested.start and gap.start < requested.end
    ]
    for gap in inside:
        seconds = (gap.end - gap.start).total_seconds()
        result.add(
            "gap",
            "warn",
            f"no footage {gap.start.isoformat()} to {gap.end.isoformat()} ({seconds:.1f} s), "
            "declared by the site",
        )
    undeclared = [
        (start, end)
        for start, end in missing
        if not any(g.start <= start + slack and g.end >= end - slack for g in manifest.gaps)
    ]
    if undeclared:
        text = "; ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in undeclared)
        result.add(
            "window", "fail", f"the clip does not cover {text} and the manifest does not say why"
        )
        return
    detail = (
        f"{actual.start.isoformat()} to {actual.end.isoformat()} covers the requested "
        f"{requested.start.isoformat()} to {requested.end.isoformat()}"
    )
    if inside:
        detail += f", except {len(inside)} declared gap{'s' if len(inside) > 1 else ''}"
    result.add("window", "ok", detail)


def _moment_check(result: Verification, manifest: Manifest) -> None:
    distance = (manifest.actual.start - manifest.requested.start).total_seconds()
    detail = (
        f"frame at {manifest.actual.start.isoformat()}, {abs(distance):.3f} s "
        f"{'after' if distance >= 0 else 'before'} the requested moment"
    )
    result.add("window", "ok" if abs(distance) <= _SNAPSHOT_NEAR else "warn", detail)


def _request_check(
    result: Verification, manifest: Manifest, expected: tuple[datetime, datetime]
) -> None:
    start, end = expected
    requested = manifest.requested
    if (
        abs(requested.start - start) <= _REQUEST_SLACK
        and abs(requested.end - end) <= _REQUEST_SLACK
    ):
        result.add("request", "ok", "the manifest is for the window asked for")
        return
    result.add(
        "request",
        "fail",
        f"the manifest is for {requested.start.isoformat()} to {requested.end.isoformat()}, "
        f"not the window asked for ({start.isoformat()} to {end.isoformat()})",
    )
