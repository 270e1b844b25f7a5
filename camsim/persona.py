"""Personas: who a simulated camera claims to be, and which real-world quirks it reproduces.

A persona is a vendor, model and firmware with the paths, stream settings and ONVIF habits of
that kind of camera. Quirks are named flags so a test (or `rtcc-edge`'s compatibility code) can
ask for exactly one misbehaviour; every quirk below imitates something seen on real cameras, and
the comment next to it says where.

Resolutions are what a typical owner leaves the camera at, kept at 1080p or below (except the
4 MP vulnerable Hikvision) so that encoding the looped media at start-up stays cheap.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from camsim.media import VideoSpec

HttpAuth = Literal["digest", "basic", "none"]
StreamName = Literal["main", "sub"]

# ONVIF Core §5.1.1: the device service entry point is fixed; onvif-zeep-async relies on it too.
DEVICE_SERVICE_PATH = "/onvif/device_service"


class Quirk(StrEnum):
    """Misbehaviours taken from real cameras (the agent must detect and work around each)."""

    # Service addresses (GetCapabilities/GetServices, discovery XAddrs) carry host 0.0.0.0.
    # Firmwares built on onvif_srvd cannot always resolve their own interface address and
    # advertise an unusable host (roleoroleo/yi-hack-MStar#148, roleoroleo/sonoff-hack#3,
    # EliasKotlyar/Xiaomi-Dafang-Hacks#1752). Note that Linux connects 0.0.0.0 to the local host,
    # so the quirk only bites when the camera listens on an address other than 127.0.0.1.
    XADDR_ZERO_HOST = "xaddr_zero_host"
    # Service addresses with the port written twice: `http://h:8000:8000/onvif/...`
    # (home-assistant/core#92603; onvif-zeep-async's normalize_url exists for it).
    XADDR_DUPLICATE_PORT = "xaddr_duplicate_port"
    # GetStreamUri returns `&amp;` where `&` belongs: the URI was XML-escaped twice
    # (openhab/openhab-addons#15707, kerberos-io/machinery#95).
    ESCAPED_STREAM_URI = "escaped_stream_uri"
    # GetServices answers ter:ActionNotSupported; GetCapabilities works. Profile S does not
    # require GetServices and older Axis firmware lacked it (quatanium/python-onvif#30).
    NO_GET_SERVICES = "no_get_services"
    # WS-Security PasswordDigest refused, PasswordText accepted
    # (blakeblackshear/frigate#23365 added a PasswordText fallback for such cameras).
    PASSWORD_TEXT_ONLY = "password_text_only"  # noqa: S105 - a quirk name
    # WS-Security ignored; HTTP Digest required on the SOAP endpoints (Axis with VAPIX users,
    # lumeohq/onvif-rs#38; Hikvision set to "digest" authentication, agsh/onvif#294; INSTAR
    # IN-9408, home-assistant/core#98538).
    HTTP_DIGEST_AUTH = "http_digest_auth"
    # Main stream in H.265. Media1 cannot express it, so GetProfiles still says H264
    # (quatanium/python-onvif#96, sr99622/libonvif#113); only the stream itself tells the truth.
    H265_MAIN = "h265_main"
    # Sub stream only at 352x240 (CIF-class default sub stream of Dahua-family cameras).
    SUB_352X240 = "sub_352x240"
    # GetSnapshotUri answers ter:ActionNotSupported "Optional Action Not Implemented"
    # (Privatehive/libONVIF#22, koush/scrypted#942, GuilhermeC18/node-onvif#14).
    NO_SNAPSHOT = "no_snapshot"
    # Ignores WS-Discovery Probes (discovery switched off in the camera's settings, or a
    # firmware without a responder); found only by sweeping the usual ONVIF ports.
    NO_WS_DISCOVERY = "no_ws_discovery"
    # GetStreamUri faults (a gSOAP "Validation constraint violation" sender fault, as in
    # cdavis-code/easy_onvif_workspace#36 and #72); the agent must fall back to the vendor's
    # known RTSP paths.
    STREAM_URI_FAILS = "stream_uri_fails"
    # GetServices and GetCapabilities both fault (ter:ActionNotSupported) while
    # GetDeviceInformation answers: the device names no service address at all (issue 13: the
    # agent lost the camera's identity, and with it a known vulnerability).
    NO_GET_CAPABILITIES = "no_get_capabilities"
    # GetSystemDateAndTime wants credentials, against ONVIF Core §5.9.4.3; onvif-zeep-async
    # retries it authenticated for such cameras ("Looks like we should try with auth").
    CLOCK_NEEDS_AUTH = "clock_needs_auth"
    # The second profile is MJPEG (Media1 Encoding JPEG). camsim streams H.264/H.265 only, so
    # that profile's RTSP path answers 404 (the agent never opens an MJPEG profile).
    MJPEG_SUB = "mjpeg_sub"
    # WS-Discovery replies that bend the spec the way independent implementations do (issue
    # 13; python-ws-discovery#29 and #38 show others): ProbeMatch without its ProbeMatches
    # wrapper, RelatesTo without "urn:", XAddrs that start with an IPv6 and an https address
    # and are separated by a newline and a tab, and the name scope in ISO-8859-1.
    WSD_LOOSE_REPLY = "wsd_loose_reply"


@dataclass(frozen=True)
class ExtraProfile:
    """A media profile beyond main and sub (an MJPEG third stream, say)."""

    token: str
    name: str
    encoding: Literal["JPEG"]
    width: int
    height: int
    fps: int
    rtsp_path: str  # advertised by GetStreamUri; camsim does not stream MJPEG (404)


@dataclass(frozen=True)
class Persona:
    """One kind of camera, as it presents itself over ONVIF, WS-Discovery and RTSP."""

    name: str
    description: str
    vendor: str  # GetDeviceInformation Manufacturer, as the vendor spells it
    model: str
    firmware: str
    hardware_id: str
    serial_prefix: str
    mac_oui: str  # the vendor's IEEE OUI (or a locally administered prefix for no-name gear)
    rtsp_main: str  # RTSP request path including its query, in the vendor's real form
    rtsp_sub: str
    main: VideoSpec
    sub: VideoSpec
    profile_tokens: tuple[str, str]
    media_path: str
    snapshot_path: str
    location: str  # ONVIF scope tail, e.g. "city/hangzhou"
    onvif_port: int = 80  # the vendor's default ONVIF HTTP port (used with --vendor-ports)
    quirks: frozenset[Quirk] = field(default_factory=frozenset)
    clock_skew: float = 0.0  # seconds the camera's clock is ahead of true time
    rtsp_auth: HttpAuth = "digest"
    snapshot_auth: HttpAuth = "digest"
    # A recorder (NVR) has one video source per channel; its paths and profile tokens carry
    # `{channel}`, filled in with the channel number from 1.
    channels: int = 1
    extra_profiles: tuple[ExtraProfile, ...] = ()
    max_sessions: int = 4  # RTSP sessions at once (recorders allow many more)
    name_scope: str | None = None  # ONVIF name scope, when not "vendor model"

    def rtsp_path(self, stream: StreamName, channel: int = 1) -> str:
        path = self.rtsp_main if stream == "main" else self.rtsp_sub
        return path.replace("{channel}", str(channel))

    def profile_token(self, stream: StreamName, channel: int = 1) -> str:
        token = self.profile_tokens[0 if stream == "main" else 1]
        return token.replace("{channel}", str(channel))

    def identity(self, camera_id: str) -> CameraIdentity:
        """Serial, MAC and endpoint UUID, stable for the same persona and camera id."""
        digest = hashlib.sha256(f"{self.name}/{camera_id}".encode()).digest()
        serial = f"{self.serial_prefix}{int.from_bytes(digest[:5], 'big') % 10**9:09d}"
        mac = ":".join([*self.mac_oui.lower().split(":"), *(f"{b:02x}" for b in digest[5:8])])
        endpoint = uuid.UUID(bytes=digest[8:24], version=4)
        return CameraIdentity(serial=serial, mac=mac, endpoint=f"urn:uuid:{endpoint}")


@dataclass(frozen=True)
class CameraIdentity:
    serial: str
    mac: str
    endpoint: str  # WS-Discovery EndpointReference address


_1080P = VideoSpec(codec="h264", width=1920, height=1080, fps=15, gop=30, bitrate=4_000_000)
_1080P_HEVC = VideoSpec(codec="hevc", width=1920, height=1080, fps=15, gop=30, bitrate=2_000_000)
_4MP = VideoSpec(codec="h264", width=2688, height=1520, fps=15, gop=30, bitrate=6_000_000)
_720P = VideoSpec(codec="h264", width=1280, height=720, fps=15, gop=30, bitrate=2_000_000)
_SUB_360P = VideoSpec(codec="h264", width=640, height=360, fps=15, gop=30, bitrate=512_000)
_SUB_240 = VideoSpec(codec="h264", width=352, height=240, fps=15, gop=30, bitrate=256_000)
_1080P_BFRAMES = VideoSpec(
    codec="h264", width=1920, height=1080, fps=15, gop=30, bitrate=4_000_000, bframes=2
)

_HIKVISION = Persona(
    name="hikvision",
    description="Hikvision 2 MP bullet, current firmware, no quirks",
    vendor="HIKVISION",
    model="DS-2CD2023G0-I",
    firmware="V5.7.3 build 220112",
    hardware_id="88",
    serial_prefix="DS-",
    mac_oui="44:19:B6",
    rtsp_main="/Streaming/Channels/101",
    rtsp_sub="/Streaming/Channels/102",
    main=_1080P,
    sub=_SUB_360P,
    profile_tokens=("Profile_1", "Profile_2"),
    media_path="/onvif/Media",
    snapshot_path="/onvif-http/snapshot",
    location="city/hangzhou",
)
_DAHUA = Persona(
    name="dahua",
    description="Dahua 2 MP bullet with its CIF-class default sub stream",
    vendor="Dahua",
    model="IPC-HFW1230S",
    firmware="V2.820.0000000.20.R, Build Date: 2022-05-24",
    hardware_id="1.00",
    serial_prefix="7G0",
    mac_oui="3C:EF:8C",
    rtsp_main="/cam/realmonitor?channel=1&subtype=0",
    rtsp_sub="/cam/realmonitor?channel=1&subtype=1",
    main=_1080P,
    sub=_SUB_240,
    profile_tokens=("MediaProfile00000", "MediaProfile00001"),
    media_path="/onvif/media_service",
    snapshot_path="/onvifsnapshot/media_service/snapshot",
    location="country/china",
    quirks=frozenset({Quirk.SUB_352X240}),
)
_AXIS = Persona(
    name="axis",
    description="Axis 1080p box camera used with a VAPIX account: HTTP Digest only",
    vendor="AXIS",
    model="M1065-L",
    firmware="10.12.114",
    hardware_id="7AB",
    serial_prefix="ACCC8E",
    mac_oui="AC:CC:8E",
    rtsp_main="/axis-media/media.amp?videocodec=h264&resolution=1920x1080",
    rtsp_sub="/axis-media/media.amp?videocodec=h264&resolution=640x360",
    main=_1080P,
    sub=_SUB_360P,
    profile_tokens=("profile_1_h264", "profile_2_h264"),
    media_path="/onvif/services",
    snapshot_path="/axis-cgi/jpg/image.cgi",
    location="country/sweden",
    quirks=frozenset({Quirk.HTTP_DIGEST_AUTH}),
)
_GENERIC = Persona(
    name="generic",
    description="A well-behaved ONVIF Profile S camera with no quirks",
    vendor="Generic",
    model="IPC-1080P",
    firmware="V1.0.0 build 200101",
    hardware_id="1.0",
    serial_prefix="GEN",
    mac_oui="02:CA:5E",
    rtsp_main="/stream1",
    rtsp_sub="/stream2",
    main=_1080P,
    sub=_SUB_360P,
    profile_tokens=("profile_main", "profile_sub"),
    media_path="/onvif/media_service",
    snapshot_path="/snapshot.jpg",
    location="country/us",
)

_CATALOGUE: tuple[Persona, ...] = (
    _HIKVISION,
    replace(
        _HIKVISION,
        name="hikvision-nvr",
        # An 8-channel Hikvision NVR reached over ONVIF: one device, eight video sources, and
        # the recorder's channel paths /Streaming/Channels/<channel>01 and <channel>02 (sources
        # in firmware_profiles/hikvision.toml).
        description="Hikvision 8-channel NVR: one ONVIF device, a video source per channel",
        model="DS-7608NI-K2",
        firmware="V4.30.085 build 200916",
        hardware_id="0x0",
        rtsp_main="/Streaming/Channels/{channel}01",
        rtsp_sub="/Streaming/Channels/{channel}02",
        profile_tokens=("Profile_{channel}01", "Profile_{channel}02"),
        channels=8,
        max_sessions=64,
    ),
    replace(
        _HIKVISION,
        name="hikvision-vulnerable",
        # NVD lists DS-2CD2143G2-I among the models affected by CVE-2021-36260 (unauthenticated
        # command injection); Watchful IP, who found it, names IPC_G5 5.5.113_210317 as the most
        # recent vulnerable release; Hikvision marks V5.7.1 build 211009 safe. Sources in
        # firmware_profiles/hikvision.toml.
        description="Hikvision 4 MP dome on 2021 firmware vulnerable to CVE-2021-36260",
        model="DS-2CD2143G2-I",
        firmware="V5.5.113 build 210317",
        main=_4MP,
    ),
    _DAHUA,
    replace(
        _DAHUA,
        name="dahua-mjpeg",
        # Dahua's second sub stream (subtype=2) offered as MJPEG and listed by ONVIF as a third
        # profile, smaller than the H.264 sub stream: the agent must not pick it (issue 13).
        description="Dahua 2 MP bullet with an H.264 sub stream and a smaller MJPEG third one",
        model="IPC-HFW2231S",
        sub=_SUB_360P,
        quirks=frozenset(),
        extra_profiles=(
            ExtraProfile(
                token="MediaProfile00002",  # noqa: S106 - an ONVIF profile token
                name="ThirdStream",
                encoding="JPEG",
                width=352,
                height=288,
                fps=5,
                rtsp_path="/cam/realmonitor?channel=1&subtype=2",
            ),
        ),
    ),
    replace(
        _DAHUA,
        name="amcrest",
        description="Amcrest (Dahua OEM) 1080p camera that double-escapes its stream URI",
        vendor="Amcrest",
        model="IP2M-841B",
        firmware="V2.800.00AC006.0.R, Build Date: 2021-11-16",
        serial_prefix="AMC0",
        mac_oui="9C:8E:CD",
        quirks=frozenset({Quirk.SUB_352X240, Quirk.ESCAPED_STREAM_URI}),
    ),
    _AXIS,
    replace(
        _AXIS,
        name="axis-mjpeg",
        # Axis cameras come with JPEG media profiles next to the H.264 ones; here the owner
        # kept only the JPEG one as the second profile, so MJPEG is all there is besides main.
        description="Axis 1080p box camera whose only second profile is MJPEG",
        model="P1375",
        firmware="10.12.114",
        profile_tokens=("profile_1_h264", "profile_2_jpeg"),
        rtsp_sub="/axis-media/media.amp?videocodec=jpeg&resolution=640x360",
        quirks=frozenset({Quirk.HTTP_DIGEST_AUTH, Quirk.MJPEG_SUB}),
    ),
    replace(
        _AXIS,
        name="axis-legacy",
        description="Older Axis firmware without GetServices (GetCapabilities only)",
        model="M1054",
        firmware="5.50.3",
        hardware_id="1A4",
        serial_prefix="00408C",
        mac_oui="00:40:8C",
        rtsp_main="/axis-media/media.amp?videocodec=h264&resolution=1280x720",
        main=_720P,
        quirks=frozenset({Quirk.NO_GET_SERVICES}),
    ),
    Persona(
        name="reolink",
        description="Reolink 4K bullet whose main stream is H.265 (owner set it to 1080p)",
        vendor="Reolink",
        model="RLC-810A",
        firmware="v3.1.0.956_22041503",
        hardware_id="IPC_523128M8MP",
        serial_prefix="1922",
        mac_oui="EC:71:DB",
        # 8 MP Reolinks send H.265 on the main stream, fetched at /h265Preview_01_main
        # (Reolink support article 900000638523; blakeblackshear/frigate discussion #11454).
        rtsp_main="/h265Preview_01_main",
        rtsp_sub="/h264Preview_01_sub",
        main=_1080P_HEVC,
        sub=_SUB_360P,
        profile_tokens=("000", "001"),
        media_path="/onvif/media_service",
        snapshot_path="/cgi-bin/api.cgi",
        location="country/china",
        onvif_port=8000,
        quirks=frozenset({Quirk.H265_MAIN}),
    ),
    Persona(
        name="hanwha",
        description="Hanwha Wisenet 2 MP bullet with a clock a few seconds off (no NTP)",
        vendor="Hanwha Techwin",
        model="XNO-6020R",
        firmware="2.10.01_20220729",
        hardware_id="XNO-6020R",
        serial_prefix="ZNA",
        mac_oui="00:09:18",
        rtsp_main="/profile2/media.smp",
        rtsp_sub="/profile3/media.smp",
        main=_1080P,
        sub=_SUB_360P,
        profile_tokens=("profile2", "profile3"),
        media_path="/onvif/media_service",
        snapshot_path="/stw-cgi/video.cgi",
        location="country/korea",
        clock_skew=3.5,
    ),
    Persona(
        name="tapo",
        description="TP-Link Tapo home camera: ONVIF on port 2020, no snapshot over ONVIF",
        vendor="TP-LINK",
        model="Tapo C200",
        firmware="1.1.16 Build 211209 Rel. 37726n",
        hardware_id="2.0",
        serial_prefix="",
        mac_oui="50:C7:BF",
        rtsp_main="/stream1",
        rtsp_sub="/stream2",
        main=_1080P,
        sub=_SUB_360P,
        profile_tokens=("profile_1", "profile_2"),
        media_path="/onvif/service",
        snapshot_path="/snapshot.jpg",
        location="country/china",
        onvif_port=2020,
        quirks=frozenset({Quirk.NO_SNAPSHOT}),
    ),
    replace(
        _GENERIC,
        name="budget",
        description="No-name 720p camera: 0.0.0.0 service addresses, PasswordText only, "
        "clock drifted by minutes",
        vendor="IPCAM",
        model="IPC-XM530",
        firmware="V5.00.R02.000559A7.10010.346832.0000000",
        hardware_id="XM530_50X20",
        serial_prefix="b2",
        mac_oui="02:12:41",
        rtsp_main="/h264/ch1/main/av_stream",
        rtsp_sub="/h264/ch1/sub/av_stream",
        main=_720P,
        profile_tokens=("000", "001"),
        media_path="/onvif/Media",
        snapshot_path="/webcapture.jpg",
        location="country/china",
        onvif_port=8899,
        quirks=frozenset({Quirk.XADDR_ZERO_HOST, Quirk.PASSWORD_TEXT_ONLY}),
        clock_skew=437.0,
        snapshot_auth="basic",
    ),
    replace(
        _HIKVISION,
        name="hikvision-bare",
        # Issue 13: a camera that answers GetDeviceInformation but neither GetServices nor
        # GetCapabilities, on the firmware flagged for CVE-2021-36260 (as hikvision-vulnerable).
        description="Hikvision on 2021 firmware that names no service (no GetServices or "
        "GetCapabilities)",
        model="DS-2CD2143G2-I",
        firmware="V5.5.113 build 210317",
        quirks=frozenset({Quirk.NO_GET_SERVICES, Quirk.NO_GET_CAPABILITIES}),
    ),
    Persona(
        name="uniview-locked",
        description="Uniview 2 MP turret that tells its time only with credentials, and whose "
        "clock is 20 minutes off (beyond WS-Security's ±5 min)",
        vendor="Uniview",
        model="IPC3612LB-SF28-A",
        firmware="DIPC-B1216.5.7.230109",
        hardware_id="A",
        serial_prefix="210235",
        mac_oui="48:EA:63",
        # Uniview IP cameras: /media/video1 main, /media/video2 sub (firmware_profiles).
        rtsp_main="/media/video1",
        rtsp_sub="/media/video2",
        main=_1080P,
        sub=_SUB_360P,
        profile_tokens=("media_profile1", "media_profile2"),
        media_path="/onvif/media_service",
        snapshot_path="/images/snapshot.jpg",
        location="country/china",
        quirks=frozenset({Quirk.CLOCK_NEEDS_AUTH}),
        clock_skew=1200.0,
    ),
    replace(
        _GENERIC,
        name="loose-wsd",
        description="No-name camera whose WS-Discovery replies bend the spec (no ProbeMatches "
        "wrapper, messy XAddrs, ISO-8859-1 name)",
        vendor="IPC",
        model="HX-2321-IR",
        firmware="V2.1.4 build 190611",
        serial_prefix="HX",
        mac_oui="02:4C:57",
        quirks=frozenset({Quirk.WSD_LOOSE_REPLY}),
        name_scope="Caméra entrée",
    ),
    replace(
        _GENERIC,
        name="budget-dvr",
        description="No-name camera: duplicated port in service addresses, GetStreamUri "
        "faults, ignores WS-Discovery",
        vendor="HD-IPC",
        model="HI3516EV300",
        firmware="V4.02.R11.00035520.10010.346300",
        hardware_id="HI3516EV300_85H30AI",
        serial_prefix="HD",
        mac_oui="02:00:A3",
        rtsp_main="/live/ch00_0",
        rtsp_sub="/live/ch00_1",
        profile_tokens=("PROFILE_000", "PROFILE_001"),
        location="country/china",
        onvif_port=8080,
        quirks=frozenset(
            {Quirk.XADDR_DUPLICATE_PORT, Quirk.STREAM_URI_FAILS, Quirk.NO_WS_DISCOVERY}
        ),
    ),
    replace(
        _GENERIC,
        name="bframes",
        # Most cameras send no B-frames, but H.264 Main/High profile allows them and some
        # encoders use them when the owner picks a "high quality" profile: frames arrive in
        # decode order, presentation times run ahead of decode times, and a stream starts with
        # the first decode time before the first presentation time (issue 11: every reconnect
        # of such a camera lost about 2 s to a writer that took this for a discontinuity).
        description="A well-behaved camera whose main stream is H.264 with B-frames",
        model="IPC-1080P-B",
        main=_1080P_BFRAMES,
    ),
    _GENERIC,
)

PERSONAS: dict[str, Persona] = {p.name: p for p in _CATALOGUE}


class UnknownPersonaError(KeyError):
    def __str__(self) -> str:
        return f"unknown persona {self.args[0]!r}; known: {', '.join(PERSONAS)}"


def get_persona(name: str) -> Persona:
    try:
        return PERSONAS[name]
    except KeyError:
        raise UnknownPersonaError(name) from None
