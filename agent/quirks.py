"""Every camera quirk the agent knows: its id, what the camera does, and what the agent does.

This is the one list. Discovery, the ONVIF wrapper, the stream checks and the firmware profiles
all name quirks by these ids, and every report takes its words from here, so a technician reads
the same sentence for the same misbehaviour wherever it was seen:

    info = QUIRKS[QuirkId.NO_GET_SERVICES]
    info.detail       # "does not implement GetServices"
    info.workaround   # "service addresses taken from GetCapabilities"

A quirk the agent only detects has no workaround (`None`): the report says what it does about
it in a verdict instead. Firmware profiles may also carry vendor-specific quirks (`x_<name>`),
shown with their own description and driving nothing automatic.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QuirkId(StrEnum):
    # Service addresses and stream URIs (agent.onvif.addresses)
    XADDR_ZERO_HOST = "xaddr_zero_host"
    XADDR_DUPLICATE_PORT = "xaddr_duplicate_port"
    XADDR_OTHER_HOST = "xaddr_other_host"
    ESCAPED_STREAM_URI = "escaped_stream_uri"
    # ONVIF device service (agent.onvif.device)
    NO_GET_SERVICES = "no_get_services"
    NO_GET_CAPABILITIES = "no_get_capabilities"
    PASSWORD_TEXT_ONLY = "password_text_only"  # noqa: S105 - a quirk name, not a secret
    HTTP_DIGEST_AUTH = "http_digest_auth"
    CLOCK_NEEDS_AUTH = "clock_needs_auth"
    NO_SNAPSHOT = "no_snapshot"
    STREAM_URI_FAILS = "stream_uri_fails"
    # Streams (agent.compat.check)
    H265_MAIN = "h265_main"
    SUB_352X240 = "sub_352x240"
    MJPEG_SUB = "mjpeg_sub"
    # Discovery (agent.onvif.finder)
    NO_WS_DISCOVERY = "no_ws_discovery"
    WSD_REPLY_UNUSABLE = "wsd_reply_unusable"
    WSD_LOOSE_REPLY = "wsd_loose_reply"
    # Known from firmware profiles only (a setting, not something the agent can see)
    ONVIF_DISABLED_DEFAULT = "onvif_disabled_default"
    RTSP_DISABLED_DEFAULT = "rtsp_disabled_default"
    ONVIF_SEPARATE_ACCOUNT = "onvif_separate_account"


CUSTOM_QUIRK_PATTERN = r"^x_[a-z0-9_]{1,60}$"


@dataclass(frozen=True)
class QuirkInfo:
    id: QuirkId
    detail: str  # what the camera does, completing "the camera …"
    workaround: str | None  # what the agent does about it (None: detected and reported only)


_SERVICES_REWRITTEN = "service addresses rewritten to the address we reached"

QUIRKS: dict[QuirkId, QuirkInfo] = {
    info.id: info
    for info in (
        QuirkInfo(
            QuirkId.XADDR_ZERO_HOST,
            "advertises its service addresses with host 0.0.0.0",
            _SERVICES_REWRITTEN,
        ),
        QuirkInfo(
            QuirkId.XADDR_DUPLICATE_PORT,
            "advertises its service addresses with the port written twice",
            "duplicated port removed",
        ),
        QuirkInfo(
            QuirkId.XADDR_OTHER_HOST,
            "advertises service addresses on another host than the one we reached (its LAN "
            "address seen through NAT, or a name)",
            _SERVICES_REWRITTEN,
        ),
        QuirkInfo(
            QuirkId.ESCAPED_STREAM_URI,
            "returns its stream URI XML-escaped twice (&amp; for &)",
            "stream URI unescaped",
        ),
        QuirkInfo(
            QuirkId.NO_GET_SERVICES,
            "does not implement GetServices",
            "service addresses taken from GetCapabilities",
        ),
        QuirkInfo(
            QuirkId.NO_GET_CAPABILITIES,
            "answers neither GetServices nor GetCapabilities, so it names no media service",
            "asked for its media profiles at the device service address",
        ),
        QuirkInfo(
            QuirkId.PASSWORD_TEXT_ONLY,
            "refuses WS-Security PasswordDigest and accepts only PasswordText",
            "authenticated with PasswordText",
        ),
        QuirkInfo(
            QuirkId.HTTP_DIGEST_AUTH,
            "ignores WS-Security and requires HTTP Digest authentication",
            "authenticated with HTTP Digest",
        ),
        QuirkInfo(
            QuirkId.CLOCK_NEEDS_AUTH,
            "tells its time only to a logged-in client (ONVIF lets anyone ask)",
            "asked again with the credentials",
        ),
        QuirkInfo(
            QuirkId.NO_SNAPSHOT,
            "does not offer an ONVIF snapshot URI",
            "snapshots are taken from the video stream instead",
        ),
        QuirkInfo(QuirkId.STREAM_URI_FAILS, "answers GetStreamUri with a fault", None),
        QuirkInfo(
            QuirkId.H265_MAIN,
            "says H264 in GetProfiles but streams H.265 (ONVIF Media1 cannot say H.265)",
            None,
        ),
        QuirkInfo(QuirkId.SUB_352X240, "offers a sub stream of only 352x240 (CIF)", None),
        QuirkInfo(
            QuirkId.MJPEG_SUB,
            "offers only MJPEG (a JPEG picture per frame) as its second stream",
            None,
        ),
        QuirkInfo(
            QuirkId.NO_WS_DISCOVERY,
            "ignores WS-Discovery Probes",
            "found by the port sweep",
        ),
        QuirkInfo(
            QuirkId.WSD_REPLY_UNUSABLE,
            "answers WS-Discovery Probes with a reply that cannot be used",
            "found by the port sweep",
        ),
        QuirkInfo(
            QuirkId.WSD_LOOSE_REPLY,
            "answers WS-Discovery Probes with a reply that bends the standard",
            "reply accepted as it is",
        ),
        QuirkInfo(
            QuirkId.ONVIF_DISABLED_DEFAULT,
            "ships with ONVIF switched off",
            None,
        ),
        QuirkInfo(
            QuirkId.RTSP_DISABLED_DEFAULT,
            "ships with RTSP switched off",
            None,
        ),
        QuirkInfo(
            QuirkId.ONVIF_SEPARATE_ACCOUNT,
            "keeps ONVIF users in a list of their own, apart from its web login",
            None,
        ),
    )
}

# Quirks seen while finding cameras rather than while checking one.
DISCOVERY_QUIRKS = frozenset(
    {QuirkId.NO_WS_DISCOVERY, QuirkId.WSD_REPLY_UNUSABLE, QuirkId.WSD_LOOSE_REPLY}
)


def describe(quirk_id: str, *, worked_around: bool = True, why: str | None = None) -> QuirkInfo:
    """The words for `quirk_id`; `why` adds what exactly was seen ("… (no ProbeMatches
    wrapper)"), and `worked_around=False` drops the workaround when it did not apply."""
    info = QUIRKS[QuirkId(quirk_id)]
    detail = f"{info.detail} ({why})" if why else info.detail
    return QuirkInfo(info.id, detail, info.workaround if worked_around else None)
