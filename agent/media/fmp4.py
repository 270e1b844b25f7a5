"""Walking the boxes of the fragmented MP4 files we write (ISO/IEC 14496-12).

Used four ways: the store's writer splits the muxer's byte stream into the init segment and
whole fragments with it; recovery finds where the last complete fragment of a crashed segment
ends; verification and extraction check that a file is what the index says; and the hub's live
relay checks what a publishing site sends (`hub.relay_media`), so it accepts exactly the
fragmented MP4 the agent writes. The files may have been damaged or tampered with and the relay's
bytes come from outside, so every size and count is checked against what is actually there and
a malformed box is a `BoxError`, never an exception from deep inside the parser.

Only what those need is parsed: the one video track's timescale, codec and size from the
`moov`, and per fragment (`moof` + `mdat`) its samples' decode/presentation times, sizes and
sync flags.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

Buf = bytes | bytearray | memoryview

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I32 = struct.Struct(">i")
_HEADER = struct.Struct(">I4s")

# A moof of one second of video is ~1 KB; anything far larger is not ours.
MAX_MOOF_BYTES = 4 * 1024 * 1024
MAX_MOOV_BYTES = 4 * 1024 * 1024
MAX_SAMPLES_PER_FRAGMENT = 100_000
_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "mvex", "moof", "traf", "edts", "dinf"}

_TFHD_BASE_DATA_OFFSET = 0x1
_TFHD_SAMPLE_DESCRIPTION = 0x2
_TFHD_DEFAULT_DURATION = 0x8
_TFHD_DEFAULT_SIZE = 0x10
_TFHD_DEFAULT_FLAGS = 0x20
_TFHD_DEFAULT_BASE_IS_MOOF = 0x20000
_TRUN_DATA_OFFSET = 0x1
_TRUN_FIRST_FLAGS = 0x4
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_CTS = 0x800
_NON_SYNC = 0x10000


class BoxError(ValueError):
    """The bytes are not a well-formed (fragmented) MP4 of the kind this store writes."""


@dataclass(frozen=True)
class Box:
    type: str
    offset: int  # of the box header, relative to the buffer or file walked
    size: int  # header included
    header: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def payload(self) -> int:
        return self.offset + self.header


@dataclass(frozen=True)
class TrackInfo:
    track_id: int
    timescale: int
    codec: str  # sample entry four-cc: avc1, avc3, hvc1, hev1, ...
    width: int
    height: int
    default_duration: int = 0
    default_size: int = 0
    default_flags: int = 0

    @property
    def codec_name(self) -> str:
        """The FFmpeg-style name (`h264`, `hevc`) reports and manifests use."""
        return {"avc1": "h264", "avc3": "h264", "hvc1": "hevc", "hev1": "hevc"}.get(
            self.codec, self.codec
        )


@dataclass(frozen=True)
class Sample:
    dts: int
    pts: int
    duration: int
    size: int
    sync: bool


@dataclass(frozen=True)
class Fragment:
    offset: int  # of the moof
    size: int  # moof + mdat
    sequence: int
    samples: tuple[Sample, ...]

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def keyframe(self) -> bool:
        return bool(self.samples) and self.samples[0].sync

    @property
    def start_pts(self) -> int:
        return min(s.pts for s in self.samples)

    @property
    def end_pts(self) -> int:
        """Presentation end of the last-presented sample."""
        return max(s.pts + s.duration for s in self.samples)

    @property
    def end_dts(self) -> int:
        last = self.samples[-1]
        return last.dts + last.duration


def read_box_header(data: Buf, offset: int, end: int) -> Box | None:
    """The box starting at `offset`, or None if its header is not complete before `end`.

    Raises BoxError for a header that can never be valid (size smaller than the header, a
    size-to-end-of-file box, a type that is not printable).
    """
    if offset + 8 > end:
        return None
    size, raw_type = _HEADER.unpack_from(data, offset)
    header = 8
    if size == 1:
        if offset + 16 > end:
            return None
        size = _U64.unpack_from(data, offset + 8)[0]
        header = 16
    elif size == 0:
        raise BoxError(f"box at {offset} runs to end of file (size 0); not written by us")
    if size < header:
        raise BoxError(f"box at {offset} claims {size} bytes, less than its header")
    if not all(0x20 <= b < 0x7F for b in raw_type):
        raise BoxError(f"box at {offset} has a non-printable type {raw_type!r}")
    return Box(raw_type.decode("ascii"), offset, size, header)


def iter_boxes(data: Buf, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Boxes laid end to end in data[start:end]; a box overrunning `end` is a BoxError."""
    stop = len(data) if end is None else end
    offset = start
    while offset < stop:
        box = read_box_header(data, offset, stop)
        if box is None or box.end > stop:
            raise BoxError(f"truncated box at {offset} (needs {stop - offset}+ bytes)")
        yield box
        offset = box.end


