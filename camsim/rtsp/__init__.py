"""camsim's RTSP server: Digest auth, TCP interleaved and UDP, H.264/H.265 with timing SEI.

server = RtspServer({"/Streaming/Channels/101": encode_stream(VideoSpec())},
                    username="admin", password="secret")
await server.start()   # then rtsp://admin:secret@127.0.0.1:{server.port}/Streaming/Channels/101
"""

from .protocol import ParserLimits
from .server import RtspLimits, RtspServer

__all__ = ["ParserLimits", "RtspLimits", "RtspServer"]
