"""Opening a camera's RTSP stream with PyAV: the libav options and the bounded open.

Every reader of a camera opens the same way: RTSP interleaved over TCP, a small probe and no
analyze duration (the open takes ~0.25 s instead of ~2 s, see FIELD-NOTES), and libav's socket
timeout as the bound on how long a read waits for video. The caller says what differs: whether
audio is set up too (`rtcc-edge check` reports it; the recorder and the live tunnel never use
it) and whether PyAV's own timeout also bounds each read (the probe reads a few seconds; a
recorder reads for days and has its watchdog).

Errors are PyAV's and the OS's own (`av.error.FFmpegError`, `OSError`, …): each caller words
them for its reader, with the URL's credentials taken out by `StreamSource.redact`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import av

from agent.media.source import StreamSource


def rtsp_options(
    *, read_timeout: float, video_only: bool = True, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """libav options for a quick, bounded RTSP open over TCP.

    No `fflags=nobuffer`: measured against camsim it does not open any faster, and it throws
    away the packets read while probing — the first keyframe among them — so a reconnect would
    record up to one keyframe interval later than it can.
    """
    options = {"rtsp_transport": "tcp"}
    if video_only:
        options["allowed_media_types"] = "video"  # do not SETUP audio nobody reads
    options.update(
        {
            "probesize": "32768",
            "analyzeduration": "0",
            # Socket I/O timeout in µs: how long a read waits for video before the camera counts
            # as stalled (at open, before the first packet, and while streaming).
            "timeout": str(int(read_timeout * 1_000_000)),
        }
    )
    if extra:
        options.update(extra)
    return options


def open_rtsp(
    source: StreamSource,
    options: Mapping[str, str],
    *,
    open_timeout: float,
    read_timeout: float | None = None,
) -> Any:
    """`av.open` of `source`'s URL (credentials included) with `options` (`rtsp_options`).

    PyAV's own timeout bounds the open (`open_timeout`) and, when `read_timeout` is given, each
    read. Without it only libav's socket timeout and the caller's watchdog bound the reads: PyAV's
    interrupt callback would take the GIL on every libav I/O call (~0.05 % of a core at
    4 Mbit/s), which a recorder reading for days does not pay.
    """
    return av.open(source.url, options=dict(options), timeout=(open_timeout, read_timeout))
