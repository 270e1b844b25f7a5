"""Checking what a publisher sends the relay: an fMP4 init segment, then one fragment per message.

The relay must know which fragments start with a keyframe (a viewer may only start there) and
must not pass on garbage to viewers, so every message is parsed here before it is served. The
publisher is a site the RTCC asked to stream, but its bytes are still input from outside: every
size is checked against the message, and anything malformed is a `MediaError` (the relay then
closes the ingest), never an exception from deep inside the parser.

Only what the relay needs is read: the init segment's top-level boxes (it must hold a `moov`
and no media) and the track defaults in `moov/mvex/trex`; per fragment, its `moof`+`mdat` pair and
the sync flag of the first sample (`trun` first-sample or per-sample flags, else `tfhd`
defaults, else `trex` defaults).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

MAX_INIT_BYTES = 1024 * 1024
MAX_FRAGMENT_BYTES = 16 * 1024 * 1024

_HEADER = struct.Struct(">I4s")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_NON_SYNC = 0x10000
_TFHD_BASE_DATA_OFFSET = 0x1
_TFHD_SAMPLE_DESCRIPTION = 0x2
_TFHD_DEFAULT_DURATION = 0x8
_TFHD_DEFAULT_SIZE = 0x10
_TFHD_DEFAULT_FLAGS = 0x20
_TRUN_DATA_OFFSET = 0x1
_TRUN_FIRST_FLAGS = 0x4
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_INIT_BOXES = {b"ftyp", b"moov", b"free", b"skip", b"uuid", b"styp"}
_FRAGMENT_PREFIX_BOXES = {b"styp", b"sidx", b"prft", b"emsg", b"free", b"skip"}
_MEDIA_BOXES = {b"moof", b"mdat"}


class MediaError(ValueError):
    """A message is not the fMP4 init segment or fragment the relay protocol expects."""


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int  # offset of the header
    body: int  # offset of the payload
    end: int


@dataclass(frozen=True)
class InitInfo:
    """What the relay keeps from an init segment: track id → default sample flags (trex)."""

    default_flags: dict[int, int]


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Boxes in data[start:end], which they must fill exactly (MediaError otherwise)."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise MediaError(f"{end - pos} stray bytes at offset {pos}")
        size, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise MediaError(f"truncated large box header at offset {pos}")
            (size,) = _U64.unpack_from(data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos  # "to the end of the enclosing space"
        if size < header or pos + size > end:
            raise MediaError(f"box {kind!r} at offset {pos} claims {size} bytes")
        yield Box(kind, pos, pos + header, pos + size)
        pos += size


def _child(data: bytes, parent: Box, kind: bytes) -> Box | None:
    boxes = iter_boxes(data, parent.body, parent.end)
    return next((box for box in boxes if box.kind == kind), None)


def _full_box(data: bytes, box: Box) -> tuple[int, int]:
    if box.end - box.body < 4:
        raise MediaError(f"{box.kind!r} box too short")
    word = _U32.unpack_from(data, box.body)[0]
    return word >> 24, word & 0xFFFFFF


def parse_init(data: bytes) -> InitInfo:
    """Check an init segment (ftyp + moov, no media); its trex defaults."""
    if len(data) > MAX_INIT_BYTES:
        raise MediaError(f"init segment of {len(data)} bytes (limit {MAX_INIT_BYTES})")
    moov: Box | None = None
    for box in iter_boxes(data):
        if box.kind in _MEDIA_BOXES:
            raise MediaError(f"media box {box.kind!r} in the init segment")
        if box.kind not in _INIT_BOXES:
            raise MediaError(f"unexpected box {box.kind!r} in the init segment")
        if box.kind == b"moov":
            moov = box
    if moov is None:
        raise MediaError("the init segment has no moov box")
    defaults: dict[int, int] = {}
    mvex = _child(data, moov, b"mvex")
    if mvex is None:
        raise MediaError("the init segment is not fragmented (no mvex box)")
    for trex in iter_boxes(data, mvex.body, mvex.end):
        if trex.kind != b"trex":
            continue
        if trex.end - trex.body < 24:
            raise MediaError("trex box too short")
        track_id = _U32.unpack_from(data, trex.body + 4)[0]
        defaults[track_id] = _U32.unpack_from(data, trex.body + 20)[0]
    if not any(box.kind == b"trak" for box in iter_boxes(data, moov.body, moov.end)):
        raise MediaError("the init segment has no track")
    return InitInfo(defaults)


def _first_sample_flags(data: bytes, traf: Box, init: InitInfo) -> int | None:
    tfhd = _child(data, traf, b"tfhd")
    trun = _child(data, traf, b"trun")
    if tfhd is None:
        raise MediaError("traf without tfhd")
    _, tf_flags = _full_box(data, tfhd)
    pos = tfhd.body + 4
    if tfhd.end - pos < 4:
        raise MediaError("tfhd box too short")
    track_id = _U32.unpack_from(data, pos)[0]
    pos += 4
    for flag, size in (
        (_TFHD_BASE_DATA_OFFSET, 8),
        (_TFHD_SAMPLE_DESCRIPTION, 4),
        (_TFHD_DEFAULT_DURATION, 4),
        (_TFHD_DEFAULT_SIZE, 4),
    ):
        if tf_flags & flag:
            pos += size
    default = init.default_flags.get(track_id)
    if tf_flags & _TFHD_DEFAULT_FLAGS:
        if tfhd.end - pos < 4:
            raise MediaError("tfhd box too short")
        default = _U32.unpack_from(data, pos)[0]
    if trun is None:
        return None  # a track fragment without samples
    _, tr_flags = _full_box(data, trun)
    pos = trun.body + 4
    if trun.end - pos < 4:
        raise MediaError("trun box too short")
    count = _U32.unpack_from(data, pos)[0]
    pos += 4
    if count == 0:
        return None
    if tr_flags & _TRUN_DATA_OFFSET:
        pos += 4
    if tr_flags & _TRUN_FIRST_FLAGS:
        if trun.end - pos < 4:
            raise MediaError("trun box too short")
        return int(_U32.unpack_from(data, pos)[0])
    if tr_flags & _TRUN_FLAGS:
        offset = pos + (4 if tr_flags & _TRUN_DURATION else 0) + (4 if tr_flags & _TRUN_SIZE else 0)
        if trun.end - offset < 4:
            raise MediaError("trun box too short")
        return int(_U32.unpack_from(data, offset)[0])
    if default is None:
        raise MediaError(f"no sample flags for track {track_id}")
    return default


def fragment_keyframe(data: bytes, init: InitInfo) -> bool:
    """Check one media fragment (moof + mdat); whether its first sample is a sync sample."""
    if len(data) > MAX_FRAGMENT_BYTES:
        raise MediaError(f"fragment of {len(data)} bytes (limit {MAX_FRAGMENT_BYTES})")
    moof: Box | None = None
    mdat_after_moof = False
    for box in iter_boxes(data):
        if box.kind == b"moof":
            if moof is not None:
                raise MediaError("more than one moof in a message")
            moof = box
        elif box.kind == b"mdat":
            if moof is None:
                raise MediaError("mdat before moof")
            mdat_after_moof = True
        elif box.kind not in _FRAGMENT_PREFIX_BOXES or moof is not None:
            raise MediaError(f"unexpected box {box.kind!r} in a fragment")
    if moof is None or not mdat_after_moof:
        raise MediaError("a fragment needs a moof and its mdat")
    keyframe: bool | None = None
    for traf in iter_boxes(data, moof.body, moof.end):
        if traf.kind != b"traf":
            continue
        flags = _first_sample_flags(data, traf, init)
        if flags is not None and keyframe is None:
            keyframe = not flags & _NON_SYNC
    if keyframe is None:
        raise MediaError("the fragment has no samples")
    return keyframe