def _children(data: Buf, box: Box) -> Iterator[Box]:
    return iter_boxes(data, box.payload, box.end)


def _find(data: Buf, parent: Box, kind: str) -> Box | None:
    return next((b for b in _children(data, parent) if b.type == kind), None)


def _need(data: Buf, box: Box, offset: int, count: int) -> None:
    if offset + count > box.end:
        raise BoxError(f"{box.type} box at {box.offset} is too short")


def _full_box(data: Buf, box: Box) -> tuple[int, int]:
    _need(data, box, box.payload, 4)
    word = _U32.unpack_from(data, box.payload)[0]
    return word >> 24, word & 0xFFFFFF


def parse_moov(data: Buf, moov: Box) -> TrackInfo:
    """The first video track of a `moov`, with its `trex` defaults."""
    if moov.size > MAX_MOOV_BYTES:
        raise BoxError(f"moov of {moov.size} bytes is not one of ours")
    video: TrackInfo | None = None
    trex: dict[int, tuple[int, int, int]] = {}
    for child in _children(data, moov):
        if child.type == "trak" and video is None:
            video = _parse_trak(data, child)
        elif child.type == "mvex":
            for box in _children(data, child):
                if box.type == "trex":
                    _need(data, box, box.payload, 24)
                    track_id, _sdi, duration, size, flags = struct.unpack_from(
                        ">IIIII", data, box.payload + 4
                    )
                    trex[track_id] = (duration, size, flags)
    if video is None:
        raise BoxError("moov has no video track")
    duration, size, flags = trex.get(video.track_id, (0, 0, 0))
    return TrackInfo(
        video.track_id,
        video.timescale,
        video.codec,
        video.width,
        video.height,
        duration,
        size,
        flags,
    )


def _parse_trak(data: Buf, trak: Box) -> TrackInfo | None:
    tkhd = _find(data, trak, "tkhd")
    mdia = _find(data, trak, "mdia")
    if tkhd is None or mdia is None:
        raise BoxError("trak without tkhd or mdia")
    hdlr = _find(data, mdia, "hdlr")
    if hdlr is None:
        raise BoxError("mdia without hdlr")
    _need(data, hdlr, hdlr.payload, 12)
    if bytes(data[hdlr.payload + 8 : hdlr.payload + 12]) != b"vide":
        return None
    version, _ = _full_box(data, tkhd)
    id_at = tkhd.payload + (20 if version == 1 else 12)
    _need(data, tkhd, id_at, 4)
    track_id = _U32.unpack_from(data, id_at)[0]
    _need(data, tkhd, tkhd.end - 8, 8)
    width, height = struct.unpack_from(">II", data, tkhd.end - 8)
    mdhd = _find(data, mdia, "mdhd")
    if mdhd is None:
        raise BoxError("mdia without mdhd")
    version, _ = _full_box(data, mdhd)
    ts_at = mdhd.payload + (20 if version == 1 else 12)
    _need(data, mdhd, ts_at, 4)
    timescale = _U32.unpack_from(data, ts_at)[0]
    if timescale == 0:
        raise BoxError("track timescale is 0")
    codec = ""
    minf = _find(data, mdia, "minf")
    stbl = _find(data, minf, "stbl") if minf is not None else None
    stsd = _find(data, stbl, "stsd") if stbl is not None else None
    if stsd is not None:
        _need(data, stsd, stsd.payload, 8)
        entries = _U32.unpack_from(data, stsd.payload + 4)[0]
        if entries:
            entry = read_box_header(data, stsd.payload + 8, stsd.end)
            if entry is not None:
                codec = entry.type
    return TrackInfo(track_id, timescale, codec, width >> 16, height >> 16)


def parse_fragment(data: Buf, moof: Box, mdat: Box, track: TrackInfo) -> Fragment:
    """Samples of the video track in one `moof`, checked against the `mdat` that follows it."""
    if moof.size > MAX_MOOF_BYTES:
        raise BoxError(f"moof of {moof.size} bytes is not one of ours")
    if mdat.type != "mdat" or mdat.offset != moof.end:
        raise BoxError(f"moof at {moof.offset} is not followed by its mdat")
    sequence = 0
    samples: list[Sample] = []
    for child in _children(data, moof):
        if child.type == "mfhd":
            _need(data, child, child.payload, 8)
            sequence = _U32.unpack_from(data, child.payload + 4)[0]
        elif child.type == "traf":
            samples.extend(_parse_traf(data, child, moof, mdat, track))
    if not samples:
        raise BoxError(f"moof at {moof.offset} holds no sample of track {track.track_id}")
    return Fragment(moof.offset, moof.size + mdat.size, sequence, tuple(samples))


