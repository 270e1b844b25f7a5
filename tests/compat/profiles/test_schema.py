"""The schema: every shipped profile file fits it and names its sources, and bad data is
refused with every problem named."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.compat.profiles import ProfileError, ProfileSet, load_profiles
from agent.quirks import CUSTOM_QUIRK_PATTERN, QuirkId
from tests.compat.profiles.samples import PROFILE_FILES, VULN, minimal_profile

# camsim's persona quirks (issue 2): the agent must understand every one of them.
CAMSIM_QUIRKS = {
    "xaddr_zero_host",
    "xaddr_duplicate_port",
    "escaped_stream_uri",
    "no_get_services",
    "password_text_only",
    "http_digest_auth",
    "h265_main",
    "sub_352x240",
    "no_snapshot",
    "no_ws_discovery",
    "stream_uri_fails",
}


def _raw(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _entries(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every table in a profile that states a fact and so must name its source."""
    found: list[tuple[str, dict[str, Any]]] = [("match", data["match"])]
    for section in ("onvif", "rtsp"):
        if section in data:
            found.append((section, data[section]))
    found += [("rtsp.paths", p) for p in data.get("rtsp", {}).get("paths", [])]
    for key in ("quirks", "vulnerabilities", "onvif_defects"):
        found += [(key, entry) for entry in data.get(key, [])]
    return found


# --- the data -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_every_fact_has_a_source_url(path: Path) -> None:
    for where, entry in _entries(_raw(path)):
        source = entry.get("source")
        assert isinstance(source, str), f"{path.name}: {where} has no source"
        assert re.match(r"^https?://[^\s/]+\.[^\s/]+/\S*$", source), f"{path.name}: {source}"
        for reference in entry.get("references", []):
            assert re.match(r"^https?://\S+$", reference), f"{path.name}: {reference}"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_every_quirk_vulnerability_and_defect_is_explained_in_a_comment(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    headers = ("[[quirks]]", "[[vulnerabilities]]", "[[onvif_defects]]")
    for number, line in enumerate(lines):
        if line.strip() in headers:
            above = next((prev for prev in reversed(lines[:number]) if prev.strip()), "")
            assert above.lstrip().startswith("#"), f"{path.name}:{number + 1} has no comment"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_quirk_ids_come_from_the_vocabulary(path: Path) -> None:
    known = {q.value for q in QuirkId}
    for quirk in _raw(path).get("quirks", []):
        assert quirk["id"] in known or re.fullmatch(CUSTOM_QUIRK_PATTERN, quirk["id"])


def test_the_vocabulary_covers_every_camsim_quirk() -> None:
    assert {q.value for q in QuirkId} >= CAMSIM_QUIRKS


def test_vendor_ids_are_unique_and_name_their_files() -> None:
    ids = [_raw(path)["id"] for path in PROFILE_FILES]
    assert len(ids) == len(set(ids))
    assert ids == [path.stem for path in PROFILE_FILES]


def test_vulnerabilities_are_well_formed(profiles: ProfileSet) -> None:
    seen: set[tuple[str, str]] = set()
    for vendor in profiles.vendors:
        for vuln in vendor.vulnerabilities:
            assert (vendor.id, vuln.cve) not in seen
            seen.add((vendor.id, vuln.cve))
            assert vuln.remedy.strip()
    assert ("hikvision", "CVE-2021-36260") in seen
    assert ("dahua", "CVE-2021-33044") in seen
    assert ("tplink", "CVE-2021-4045") in seen


# --- the loader rejects bad data with every problem named -----------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is = not [toml", "cannot read"),
        (minimal_profile("acme", extra='colour = "red"'), "colour: Extra inputs are not permitted"),
        (
            minimal_profile("acme").replace('source = "https://example.org/acme"', ""),
            "match.source",
        ),
        (
            minimal_profile("acme").replace("https://example.org/acme", "ftp://x"),
            "not an http(s) URL",
        ),
        (minimal_profile("acme", match="models = []"), "give at least one of"),
        (
            minimal_profile(
                "acme",
                extra='[[quirks]]\nid = "made_up"\nsummary = "s"\nsymptom = "s"\n'
                'workaround = "w"\nsource = "https://example.org/q"',
            ),
            "unknown quirk 'made_up'",
        ),
        (
            minimal_profile("acme", extra=VULN.format(bound='fixed = "one.two"')),
            "not a dotted firmware",
        ),
        (
            minimal_profile(
                "acme", extra=VULN.format(bound='compare = "build_date"\nfixed = "2021-13-01"')
            ),
            "not an ISO date",
        ),
        (
            minimal_profile("acme", extra=VULN.format(bound="")),
            "give at least one of last_affected",
        ),
        (
            minimal_profile(
                "acme",
                extra='[rtsp]\nsource = "https://example.org/r"\n[[rtsp.paths]]\n'
                'stream = "main"\npath = "rtsp://admin:pw@host/x"\nsource = "https://example.org/p"',
            ),
            "not an RTSP path",
        ),
        (
            minimal_profile(
                "acme",
                extra='[recorder]\nsource = "https://example.org/r"\n[[recorder.paths]]\n'
                'stream = "main"\npath = "/live/ch1"\nsource = "https://example.org/p"',
            ),
            "not a recorder path",
        ),
        (
            minimal_profile(
                "acme",
                extra='[recorder]\nsource = "https://example.org/r"\n[[recorder.paths]]\n'
                'stream = "main"\npath = "/{channel}/{channel0}"\nsource = "https://example.org/p"',
            ),
            "not a recorder path",
        ),
        (
            minimal_profile("acme").replace("advisories_reviewed = 2026-11-22\n", ""),
            "advisories_reviewed",
        ),
        (minimal_profile("other"), "must equal the file name"),
        (
            minimal_profile("acme", match='oem_of = "ghost"\nmodels = ["A*"]'),
            "is not another vendor",
        ),
    ],
)
def test_invalid_profiles_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "acme.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    assert any("acme.toml" in p and message in p for p in caught.value.problems), (
        caught.value.problems
    )
