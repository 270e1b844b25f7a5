"""Checking what a publisher sends the relay: an fMP4 init segment, then one fragment per message.

The relay must know which fragments start with a keyframe (a viewer may only start there), which
codec the stream carries (a browser that cannot play it is told so) and must not pass on garbage
to viewers, so every message is parsed before it is served. The publisher is a site the RTCC
asked to stream, but its bytes are still input from outside: anything malformed is a
`MediaError` (the relay then closes the ingest), never an exception from deep inside a parser.

The parsing is the agent's own (`agent.media.fmp4`, the parser its store checks its segments
with), so the relay accepts exactly the fragmented MP4 the agent writes: an init segment of
`ftyp` + `moov` (with `mvex`, a video track), then fragments of one `moof` and its `mdat`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.media.fmp4 import Box, BoxError, TrackInfo, iter_boxes, parse_fragment, parse_moov

MAX_INIT_BYTES = 1024 * 1024
MAX_FRAGMENT_BYTES = 16 * 1024 * 1024

_INIT_BOXES = {"ftyp", "moov", "free", "skip", "uuid", "styp"}
_FRAGMENT_PREFIX_BOXES = {"styp", "sidx", "prft", "emsg", "free", "skip"}


class MediaError(ValueError):
    """A message is not the fMP4 init segment or fragment the relay protocol expects."""


@dataclass(frozen=True)
class InitInfo:
    """What the relay keeps from an init segment: the video track (id, codec, size, defaults)
    and its RFC 6381 codec string (`codecs`), what a browser's `MediaSource.isTypeSupported`
    is asked about."""

    track: TrackInfo
    codecs: str = ""

    @property
    def codec(self) -> str:
        """The sample entry (`avc1`, `hvc1`, …)."""
        return self.track.codec

    @property
    def codec_name(self) -> str:
        """`h264`, `hevc`, …"""
        return self.track.codec_name


def _boxes(data: bytes) -> list[Box]:
    try:
        return list(iter_boxes(data))
    except BoxError as exc:
        raise MediaError(str(exc)) from None


def parse_init(data: bytes) -> InitInfo:
    """Check an init segment (ftyp + moov with mvex, no media); its video track."""
    if len(data) > MAX_INIT_BYTES:
        raise MediaError(f"init segment of {len(data)} bytes (limit {MAX_INIT_BYTES})")
    moov: Box | None = None
    for box in _boxes(data):
        if box.type in ("moof", "mdat"):
            raise MediaError(f"media box {box.type!r} in the init segment")
        if box.type not in _INIT_BOXES:
            raise MediaError(f"unexpected box {box.type!r} in the init segment")
        if box.type == "moov":
            moov = box
    if moov is None:
        raise MediaError("the init segment has no moov box")
    try:
        children = {child.type for child in iter_boxes(data, moov.payload, moov.end)}
        if "mvex" not in children:
            raise MediaError("the init segment is not fragmented (no mvex box)")
        track = parse_moov(data, moov)
        return InitInfo(track, codec_string(data, track.codec))
    except BoxError as exc:
        raise MediaError(f"the init segment's moov: {exc}") from None


def fragment_keyframe(data: bytes, init: InitInfo) -> bool:
    """Check one media fragment (moof + mdat); whether its first sample is a sync sample."""
    if len(data) > MAX_FRAGMENT_BYTES:
        raise MediaError(f"fragment of {len(data)} bytes (limit {MAX_FRAGMENT_BYTES})")
    moof: Box | None = None
    mdat: Box | None = None
    for box in _boxes(data):
        if box.type == "moof":
            if moof is not None:
                raise MediaError("more than one moof in a message")
            moof = box
        elif box.type == "mdat":
            if moof is None:
                raise MediaError("mdat before moof")
            if mdat is not None:
                raise MediaError("more than one mdat in a message")
            mdat = box
        elif box.type not in _FRAGMENT_PREFIX_BOXES or moof is not None:
            raise MediaError(f"unexpected box {box.type!r} in a fragment")
    if moof is None or mdat is None:
        raise MediaError("a fragment needs a moof and its mdat")
    try:
        return parse_fragment(data, moof, mdat, init.track).keyframe
    except BoxError as exc:
        raise MediaError(f"the fragment: {exc}") from None


def _config_record(data: bytes, tag: bytes) -> bytes | None:
    """The payload of the first `tag` box (avcC, hvcC) in `data`: it sits inside the sample
    entry, whose fixed fields are not boxes, so it is found by its size-and-type header."""
    start = 0
    while (at := data.find(tag, start)) >= 4:
        size = int.from_bytes(data[at - 4 : at], "big")
        end = at - 4 + size
        if size > 8 and end <= len(data):
            return data[at + 4 : end]
        start = at + 1
    return None


def _hevc_string(fourcc: str, record: bytes) -> str:
    """ISO/IEC 14496-15 annex E: hvc1.<space><profile>.<compat, bit-reversed>.<tier><level>
    .<constraint bytes, trailing zeros dropped>."""
    space = "" if record[1] >> 6 == 0 else "ABC"[(record[1] >> 6) - 1]
    profile = record[1] & 0x1F
    tier = "H" if record[1] & 0x20 else "L"
    compat = int.from_bytes(record[2:6], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    constraints = list(record[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [fourcc, f"{space}{profile}", f"{reversed_compat:X}", f"{tier}{record[12]}"]
    parts += [f"{byte:X}" for byte in constraints]
    return ".".join(parts)


def codec_string(init: bytes, fourcc: str) -> str:
    """The RFC 6381 `codecs` value of the init segment's video (`avc1.64001F`,
    `hvc1.1.6.L93.B0`); the bare four-cc when its configuration record is missing."""
    if fourcc in ("avc1", "avc3"):
        record = _config_record(init, b"avcC")
        if record is not None and len(record) >= 4:
            return f"{fourcc}.{record[1]:02X}{record[2]:02X}{record[3]:02X}"
    elif fourcc in ("hvc1", "hev1"):
        record = _config_record(init, b"hvcC")
        if record is not None and len(record) >= 13:
            return _hevc_string(fourcc, record)
    return fourcc
