"""Matching: recognising a camera's vendor, and what its profile says to try (RTSP paths,
defaults, quirks, recorder channel paths)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.compat.profiles import ProfileSet, load_profiles, render_channel_path
from agent.quirks import QuirkId
from tests.compat.profiles.samples import PROFILES_DIR, minimal_profile

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
        minimal_profile("acme", match='scopes = ["onvif://www.onvif.org/name/acme"]'),
        encoding="utf-8",
    )
    (tmp_path / "zenith.toml").write_text(
        minimal_profile("zenith", match='models = ["Z-*"]'), encoding="utf-8"
    )
    (tmp_path / "zorro.toml").write_text(
        minimal_profile("zorro", match='models = ["Z-1*"]'), encoding="utf-8"
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
    want: Literal["main", "sub"] = "sub" if stream == "main" else "main"
    assert profiles.recorder_counterpart(found, want=want) == counterpart
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
