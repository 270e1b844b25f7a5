"""Loading the firmware profiles: find the directory, read every vendor's file, validate it
against the schema and check the files against each other, naming every problem at once."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from agent.compat.profiles.matching import ProfileSet
from agent.compat.profiles.schema import VendorProfile, normalise_name
from agent.log import get_logger

log = get_logger(__name__)

PROFILES_ENV = "RTCC_EDGE_FIRMWARE_PROFILES"
MAX_PROFILE_BYTES = 512 * 1024


class ProfileError(ValueError):
    """One or more profile files are missing, unreadable or invalid; `problems` lists each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid firmware profiles:\n  " + "\n  ".join(self.problems))


def default_profiles_dir() -> Path:
    """$RTCC_EDGE_FIRMWARE_PROFILES; else `firmware_profiles/` of the source checkout (editable
    installs, tests); else the copy a wheel installs under `<prefix>/share/rtcc-edge/`."""
    configured = os.environ.get(PROFILES_ENV)
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[3] / "firmware_profiles"
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
            key = normalise_name(alias)
            if not key:
                problems.append(f"{profile.id}.toml: manufacturer alias {alias!r} is empty")
            elif owners.setdefault(key, profile.id) != profile.id:
                problems.append(
                    f"{profile.id}.toml: manufacturer alias {alias!r} also belongs to "
                    f"{owners[key]!r}"
                )
    return problems
