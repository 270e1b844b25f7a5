"""The persona catalogue and camsim's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from camsim.camera import build_device
from camsim.config import CameraConfig, ConfigError, load_config, parse_config
from camsim.persona import PERSONAS, Quirk, get_persona


def test_every_quirk_is_played_by_some_persona() -> None:
    played = set().union(*(p.quirks for p in PERSONAS.values()))
    assert played == set(Quirk)


def test_catalogue_has_the_usual_vendors_and_a_clean_baseline() -> None:
    assert {"hikvision", "dahua", "axis", "reolink", "hanwha", "generic"} <= set(PERSONAS)
    assert not PERSONAS["generic"].quirks
    assert not PERSONAS["hikvision"].quirks


def test_known_vulnerable_persona() -> None:
    persona = get_persona("hikvision-vulnerable")
    assert (persona.vendor, persona.model, persona.firmware) == (
        "HIKVISION",
        "DS-2CD2143G2-I",
        "V5.5.113 build 210317",
    )


@pytest.mark.parametrize("name", sorted(PERSONAS))
def test_persona_is_self_consistent(name: str) -> None:
    persona = PERSONAS[name]
    assert persona.name == name
    assert persona.rtsp_main.startswith("/") and persona.rtsp_sub.startswith("/")
    assert persona.rtsp_main != persona.rtsp_sub
    assert persona.media_path.startswith("/onvif/")
    assert len(persona.profile_tokens) == len(set(persona.profile_tokens)) == 2
    if persona.channels > 1:  # a recorder's paths and tokens name their channel
        assert all("{channel}" in t for t in (*persona.profile_tokens, persona.rtsp_main))
    assert (persona.main.codec == "hevc") == (Quirk.H265_MAIN in persona.quirks)
    assert ((persona.sub.width, persona.sub.height) == (352, 240)) == (
        Quirk.SUB_352X240 in persona.quirks
    )
    assert len(persona.mac_oui.split(":")) == 3


def test_vendor_rtsp_paths() -> None:
    assert PERSONAS["hikvision"].rtsp_main == "/Streaming/Channels/101"
    assert PERSONAS["hikvision"].rtsp_sub == "/Streaming/Channels/102"
    assert PERSONAS["dahua"].rtsp_sub == "/cam/realmonitor?channel=1&subtype=1"
    assert PERSONAS["amcrest"].rtsp_main == "/cam/realmonitor?channel=1&subtype=0"
    assert PERSONAS["axis"].rtsp_main.startswith("/axis-media/media.amp?")
    assert PERSONAS["reolink"].rtsp_main == "/h265Preview_01_main"
    assert PERSONAS["reolink"].rtsp_sub == "/h264Preview_01_sub"


def test_identity_is_stable_and_distinct() -> None:
    hik = get_persona("hikvision")
    first, again, other = hik.identity("cam1"), hik.identity("cam1"), hik.identity("cam2")
    assert first == again
    assert len({first.serial, other.serial}) == 2
    assert len({first.mac, other.mac}) == 2
    assert len({first.endpoint, other.endpoint}) == 2
    assert first.mac.startswith("44:19:b6:")
    assert first.endpoint.startswith("urn:uuid:")


def test_quirks_shape_the_streams() -> None:
    reolink_without_quirks = CameraConfig(id="r", persona="reolink", password="p", quirks=[])
    assert reolink_without_quirks.video_spec("main").codec == "h264"
    hik_h265 = CameraConfig(id="h", persona="hikvision", password="p", add_quirks=["h265_main"])
    assert hik_h265.video_spec("main").codec == "hevc"
    assert hik_h265.effective_quirks() == {Quirk.H265_MAIN}
    cif = CameraConfig(id="g", persona="generic", password="p", add_quirks=["sub_352x240"])
    assert (cif.video_spec("sub").width, cif.video_spec("sub").height) == (352, 240)
    dahua_without = CameraConfig(id="d", persona="dahua", password="p", quirks=[])
    assert (dahua_without.video_spec("sub").width, dahua_without.video_spec("sub").height) == (
        640,
        360,
    )
    small = CameraConfig(
        id="s", persona="hikvision", password="p", main={"width": 640, "height": 360}
    )
    assert (small.video_spec("main").width, small.video_spec("main").fps) == (640, 15)


def test_device_view_of_a_camera() -> None:
    config = CameraConfig(
        id="front-door", persona="axis", password="p", clock_skew=-12.5, location="site/lobby"
    )
    device = build_device(config)
    assert (device.manufacturer, device.model) == ("AXIS", "M1065-L")
    assert device.clock_skew == -12.5
    assert device.quirks == {Quirk.HTTP_DIGEST_AUTH}
    assert [p.rtsp_path for p in device.profiles] == [
        "/axis-media/media.amp?videocodec=h264&resolution=1920x1080",
        "/axis-media/media.amp?videocodec=h264&resolution=640x360",
    ]
    assert ("onvif://www.onvif.org/location/site/lobby", False) in device.scopes()
    assert ("onvif://www.onvif.org/name/AXIS%20M1065-L", False) in device.scopes()


def test_model_and_firmware_can_be_overridden() -> None:
    config = CameraConfig(
        id="old", persona="hikvision", password="p", firmware="V5.4.0 build 160530"
    )
    device = build_device(config)
    assert (device.model, device.firmware) == ("DS-2CD2023G0-I", "V5.4.0 build 160530")
    with pytest.raises(ValueError, match="firmware"):
        CameraConfig(id="bad", password="p", firmware="line\nbreak")


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "cameras": [
                    {"id": "Bad Id", "password": "p"},
                    {"id": "ok", "persona": "sony", "password": "p"},
                    {"id": "q", "password": "p", "add_quirks": ["nope"], "host": "localhost"},
                ],
                "discovery": {"port": 70000, "colour": "red"},
            }
        )
    problems = "\n".join(caught.value.problems)
    for where in (
        "cameras.0.id",
        "cameras.1.persona",
        "cameras.2.add_quirks.0",
        "cameras.2.host",
        "discovery.port",
        "discovery.colour",
    ):
        assert where in problems, problems


def test_duplicate_ids_and_ports_are_refused() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_config({"cameras": [{"id": "a", "password": "p"}, {"id": "a", "password": "p"}]})
    with pytest.raises(ConfigError, match="taken by another camera"):
        parse_config(
            {
                "cameras": [
                    {"id": "a", "password": "p", "onvif_port": 8000},
                    {"id": "b", "password": "p", "onvif_port": 8000},
                ]
            }
        )


def test_load_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "cams.toml"
    path.write_text(
        '[discovery]\nport = 0\n\n[[cameras]]\nid = "c1"\npersona = "tapo"\npassword = "x"\n'
        "main = { width = 640, height = 360 }\n"
    )
    config = load_config(path)
    assert config.discovery.port == 0
    assert config.cameras[0].video_spec("main").width == 640
    path.write_text("[[cameras]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_the_nvr_persona_is_one_device_with_eight_channels() -> None:
    config = CameraConfig(id="nvr", persona="hikvision-nvr", password="p")
    device = build_device(config)
    assert device.video_sources == tuple(f"VideoSource_{n}" for n in range(1, 9))
    assert len(device.profiles) == 16
    third = [p for p in device.profiles if p.source_token == "VideoSource_3"]
    assert [(p.token, p.rtsp_path) for p in third] == [
        ("Profile_301", "/Streaming/Channels/301"),
        ("Profile_302", "/Streaming/Channels/302"),
    ]
    assert config.effective_max_sessions() == 64


def test_extra_and_mjpeg_profiles() -> None:
    dahua = build_device(CameraConfig(id="d", persona="dahua-mjpeg", password="p"))
    assert [(p.token, p.encoding, p.stream) for p in dahua.profiles] == [
        ("MediaProfile00000", "H264", "main"),
        ("MediaProfile00001", "H264", "sub"),
        ("MediaProfile00002", "JPEG", None),
    ]
    axis = build_device(CameraConfig(id="a", persona="axis-mjpeg", password="p"))
    assert [(p.encoding, p.stream) for p in axis.profiles] == [("H264", "main"), ("JPEG", None)]
