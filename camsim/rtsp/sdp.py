"""The session description a camera returns to DESCRIBE (RFC 4566, RFC 6184 §8, RFC 7798 §7)."""

from __future__ import annotations

import base64

from camsim.media import EncodedStream

from .rtp import PAYLOAD_TYPE, RTP_CLOCK

TRACK_CONTROL = "trackID=1"


def _b64(nal: bytes) -> str:
    return base64.b64encode(nal).decode()


def profile_level_id(sps: bytes) -> str:
    """profile_idc, constraint flags and level_idc: the three bytes after the NAL header."""
    if len(sps) < 4:
        raise ValueError("SPS too short")
    return sps[1:4].hex().upper()


def fmtp(stream: EncodedStream) -> str:
    ps = stream.parameter_sets
    if stream.spec.codec == "h264":
        return (
            f"packetization-mode=1;profile-level-id={profile_level_id(ps.sps)};"
            f"sprop-parameter-sets={_b64(ps.sps)},{_b64(ps.pps)}"
        )
    assert ps.vps is not None
    return f"sprop-vps={_b64(ps.vps)};sprop-sps={_b64(ps.sps)};sprop-pps={_b64(ps.pps)}"


def build_sdp(stream: EncodedStream, *, session_id: int, address: str, name: str) -> str:
    """SDP for one video track with control `trackID=1` relative to the Content-Base."""
    spec = stream.spec
    family = "IP6" if ":" in address else "IP4"
    encoding = "H264" if spec.codec == "h264" else "H265"
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN {family} {address}",
        f"s={name}",
        f"c=IN {family} {'::' if family == 'IP6' else '0.0.0.0'}",  # noqa: S104 - SDP text
        "t=0 0",
        "a=tool:camsim",
        "a=type:broadcast",
        "a=control:*",
        "a=range:npt=0-",
        f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
        f"b=AS:{spec.bitrate // 1000}",
        f"a=rtpmap:{PAYLOAD_TYPE} {encoding}/{RTP_CLOCK}",
        f"a=fmtp:{PAYLOAD_TYPE} {fmtp(stream)}",
        f"a=framerate:{spec.fps}",
        f"a=x-dimensions:{spec.width},{spec.height}",
        f"a=control:{TRACK_CONTROL}",
    ]
    return "\r\n".join(lines) + "\r\n"
