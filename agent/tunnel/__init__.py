"""Live view through an outbound tunnel: the RTCC watches a camera without the site opening a port.

On an accepted `stream` request the agent dials the relay's WSS URL (allowed hosts only) and
sends the camera's video, remuxed without transcoding to fragmented MP4: the init segment, then
one media fragment per binary message, from the recorder's live fan-out (or an RTSP session of
its own for another profile). `TunnelManager` is the request service's `stream` handler and the
owner's view of sessions in progress; `LiveSession` is one session's life (see its module for
the end reasons and the memory ceiling).
"""

from agent.tunnel.client import ClientSettings, RelayConnection, RelayError, relay_ssl_context
from agent.tunnel.manager import TunnelComponent, TunnelManager
from agent.tunnel.session import END_REASONS, LiveSession, TunnelSettings
from agent.tunnel.sources import LiveSources, SourceUnavailable, counterpart_path

__all__ = [
    "END_REASONS",
    "ClientSettings",
    "LiveSession",
    "LiveSources",
    "RelayConnection",
    "RelayError",
    "SourceUnavailable",
    "TunnelComponent",
    "TunnelManager",
    "TunnelSettings",
    "counterpart_path",
    "relay_ssl_context",
]
