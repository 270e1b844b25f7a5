"""ONVIF media operations (ver10 media WSDL, Profile S) that camsim answers."""

from __future__ import annotations

from lxml import etree

from camsim.media import VideoSpec
from camsim.onvif.device import MediaProfile, OnvifDevice
from camsim.onvif.device_ops import Handler
from camsim.onvif.soap import SoapFault, action_not_supported, invalid_arg
from camsim.onvif.xml import TRT, TT, q, sub
from camsim.persona import Quirk

_SESSION_TIMEOUT = "PT60S"  # matches the RTSP server's Session timeout


def _response(name: str) -> etree._Element:
    return etree.Element(q(TRT, f"{name}Response"))


def _main_spec(device: OnvifDevice, source: str) -> VideoSpec:
    return next(p.spec for p in device.profiles if p.source_token == source)


def _video_source_configuration(
    parent: etree._Element, device: OnvifDevice, profile: MediaProfile
) -> None:
    source = profile.source_token
    main = _main_spec(device, source)
    number = device.video_sources.index(source) + 1
    config = sub(parent, TT, "VideoSourceConfiguration", token=f"VideoSourceConfig_{number}")
    sub(config, TT, "Name", f"VideoSourceConfig_{number}")
    sub(config, TT, "UseCount", sum(1 for p in device.profiles if p.source_token == source))
    sub(config, TT, "SourceToken", source)
    sub(config, TT, "Bounds", x="0", y="0", width=str(main.width), height=str(main.height))


