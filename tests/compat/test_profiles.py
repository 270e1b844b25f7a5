"""The firmware profile data (every file, every source) and the loader, matcher and checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.compat import (
    PROFILES_ENV,
    ProfileError,
    ProfileSet,
    QuirkId,
    load_profiles,
)
from agent.compat.profiles import (
    CUSTOM_QUIRK_PATTERN,
    default_profiles_dir,
    render_channel_path,
)

PROFILES_DIR = Path(__file__).resolve().parents[2] / "firmware_profiles"
PROFILE_FILES = sorted(PROFILES_DIR.glob("*.toml"))

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
REQUIRED_VENDORS = {
    "hikvision",
    "dahua",
    "axis",
    "hanwha",
    "uniview",
    "reolink",
    "amcrest",
    "lorex",
    "tplink",
    "ubiquiti",
    "milesight",
    "vivotek",
    "bosch",
}
# A G0 dome on 2017 firmware, which no source proves affected by CVE-2021-36260, and camsim's
# known-vulnerable persona, which the sources do (see test_vulnerable_persona_*).
G0_DOME = ("HIKVISION", "DS-2CD2143G0-I", "V5.5.0 build 170725")
VULNERABLE_PERSONA = ("HIKVISION", "DS-2CD2143G2-I", "V5.5.113 build 210317")


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    return load_profiles(PROFILES_DIR)


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


def test_every_file_validates_and_the_required_vendors_are_there(profiles: ProfileSet) -> None:
    ids = {vendor.id for vendor in profiles.vendors}
    assert len(ids) >= 12
    assert ids >= REQUIRED_VENDORS
    assert len(PROFILE_FILES) == len(ids)


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


def test_default_directory_and_environment_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    assert default_profiles_dir() == PROFILES_DIR
    assert {v.id for v in load_profiles().vendors} >= REQUIRED_VENDORS
    (tmp_path / "acme.toml").write_text(_minimal("acme"), encoding="utf-8")
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    assert [v.id for v in load_profiles().vendors] == ["acme"]


# --- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manufacturer", "vendor"),
    [
        ("HIKVISION", "hikvision"),
        ("hikvision", "hikvision"),
        ("  Hikvision  ", "hikvision"),
        ("Hangzhou Hikvision Digital Technology Co., Ltd.", "hikvision"),
        ("Dahua", "dahua"),
        ("DAHUA TECHNOLOGY", "dahua"),
        ("AXIS", "axis"),
        ("Axis Communications AB", "axis"),
        ("Hanwha Techwin", "hanwha"),
        ("Hanwha Vision Co., Ltd.", "hanwha"),
        ("Reolink", "reolink"),
        ("tp-link", "tplink"),
        ("TP-Link Systems Inc.", "tplink"),
        ("Milesight Technology Co.,Ltd.", "milesight"),
        ("VIVOTEK", "vivotek"),
        ("Bosch Security Systems", "bosch"),
        ("Ubiquiti Inc.", "ubiquiti"),
        ("Uniview", "uniview"),
        ("Amcrest", "amcrest"),
        ("LOREX", "lorex"),
        ("EZVIZ", "ezviz"),
    ],
)
def test_matches_manufacturer_aliases(profiles: ProfileSet, manufacturer: str, vendor: str) -> None:
    match = profiles.match(manufacturer=manufacturer, model=None)
    assert match is not None
    assert match.vendor_id == vendor
    assert match.confidence in ("high", "medium")
    assert match.reasons


def test_exact_alias_is_high_and_a_contained_alias_is_medium(profiles: ProfileSet) -> None:
    exact = profiles.match(manufacturer="Milesight", model=None)
    contained = profiles.match(manufacturer="Milesight Technology Co.,Ltd.", model=None)
    assert exact is not None and exact.confidence == "high"
    assert contained is not None and contained.confidence == "medium"
    both = profiles.match(manufacturer="Milesight Technology Co.,Ltd.", model="MS-C5363-PD")
    assert both is not None and both.confidence == "high"


def test_oem_brands_point_to_their_maker(profiles: ProfileSet) -> None:
    for brand in ("Amcrest", "Lorex"):
        match = profiles.match(manufacturer=brand, model=None)
        assert match is not None
        assert match.vendor_id == brand.lower()
        assert match.oem_of == "dahua"
        assert "/cam/realmonitor?channel=1&subtype=0" in profiles.rtsp_candidates(
            match, stream="main"
        )


def test_recognises_by_model_alone_with_low_confidence(profiles: ProfileSet) -> None:
    for model, vendor in [
        ("DS-2CD2143G0-I", "hikvision"),
        ("IPC-HDBW4231F-AS", "dahua"),
        ("RLC-410W", "reolink"),
        ("MS-C8477-HPG1", "milesight"),
        ("IPC322LB-SF28-A", "uniview"),
    ]:
        match = profiles.match(manufacturer=None, model=model)
        assert match is not None, model
        assert (match.vendor_id, match.confidence) == (vendor, "low")


def test_firmware_in_the_vendor_format_adds_evidence(profiles: ProfileSet) -> None:
    match = profiles.match(manufacturer="", model="RLC-410W", firmware="v3.0.0.136_20121102")
    assert match is not None and match.vendor_id == "reolink"
    assert any("format" in reason for reason in match.reasons)


def test_recognises_by_mac_prefix(profiles: ProfileSet) -> None:
    match = profiles.match(manufacturer=None, model=None, mac="3c-ef-8c-12-34-56")
    assert match is not None
    assert (match.vendor_id, match.confidence) == ("dahua", "low")


def test_unknown_camera_matches_nothing(profiles: ProfileSet) -> None:
    assert profiles.match(manufacturer="Acme Cameras", model="X-1000") is None
    assert profiles.match(manufacturer=None, model=None) is None
    assert profiles.match(manufacturer="", model="", firmware="", scopes=()) is None


def test_scope_hints_and_ties(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(
        _minimal("acme", match='scopes = ["onvif://www.onvif.org/name/acme"]'), encoding="utf-8"
    )
    (tmp_path / "zenith.toml").write_text(
        _minimal("zenith", match='models = ["Z-*"]'), encoding="utf-8"
    )
    (tmp_path / "zorro.toml").write_text(
        _minimal("zorro", match='models = ["Z-1*"]'), encoding="utf-8"
    )
    profiles = load_profiles(tmp_path)
    scoped = profiles.match(
        manufacturer=None,
        model=None,
        scopes=["onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/name/ACME"],
    )
    assert scoped is not None and scoped.vendor_id == "acme"
    assert profiles.match(manufacturer=None, model="Z-100") is None  # two vendors tie
    single = profiles.match(manufacturer=None, model="Z-200")
    assert single is not None and single.vendor_id == "zenith"


@settings(max_examples=200)
@given(
    manufacturer=st.none() | st.text(max_size=300),
    model=st.none() | st.text(max_size=300),
    firmware=st.none() | st.text(max_size=300),
    scopes=st.lists(st.text(max_size=100), max_size=5),
    mac=st.none() | st.text(max_size=40),
)
def test_matching_hostile_identifiers_never_raises(
    manufacturer: str | None,
    model: str | None,
    firmware: str | None,
    scopes: list[str],
    mac: str | None,
) -> None:
    profiles = _cached_profiles()
    match = profiles.match(
        manufacturer=manufacturer, model=model, firmware=firmware, scopes=scopes, mac=mac
    )
    if match is not None:
        profiles.vulnerabilities(match, firmware)
        profiles.onvif_defects(match, firmware)
        profiles.rtsp_candidates(match, stream="main")
        profiles.quirks(match)


_CACHE: list[ProfileSet] = []


def _cached_profiles() -> ProfileSet:
    if not _CACHE:
        _CACHE.append(load_profiles(PROFILES_DIR))
    return _CACHE[0]


# --- RTSP paths and quirks ------------------------------------------------------------------


def test_rtsp_candidates_for_hikvision(profiles: ProfileSet) -> None:
    match = profiles.match(manufacturer="HIKVISION", model="DS-2CD2143G0-I")
    assert match is not None
    assert profiles.rtsp_candidates(match, stream="main")[0] == "/Streaming/Channels/101"
    assert profiles.rtsp_candidates(match, stream="sub")[0] == "/Streaming/Channels/102"
    defaults = profiles.rtsp_defaults(match)
    assert defaults is not None and defaults.port == 554


def test_model_specific_paths_come_first(profiles: ProfileSet) -> None:
    match = profiles.match(manufacturer="Milesight", model="MS-C8477-HPG1")
    assert match is not None
    assert profiles.rtsp_candidates(match, stream="main")[:2] == ["/channel1/main", "/main"]
    other = profiles.match(manufacturer="Milesight", model="MS-C2964-PB")
    assert other is not None
    assert profiles.rtsp_candidates(other, stream="main") == ["/main"]


def test_oem_brand_inherits_onvif_and_rtsp_defaults(profiles: ProfileSet) -> None:
    lorex = profiles.match(manufacturer="Lorex", model="LNK7108A")
    assert lorex is not None
    assert profiles.rtsp_defaults(lorex) == profiles.get("lorex").rtsp
    tapo = profiles.match(manufacturer="TP-Link", model="C200")
    assert tapo is not None
    onvif = profiles.onvif_defaults(tapo)
    assert onvif is not None and onvif.ports == (2020,)
    reolink = profiles.match(manufacturer="Reolink", model="RLC-410W")
    assert reolink is not None
    onvif = profiles.onvif_defaults(reolink)
    assert onvif is not None and onvif.ports == (8000,)


def test_unifi_streams_come_from_the_controller(profiles: ProfileSet) -> None:
    match = profiles.match(manufacturer="Ubiquiti", model=None)
    assert match is not None
    defaults = profiles.rtsp_defaults(match)
    assert defaults is not None and (defaults.scheme, defaults.port) == ("rtsps", 7441)
    assert profiles.rtsp_candidates(match, stream="main") == []
    assert [q.id for q in profiles.quirks(match)] == ["x_stream_via_protect"]


def test_quirks_follow_the_model(profiles: ProfileSet) -> None:
    e1 = profiles.match(manufacturer="Reolink", model="E1 Pro")
    rlc = profiles.match(manufacturer="Reolink", model="RLC-520A")
    assert e1 is not None and rlc is not None
    assert "no_snapshot" in [q.id for q in profiles.quirks(e1)]
    assert "no_snapshot" not in [q.id for q in profiles.quirks(rlc)]
    big = profiles.match(manufacturer="Reolink", model="RLC-810A")
    assert big is not None and "h265_main" in [q.id for q in profiles.quirks(big)]


# --- firmware against advisories ------------------------------------------------------------


def _cves(profiles: ProfileSet, identity: tuple[str, str, str]) -> dict[str, tuple[str, str]]:
    manufacturer, model, firmware = identity
    match = profiles.match(manufacturer=manufacturer, model=model, firmware=firmware)
    assert match is not None
    return {f.item.cve: (f.status, f.reason) for f in profiles.vulnerabilities(match, firmware)}


def test_unproven_g0_dome_is_not_shown_affected(profiles: ProfileSet) -> None:
    """DS-2CD2143G0-I is not among the models any source lists for CVE-2021-36260, and Watchful
    IP lists only 5.4.x and older of the legacy G0 firmware as vulnerable; nothing here proves
    V5.5.0 build 170725 of this model vulnerable, so nothing is reported."""
    assert _cves(profiles, G0_DOME) == {}


def test_vulnerable_persona_is_flagged_with_the_fixed_version(profiles: ProfileSet) -> None:
    persona = pytest.importorskip("camsim.persona").get_persona("hikvision-vulnerable")
    assert (persona.vendor, persona.model, persona.firmware) == VULNERABLE_PERSONA
    found = _cves(profiles, VULNERABLE_PERSONA)
    status, reason = found["CVE-2021-36260"]
    assert status == "affected"
    assert "V5.7.1 build 211009" in reason
    vuln = next(v for v in profiles.get("hikvision").vulnerabilities if v.cve == "CVE-2021-36260")
    assert (vuln.severity, vuln.cvss, vuln.known_exploited) == ("critical", 9.8, True)


@pytest.mark.parametrize(
    ("firmware", "expected"),
    [
        ("V5.5.113 build 210317", "affected"),
        ("V5.5.0 build 190101", "affected"),
        ("V5.6.2 build 210601", "unknown"),  # after the last known affected, before the fix
        ("V5.7.1 build 211009", None),
        ("V5.7.3 build 220112", None),
        ("V5.7.1", "unknown"),  # which build of 5.7.1? the fix names build 211009
        ("not a version", "unknown"),
        ("", "unknown"),
    ],
)
def test_cve_2021_36260_decisions(
    profiles: ProfileSet, firmware: str, expected: str | None
) -> None:
    match = profiles.match(manufacturer="HIKVISION", model="DS-2CD2143G2-I")
    assert match is not None
    found = {f.item.cve: f.status for f in profiles.vulnerabilities(match, firmware)}
    assert found.get("CVE-2021-36260") == expected


def test_missing_firmware_or_model_is_unknown_never_safe(profiles: ProfileSet) -> None:
    match = profiles.match(manufacturer="HIKVISION", model="DS-2CD2143G2-I")
    assert match is not None
    assert {f.status for f in profiles.vulnerabilities(match, None)} == {"unknown"}
    anonymous = profiles.match(manufacturer="HIKVISION", model=None)
    assert anonymous is not None
    found = profiles.vulnerabilities(anonymous, "V5.5.113 build 210317")
    assert found and {f.status for f in found} == {"unknown"}
    assert all("model" in f.reason for f in found)


def test_cve_2017_7921_ranges(profiles: ProfileSet) -> None:
    identity = ("HIKVISION", "DS-2CD2032F-I", "V5.3.0 build 150513")
    assert _cves(profiles, identity)["CVE-2017-7921"][0] == "affected"
    older = ("HIKVISION", "DS-2CD2032F-I", "V5.1.6 build 140412")
    assert "CVE-2017-7921" not in _cves(profiles, older)
    later = ("HIKVISION", "DS-2CD2032F-I", "V5.4.5 build 170123")
    assert _cves(profiles, later)["CVE-2017-7921"][0] == "unknown"


def test_dahua_build_date_rules(profiles: ProfileSet) -> None:
    identity = ("Dahua", "IPC-HDW3549H-AS-PV", "V2.800.0000000.25.R, Build Date: 2020-08-20")
    found = _cves(profiles, identity)
    assert found["CVE-2021-33044"][0] == "affected"
    assert "CVE-2021-33045" not in found  # built after May 2020
    newer = ("Dahua", "IPC-HDW3549H-AS-PV", "3.140.0000000.13.R,build:2024-01-24")
    assert _cves(profiles, newer) == {}
    other_series = ("Dahua", "IPC-HFW2431S-S-S2", "V2.800.0000000.25.R, Build Date: 2020-08-20")
    assert _cves(profiles, other_series) == {}


def test_firmware_lines_select_their_own_fix(profiles: ProfileSet) -> None:
    def status(firmware: str) -> str | None:
        found = _cves(profiles, ("Amcrest", "IP2M-841", firmware))
        return found.get("CVE-2020-5735", (None, ""))[0]

    assert status("2.420.AC00.17.R.20190217") == "affected"
    assert status("2.420.AC00.18.R.20200217") is None
    assert status("2.800.0000000.6.R.200314") is None
    assert status("2.520.AC00.17.R.20190217") == "unknown"  # a line no advisory covers


def test_exact_releases(profiles: ProfileSet) -> None:
    found = _cves(profiles, ("Reolink", "RLC-410W", "v3.0.0.136_20121102"))
    assert found["CVE-2021-40419"][0] == "affected"
    assert _cves(profiles, ("Reolink", "RLC-410W", "v3.0.0.2356_23062004")) == {}
    assert _cves(profiles, ("Reolink", "RLC-520A", "v3.0.0.136_20121102")) == {}


def test_release_without_build_covers_every_build(profiles: ProfileSet) -> None:
    def status(firmware: str) -> str | None:
        return _cves(profiles, ("TP-Link", "C200", firmware)).get("CVE-2021-4045", (None, ""))[0]

    assert status("1.1.15 Build 211010 Rel. 1") == "affected"
    assert status("1.1.16 Build 211209 Rel. 37726n") is None
    assert status("1.1.16 Build 211201 Rel. 1") == "unknown"


def test_onvif_defects(profiles: ProfileSet) -> None:
    tapo = profiles.match(manufacturer="TP-Link", model="C200")
    assert tapo is not None
    found = {f.item.id: f.status for f in profiles.onvif_defects(tapo, "1.3.6 Build 230101 Rel. 5")}
    assert found == {"events_port_unresponsive": "affected"}
    assert profiles.onvif_defects(tapo, "1.3.9 Build 231019 Rel. 1") == []
    dahua = profiles.match(manufacturer="Dahua", model="IPC-HDW3549H")
    assert dahua is not None
    reported = profiles.onvif_defects(dahua, None)
    assert [(f.item.id, f.status) for f in reported] == [("snapshot_content_length", "unknown")]


# --- the loader rejects bad data with every problem named -----------------------------------


def _minimal(vendor: str, *, match: str = 'manufacturers = ["Acme"]', extra: str = "") -> str:
    return f"""
