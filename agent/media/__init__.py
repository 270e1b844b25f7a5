"""A camera's media: where its stream is, how it is opened, and the fMP4 it is written as.

The floor below everything that reads or checks video: the recorder (`agent.recorder`), the
compatibility checks and discovery (`agent.compat`, `agent.cameras`), the live tunnel
(`agent.tunnel`), the clip store (`agent.store`) and the hub's live relay all build on it, and
it imports none of them, so recording and discovery never depend on each other.

    source = await resolve_source(camera, state_dir=...)   # source.py: URL, credentials
    log.info("opening", url=source.display_url)             # never source.url: it has the password
    container = open_rtsp(source, rtsp_options(read_timeout=10.0), open_timeout=5.0)  # open.py

- `source.py`: a camera's RTSP URL from its configuration (`rtsp_url`, or asked over ONVIF's
  GetStreamUri), its credentials put in (and decrypted), and everything about it redacted
  through `agent.redact` (`StreamSource.redact`, `display_url`).
- `open.py`: the libav options and the bounded PyAV open every reader of a camera uses.
- `fmp4.py`: the fragmented-MP4 box parser (init segment, fragments, samples) the store checks
  its segments with and the hub's relay checks what a site publishes with.
"""

from agent.media.source import SourceError, StreamSource, resolve_source, rtsp_source

__all__ = ["SourceError", "StreamSource", "resolve_source", "rtsp_source"]