def _parse_traf(data: Buf, traf: Box, moof: Box, mdat: Box, track: TrackInfo) -> list[Sample]:
    tfhd = _find(data, traf, "tfhd")
    if tfhd is None:
        raise BoxError("traf without tfhd")
    _, flags = _full_box(data, tfhd)
    at = tfhd.payload + 4
    _need(data, tfhd, at, 4)
    track_id = _U32.unpack_from(data, at)[0]
    if track_id != track.track_id:
        return []
    at += 4
    base = moof.offset
    if flags & _TFHD_BASE_DATA_OFFSET:
        _need(data, tfhd, at, 8)
        base = _U64.unpack_from(data, at)[0]
        at += 8
    elif not flags & _TFHD_DEFAULT_BASE_IS_MOOF:
        raise BoxError("tfhd without default-base-is-moof; not written by us")
    if flags & _TFHD_SAMPLE_DESCRIPTION:
        at += 4
    default_duration, default_size, default_flags = (
        track.default_duration,
        track.default_size,
        track.default_flags,
    )
    for bit, name in (
        (_TFHD_DEFAULT_DURATION, "duration"),
        (_TFHD_DEFAULT_SIZE, "size"),
        (_TFHD_DEFAULT_FLAGS, "flags"),
    ):
        if flags & bit:
            _need(data, tfhd, at, 4)
            value = _U32.unpack_from(data, at)[0]
            at += 4
            if name == "duration":
                default_duration = value
            elif name == "size":
                default_size = value
            else:
                default_flags = value
    tfdt = _find(data, traf, "tfdt")
    if tfdt is None:
        raise BoxError("traf without tfdt")
    version, _ = _full_box(data, tfdt)
    width = 8 if version == 1 else 4
    _need(data, tfdt, tfdt.payload + 4, width)
    dts = (_U64 if version == 1 else _U32).unpack_from(data, tfdt.payload + 4)[0]
    samples: list[Sample] = []
    for trun in (b for b in _children(data, traf) if b.type == "trun"):
        version, tflags = _full_box(data, trun)
        _need(data, trun, trun.payload + 4, 4)
        count = _U32.unpack_from(data, trun.payload + 4)[0]
        if count > MAX_SAMPLES_PER_FRAGMENT:
            raise BoxError(f"trun claims {count} samples")
        at = trun.payload + 8
        data_offset = 0
        if tflags & _TRUN_DATA_OFFSET:
            _need(data, trun, at, 4)
            data_offset = _I32.unpack_from(data, at)[0]
            at += 4
        first_flags: int | None = None
        if tflags & _TRUN_FIRST_FLAGS:
            _need(data, trun, at, 4)
            first_flags = _U32.unpack_from(data, at)[0]
            at += 4
        fields = [
            bit for bit in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTS) if tflags & bit
        ]
        _need(data, trun, at, 4 * len(fields) * count)
        position = base + data_offset
        for index in range(count):
            duration, size, sflags, cts = default_duration, default_size, default_flags, 0
            for bit in fields:
                if bit == _TRUN_CTS and version != 0:
                    value = _I32.unpack_from(data, at)[0]
                else:
                    value = _U32.unpack_from(data, at)[0]
                at += 4
                if bit == _TRUN_DURATION:
                    duration = value
                elif bit == _TRUN_SIZE:
                    size = value
                elif bit == _TRUN_FLAGS:
                    sflags = value
                else:
                    cts = value
            if index == 0 and first_flags is not None:
                sflags = first_flags
            if position < mdat.payload or position + size > mdat.end:
                raise BoxError(f"sample {index} of moof at {moof.offset} lies outside its mdat")
            position += size
            samples.append(Sample(dts, dts + cts, duration, size, not sflags & _NON_SYNC))
            dts += duration
    return samples


@dataclass(frozen=True)
class Split:
    """What a buffer holds: init boxes, whole fragments, and where the complete part ends."""

    init_end: int
    fragments: tuple[tuple[Box, Box], ...]  # (moof, mdat) pairs, complete
    consumed: int  # bytes up to the end of the last complete top-level unit


