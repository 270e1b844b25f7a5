"""What the firmware profile tests share: the shipped data's directory and a minimal vendor
file to build bad or test-only profiles from."""

from __future__ import annotations

from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parents[3] / "firmware_profiles"
PROFILE_FILES = sorted(PROFILES_DIR.glob("*.toml"))

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


def minimal_profile(
    vendor: str, *, match: str = 'manufacturers = ["Acme"]', extra: str = ""
) -> str:
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
