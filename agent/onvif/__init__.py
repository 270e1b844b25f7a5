"""ONVIF: find cameras on the site's network and talk to each one, quirks and all.

    result = await find_cameras(scan=["192.168.1.0/24"])        # WS-Discovery + port sweep
    async with OnvifCamera(host, port, username=..., password=...) as camera:
        camera.info, camera.auth, camera.clock, camera.services, camera.quirks
        profile = select_profile(await camera.profiles(), "main")
        uri = await camera.stream_uri(profile.token)
    uri = await stream_uri(onvif_url, username=..., password=..., stream="main")  # the recorder's

Every failure is an `OnvifError` (`kind`: unreachable, timeout, not_onvif, malformed, auth,
fault) whose message a technician can act on.
"""

from agent.onvif.addresses import fix_service_url, fix_stream_uri, rtsp_url, unescape_uri
from agent.onvif.device import (
    AuthMethod,
    DeviceInfo,
    OnvifCamera,
    QuirkSeen,
    channel_of,
    stream_uri,
)
from agent.onvif.discovery import (
    MAX_SCAN_ADDRESSES,
    WS_DISCOVERY_PORT,
    Interface,
    ScanRangeError,
    WsDiscovery,
    multicast_interfaces,
    scan_hosts,
    ws_discover,
)
from agent.onvif.errors import (
    AuthFailed,
    MalformedAnswer,
    NoAnswer,
    NotOnvif,
    OnvifError,
    OnvifFault,
    Unreachable,
)
from agent.onvif.finder import DiscoveryResult, FoundCamera, find_cameras
from agent.onvif.media import (
    Channel,
    MediaProfile,
    ProfileChoice,
    VideoSource,
    choose_profile,
    group_channels,
    select_profile,
)
from agent.onvif.soap import ClockReading, system_date_and_time
from agent.onvif.sweep import DEFAULT_PORTS, SweepHit, port_sweep
from agent.onvif.wsd_reply import ProbeMatch

__all__ = [
    "DEFAULT_PORTS",
    "MAX_SCAN_ADDRESSES",
    "WS_DISCOVERY_PORT",
    "AuthFailed",
    "AuthMethod",
    "Channel",
    "ClockReading",
    "DeviceInfo",
    "DiscoveryResult",
    "FoundCamera",
    "Interface",
    "MalformedAnswer",
    "MediaProfile",
    "NoAnswer",
    "NotOnvif",
    "OnvifCamera",
    "OnvifError",
    "OnvifFault",
    "ProbeMatch",
    "ProfileChoice",
    "QuirkSeen",
    "ScanRangeError",
    "SweepHit",
    "Unreachable",
    "VideoSource",
    "WsDiscovery",
    "channel_of",
    "choose_profile",
    "find_cameras",
    "fix_service_url",
    "fix_stream_uri",
    "group_channels",
    "multicast_interfaces",
    "port_sweep",
    "rtsp_url",
    "scan_hosts",
    "select_profile",
    "stream_uri",
    "system_date_and_time",
    "unescape_uri",
    "ws_discover",
]