def _video_encoder_configuration(
    parent: etree._Element, profile: MediaProfile, ns: str, tag: str
) -> None:
    spec = profile.spec
    config = sub(parent, ns, tag, token=profile.encoder_token)
    sub(config, TT, "Name", f"VideoEncoder_{profile.name}")
    sub(config, TT, "UseCount", 1)
    # Media1 has no H.265: cameras streaming H.265 still say H264 here (see Quirk.H265_MAIN).
    sub(config, TT, "Encoding", profile.encoding)
    resolution = sub(config, TT, "Resolution")
    sub(resolution, TT, "Width", spec.width)
    sub(resolution, TT, "Height", spec.height)
    sub(config, TT, "Quality", 4)
    rate = sub(config, TT, "RateControl")
    sub(rate, TT, "FrameRateLimit", spec.fps)
    sub(rate, TT, "EncodingInterval", 1)
    sub(rate, TT, "BitrateLimit", spec.bitrate // 1000)
    if profile.encoding == "H264":
        h264 = sub(config, TT, "H264")
        sub(h264, TT, "GovLength", spec.gop)
        sub(h264, TT, "H264Profile", "High")
    multicast = sub(config, TT, "Multicast")
    address = sub(multicast, TT, "Address")
    sub(address, TT, "Type", "IPv4")
    sub(address, TT, "IPv4Address", "0.0.0.0")  # noqa: S104 - "no multicast group"
    sub(multicast, TT, "Port", 0)
    sub(multicast, TT, "TTL", 1)
    sub(multicast, TT, "AutoStart", False)
    sub(config, TT, "SessionTimeout", _SESSION_TIMEOUT)


def _profile(parent: etree._Element, device: OnvifDevice, profile: MediaProfile, tag: str) -> None:
    element = sub(parent, TRT, tag, token=profile.token, fixed="true")
    sub(element, TT, "Name", profile.name)
    _video_source_configuration(element, device, profile)
    _video_encoder_configuration(element, profile, TT, "VideoEncoderConfiguration")


def _profile_token(op: etree._Element, device: OnvifDevice) -> MediaProfile:
    token = (op.findtext(q(TRT, "ProfileToken")) or "").strip()
    profile = device.profile(token)
    if profile is None:
        raise invalid_arg("NoProfile", f"The requested profile token {token[:64]!r} does not exist")
    return profile


def get_profiles(device: OnvifDevice, _op: etree._Element, _local: str | None) -> etree._Element:
    response = _response("GetProfiles")
    for profile in device.profiles:
        _profile(response, device, profile, "Profiles")
    return response


def get_profile(device: OnvifDevice, op: etree._Element, _local: str | None) -> etree._Element:
    profile = _profile_token(op, device)
    response = _response("GetProfile")
    _profile(response, device, profile, "Profile")
    return response


def get_video_sources(
    device: OnvifDevice, _op: etree._Element, _local: str | None
) -> etree._Element:
    response = _response("GetVideoSources")
    for token in device.video_sources:
        main = _main_spec(device, token)
        source = sub(response, TRT, "VideoSources", token=token)
        sub(source, TT, "Framerate", float(main.fps))
        resolution = sub(source, TT, "Resolution")
        sub(resolution, TT, "Width", main.width)
        sub(resolution, TT, "Height", main.height)
    return response


def get_video_encoder_configurations(
    device: OnvifDevice, _op: etree._Element, _local: str | None
) -> etree._Element:
    response = _response("GetVideoEncoderConfigurations")
    for profile in device.profiles:
        _video_encoder_configuration(response, profile, TRT, "Configurations")
    return response


def get_video_encoder_configuration(
    device: OnvifDevice, op: etree._Element, _local: str | None
) -> etree._Element:
    token = (op.findtext(q(TRT, "ConfigurationToken")) or "").strip()
    profile = next((p for p in device.profiles if p.encoder_token == token), None)
    if profile is None:
        raise invalid_arg("NoConfig", f"The requested configuration {token[:64]!r} does not exist")
    response = _response("GetVideoEncoderConfiguration")
    _video_encoder_configuration(response, profile, TRT, "Configuration")
    return response


def _media_uri(response: etree._Element, uri: str) -> None:
    media_uri = sub(response, TRT, "MediaUri")
    sub(media_uri, TT, "Uri", uri)
    sub(media_uri, TT, "InvalidAfterConnect", False)
    sub(media_uri, TT, "InvalidAfterReboot", False)
    sub(media_uri, TT, "Timeout", "PT0S")


def get_stream_uri(device: OnvifDevice, op: etree._Element, local: str | None) -> etree._Element:
    profile = _profile_token(op, device)
    setup = op.find(q(TRT, "StreamSetup"))
    stream = protocol = ""
    if setup is not None:
        stream = (setup.findtext(q(TT, "Stream")) or "").strip()
        protocol = (setup.findtext(f"{q(TT, 'Transport')}/{q(TT, 'Protocol')}") or "").strip()
    if Quirk.STREAM_URI_FAILS in device.quirks:
        # What a gSOAP-based firmware says when it cannot map the StreamSetup to a stream.
        raise SoapFault(
            "Sender",
            (),
            "Validation constraint violation: data type mismatch in element 'Stream'",
        )
    if stream == "RTP-Multicast":
        raise invalid_arg("InvalidStreamSetup", "Multicast streaming is not supported")
    if stream not in ("", "RTP-Unicast") or protocol not in ("", "UDP", "TCP", "RTSP", "HTTP"):
        raise invalid_arg("InvalidStreamSetup", "The requested stream setup is not supported")
    uri = device.stream_uri(profile, local=local)
    if Quirk.ESCAPED_STREAM_URI in device.quirks:
        uri = uri.replace("&", "&amp;")
    response = _response("GetStreamUri")
    _media_uri(response, uri)
    return response


def get_snapshot_uri(device: OnvifDevice, op: etree._Element, local: str | None) -> etree._Element:
    if Quirk.NO_SNAPSHOT in device.quirks:
        raise action_not_supported()
    _profile_token(op, device)
    response = _response("GetSnapshotUri")
    _media_uri(response, device.snapshot_uri(local=local))
    return response


HANDLERS: dict[str, Handler] = {
    "GetProfiles": get_profiles,
    "GetProfile": get_profile,
    "GetVideoSources": get_video_sources,
    "GetVideoEncoderConfigurations": get_video_encoder_configurations,
    "GetVideoEncoderConfiguration": get_video_encoder_configuration,
    "GetStreamUri": get_stream_uri,
    "GetSnapshotUri": get_snapshot_uri,
}