def split_stream(data: Buf, *, have_init: bool) -> Split:
    """Complete top-level units at the front of a muxer's output.

    Before the init segment is complete nothing else is returned; `init_end` is 0 when the
    buffer starts with fragments (`have_init`) or when the init segment is not yet complete.
    """
    offset = 0
    end = len(data)
    init_end = 0
    if not have_init:
        while True:
            box = read_box_header(data, offset, end)
            if box is None or box.end > end:
                return Split(0, (), 0)
            if box.type in ("moof", "mdat"):
                raise BoxError("fragment before the init segment")
            offset = box.end
            if box.type == "moov":
                init_end = offset
                break
    fragments: list[tuple[Box, Box]] = []
    consumed = offset
    while True:
        moof = read_box_header(data, offset, end)
        if moof is None or moof.end > end:
            break
        if moof.type != "moof":
            raise BoxError(f"unexpected {moof.type} box at {offset} between fragments")
        mdat = read_box_header(data, moof.end, end)
        if mdat is None or mdat.end > end:
            break
        if mdat.type != "mdat":
            raise BoxError(f"moof at {moof.offset} followed by {mdat.type}")
        fragments.append((moof, mdat))
        offset = consumed = mdat.end
    return Split(init_end, tuple(fragments), consumed)


@dataclass(frozen=True)
class FileScan:
    """A segment file as found on disk."""

    track: TrackInfo | None
    init_size: int  # 0 if the init segment is missing or incomplete
    fragments: tuple[Fragment, ...]
    complete_size: int  # end of the last complete fragment (or of the init segment)
    file_size: int
    problem: str | None  # why scanning stopped before the end of the file, if it did

    @property
    def frames(self) -> int:
        return sum(len(f.samples) for f in self.fragments)

    @property
    def start_pts(self) -> int:
        """Presentation start of the complete fragments (there must be one)."""
        return min(f.start_pts for f in self.fragments)

    @property
    def end_pts(self) -> int:
        """Presentation end of the complete fragments (there must be one)."""
        return max(f.end_pts for f in self.fragments)

    @property
    def seconds(self) -> float:
        """How much video the complete fragments hold; 0 without a track or a fragment."""
        if self.track is None or not self.fragments:
            return 0.0
        return (self.end_pts - self.start_pts) / self.track.timescale


def _read_exact(handle: BinaryIO, offset: int, count: int) -> bytes:
    handle.seek(offset)
    data = handle.read(count)
    if len(data) != count:
        raise BoxError(f"file ends inside the {count} bytes at {offset}")
    return data


def scan_file(handle: BinaryIO, *, limit: int | None = None) -> FileScan:
    """Walk a segment from its start; stop at the first incomplete or malformed unit.

    Reads only box headers and the (small) moov/moof boxes, not the media. `limit` treats the
    file as if it ended there (the committed size of a segment still being written).
    """
    handle.seek(0, os.SEEK_END)
    file_size = handle.tell()
    end = file_size if limit is None else min(limit, file_size)
    track: TrackInfo | None = None
    init_size = 0
    offset = 0
    fragments: list[Fragment] = []
    try:
        while offset < end:
            head = _read_exact(handle, offset, min(16, end - offset))
            box = read_box_header(head, 0, len(head))
            if box is None:
                raise BoxError(f"incomplete box header at {offset}")
            box = Box(box.type, offset, box.size, box.header)
            if box.end > end:
                raise BoxError(f"{box.type} box at {offset} is incomplete")
            if track is None:
                if box.type == "moov":
                    if box.size > MAX_MOOV_BYTES:
                        raise BoxError(f"moov of {box.size} bytes is not one of ours")
                    moov = _read_exact(handle, offset, box.size)
                    track = parse_moov(moov, Box("moov", 0, box.size, box.header))
                    init_size = box.end
                elif box.type in ("moof", "mdat"):
                    raise BoxError(f"{box.type} at {offset} before the moov")
                offset = box.end
                continue
            if box.type == "mfra":
                offset = box.end
                continue
            if box.type != "moof":
                raise BoxError(f"unexpected {box.type} box at {offset}")
            if box.size > MAX_MOOF_BYTES:
                raise BoxError(f"moof of {box.size} bytes is not one of ours")
            moof_bytes = _read_exact(handle, offset, box.size)
            mdat_head = (
                _read_exact(handle, box.end, min(16, end - box.end)) if (box.end < end) else b""
            )
            mdat = read_box_header(mdat_head, 0, len(mdat_head))
            if mdat is None:
                raise BoxError(f"moof at {offset} has no complete mdat")
            mdat = Box(mdat.type, box.size, mdat.size, mdat.header)
            if offset + mdat.end > end:
                raise BoxError(f"mdat after moof at {offset} is incomplete")
            local = parse_fragment(moof_bytes, Box("moof", 0, box.size, box.header), mdat, track)
            fragments.append(Fragment(offset, local.size, local.sequence, local.samples))
            offset += local.size
    except BoxError as exc:
        complete = fragments[-1].end if fragments else init_size
        return FileScan(track, init_size, tuple(fragments), complete, file_size, str(exc))
    complete = fragments[-1].end if fragments else init_size
    return FileScan(track, init_size, tuple(fragments), complete, file_size, None)