schema_version = 1
id = "{vendor}"
name = "{vendor.title()}"
firmware_style = "dotted"
advisories_reviewed = 2026-11-22

[match]
{match}
source = "https://example.org/{vendor}"
{extra}
"""


VULN = """
[[vulnerabilities]]
cve = "CVE-2020-0001"
summary = "s"
remedy = "update"
source = "https://example.org/cve"

[[vulnerabilities.affected]]
models = ["*"]
{bound}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is = not [toml", "cannot read"),
        (_minimal("acme", extra='colour = "red"'), "colour: Extra inputs are not permitted"),
        (_minimal("acme").replace('source = "https://example.org/acme"', ""), "match.source"),
        (_minimal("acme").replace("https://example.org/acme", "ftp://x"), "not an http(s) URL"),
        (_minimal("acme", match="models = []"), "give at least one of"),
        (
            _minimal(
                "acme",
                extra='[[quirks]]\nid = "made_up"\nsummary = "s"\nsymptom = "s"\n'
                'workaround = "w"\nsource = "https://example.org/q"',
            ),
            "unknown quirk 'made_up'",
        ),
        (_minimal("acme", extra=VULN.format(bound='fixed = "one.two"')), "not a dotted firmware"),
        (
            _minimal(
                "acme", extra=VULN.format(bound='compare = "build_date"\nfixed = "2021-13-01"')
            ),
            "not an ISO date",
        ),
        (_minimal("acme", extra=VULN.format(bound="")), "give at least one of last_affected"),
        (
            _minimal(
                "acme",
                extra='[rtsp]\nsource = "https://example.org/r"\n[[rtsp.paths]]\n'
                'stream = "main"\npath = "rtsp://admin:pw@host/x"\nsource = "https://example.org/p"',
            ),
            "not an RTSP path",
        ),
        (
            _minimal(
                "acme",
                extra='[recorder]\nsource = "https://example.org/r"\n[[recorder.paths]]\n'
                'stream = "main"\npath = "/live/ch1"\nsource = "https://example.org/p"',
            ),
            "not a recorder path",
        ),
        (
            _minimal(
                "acme",
                extra='[recorder]\nsource = "https://example.org/r"\n[[recorder.paths]]\n'
                'stream = "main"\npath = "/{channel}/{channel0}"\nsource = "https://example.org/p"',
            ),
            "not a recorder path",
        ),
        (_minimal("acme").replace("advisories_reviewed = 2026-11-22\n", ""), "advisories_reviewed"),
        (_minimal("other"), "must equal the file name"),
        (_minimal("acme", match='oem_of = "ghost"\nmodels = ["A*"]'), "is not another vendor"),
    ],
)
def test_invalid_profiles_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "acme.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    assert any("acme.toml" in p and message in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_problems_from_several_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(_minimal("acme"), encoding="utf-8")
    (tmp_path / "bravo.toml").write_text(_minimal("bravo"), encoding="utf-8")  # alias taken
    (tmp_path / "charlie.toml").write_text("[broken", encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    problems = caught.value.problems
    assert any("bravo.toml" in p and "also belongs to 'acme'" in p for p in problems)
    assert any("charlie.toml" in p and "cannot read" in p for p in problems)


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not a directory"):
        load_profiles(tmp_path / "nowhere")
    with pytest.raises(ProfileError, match=r"no \*\.toml"):
        load_profiles(tmp_path)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(_minimal("acme") + "#" * 600_000, encoding="utf-8")
    with pytest.raises(ProfileError, match="larger than"):
        load_profiles(tmp_path)


def test_oversized_or_unprintable_identifiers_are_ignored(profiles: ProfileSet) -> None:
    assert profiles.match(manufacturer="HIKVISION" + " " * 300, model=None) is None
    assert profiles.match(manufacturer="HIKVISION\x00", model=None) is None
    match = profiles.match(manufacturer="HIKVISION", model="DS-2CD" + "X" * 300)
    assert match is not None and match.model is None


def test_camsim_personas_are_recognised_and_understood(profiles: ProfileSet) -> None:
    persona_module = pytest.importorskip("camsim.persona")
    expected = {
        "hikvision": "hikvision",
        "hikvision-vulnerable": "hikvision",
        "dahua": "dahua",
        "axis": "axis",
        "amcrest": "amcrest",
        "reolink": "reolink",
        "hanwha": "hanwha",
        "tapo": "tplink",
    }
    known_quirks = {q.value for q in QuirkId}
    for name, persona in persona_module.PERSONAS.items():
        assert {str(q) for q in persona.quirks} <= known_quirks, name
        match = profiles.match(
            manufacturer=persona.vendor, model=persona.model, firmware=persona.firmware
        )
        if name not in expected:
            continue
        assert match is not None and match.vendor_id == expected[name], name
        if name != "hanwha":  # no public source shows Hanwha's firmware format; none is claimed
            assert any("format" in r for r in match.reasons), (name, persona.firmware)


# --- recorders and the "cannot tell" rule (issue 13) -----------------------------------------


@pytest.mark.parametrize(
    ("vendor", "path", "stream", "channel", "counterpart"),
    [
        ("hikvision", "/Streaming/Channels/301", "main", 3, "/Streaming/Channels/302"),
        ("hikvision", "/Streaming/Channels/1202", "sub", 12, "/Streaming/Channels/1201"),
        (
            "dahua",
            "/cam/realmonitor?channel=5&subtype=0",
            "main",
            5,
            "/cam/realmonitor?channel=5&subtype=1",
        ),
        ("uniview", "/unicast/c2/s1/live", "sub", 2, "/unicast/c2/s0/live"),
        ("reolink", "/h264Preview_07_main", "main", 7, "/h264Preview_07_sub"),
        ("hanwha", "/LiveChannel/0/media.smp", "main", 1, None),
    ],
)
def test_recorder_channel_paths(
    profiles: ProfileSet,
    vendor: str,
    path: str,
    stream: str,
    channel: int,
    counterpart: str | None,
) -> None:
    found = profiles.channel_path(path)
    assert found is not None
    assert (found.vendor_id, found.stream, found.channel) == (vendor, stream, channel)
    want = "sub" if stream == "main" else "main"
    assert profiles.recorder_counterpart(found, want=want) == counterpart  # type: ignore[arg-type]
    assert render_channel_path(found.template, channel) == path


def test_recorders_are_recognised_by_model(profiles: ProfileSet) -> None:
    nvr = profiles.match(manufacturer=None, model="DS-7608NI-K2")
    assert nvr is not None and nvr.vendor_id == "hikvision" and profiles.is_recorder_model(nvr)
    camera = profiles.match(manufacturer="HIKVISION", model="DS-2CD2023G0-I")
    assert camera is not None and not profiles.is_recorder_model(camera)
    lorex = profiles.match(manufacturer="Lorex", model="NVR4216-16P")
    assert lorex is not None and lorex.vendor_id == "lorex" and profiles.is_recorder_model(lorex)
    assert profiles.recorder_paths(lorex, stream="sub", channel=3) == [
        "/cam/realmonitor?channel=3&subtype=1"
    ]
    hanwha = profiles.match(manufacturer="Hanwha Techwin", model="SRN-3250")
    assert hanwha is not None and profiles.recorder_port(hanwha) == 558
    assert profiles.recorder_paths(hanwha, stream="main", channel=1) == ["/LiveChannel/0/media.smp"]
    # Another vendor's three-digit NVR is not taken for a Dahua.
    assert profiles.match(manufacturer=None, model="NVR301-08S") is None


def test_coverage_needs_an_advisory_for_the_model_and_line(profiles: ProfileSet) -> None:
    covered = profiles.match(manufacturer="HIKVISION", model="DS-2CD2143G2-I")
    assert covered is not None
    yes = profiles.coverage(covered, "V5.7.3 build 220112")
    assert yes.covered and str(yes.reviewed) == "2026-11-22"
    uncovered = profiles.match(manufacturer="HIKVISION", model="DS-2CD2023G0-I")
    assert uncovered is not None
    no = profiles.coverage(uncovered, "V5.7.3 build 220112")
    assert not no.covered and "DS-2CD2023G0-I" in no.reason and "2026-11-22" in no.reason
    nothing = profiles.match(manufacturer="AXIS", model="P1375")
    assert nothing is not None
    assert not profiles.coverage(nothing, "5.50.3").covered
    unknown_model = profiles.match(manufacturer="HIKVISION", model=None)
    assert unknown_model is not None
    assert "did not report its model" in profiles.coverage(unknown_model, "V5.7.3 build 1").reason
