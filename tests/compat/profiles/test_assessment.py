"""Assessment: firmware against the published advisories and ONVIF defects, and whether the
advisories on file cover a camera at all."""

from __future__ import annotations

import pytest

from agent.compat.profiles import ProfileSet

# A G0 dome on 2017 firmware, which no source proves affected by CVE-2021-36260, and camsim's
# known-vulnerable persona, which the sources do (see test_vulnerable_persona_*).
G0_DOME = ("HIKVISION", "DS-2CD2143G0-I", "V5.5.0 build 170725")
VULNERABLE_PERSONA = ("HIKVISION", "DS-2CD2143G2-I", "V5.5.113 build 210317")


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
