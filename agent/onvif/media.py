"""How a device's video is organised over ONVIF: video sources (channels), media profiles, and
which profile serves which stream.

A camera has one video source and a few profiles on it (main, sub, often MJPEG ones too). A
recorder (NVR, DVR, encoder) has one video source per channel and a few profiles on each; every
profile names its source in `VideoSourceConfiguration.SourceToken`. Channels are numbered from
1 in the order GetVideoSources lists the sources (the order recorders show them in).

Choosing a profile: `main` is the largest H.264/H.265 profile, `sub` the smallest H.264/H.265
profile that is not the main one. A JPEG (MJPEG) or MPEG-4 profile is only ever chosen when the
channel offers nothing else, and the choice says so (`ProfileChoice.fallback_encoding`): MJPEG
cannot be recorded or played live by the agent, and sends a whole picture per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# What the agent records and streams; everything else is chosen only when nothing else exists.
RECORDABLE_ENCODINGS = frozenset({"H264", "H265", "HEVC"})


@dataclass(frozen=True)
class MediaProfile:
    """A media profile as GetProfiles describes it (None where the camera left a field out)."""

    token: str
    name: str | None
    encoding: str | None
    width: int | None
    height: int | None
    fps_limit: float | None
    bitrate_kbps: int | None
    gov_length: int | None
    source_token: str | None = None  # the video source (channel) it encodes

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    @property
    def recordable(self) -> bool:
        """H.264/H.265 (or an encoding the camera did not name: the stream will tell)."""
        return self.encoding is None or self.encoding.upper() in RECORDABLE_ENCODINGS


@dataclass(frozen=True)
class VideoSource:
    token: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None


@dataclass(frozen=True)
class Channel:
    """One video source of a device, numbered from 1, with the profiles that encode it."""

    number: int
    source: VideoSource | None
    profiles: tuple[MediaProfile, ...]


@dataclass(frozen=True)
class ProfileChoice:
    profile: MediaProfile | None
    # The encoding of a profile chosen only because nothing H.264/H.265 exists (e.g. "JPEG").
    fallback_encoding: str | None = None


def _largest(profiles: Iterable[MediaProfile]) -> MediaProfile | None:
    return max(profiles, key=lambda p: p.pixels, default=None)


def _smallest(profiles: Iterable[MediaProfile]) -> MediaProfile | None:
    # Among equal sizes H.264 first: every browser plays it live.
    return min(
        profiles, key=lambda p: (p.pixels, (p.encoding or "").upper() != "H264"), default=None
    )


def choose_profile(profiles: Sequence[MediaProfile], stream: str) -> ProfileChoice:
    """The profile for `main`, `sub` or a profile token (see the module docstring)."""
    if stream not in ("main", "sub"):
        return ProfileChoice(next((p for p in profiles if p.token == stream), None))
    video = [p for p in profiles if p.pixels > 0]
    good = [p for p in video if p.recordable]
    main = _largest(good)
    if stream == "main":
        if main is not None:
            return ProfileChoice(main)
        other = _largest(video)
        return ProfileChoice(other, other.encoding if other is not None else None)
    if main is None:
        return ProfileChoice(None)
    sub = _smallest(p for p in good if p is not main)
    if sub is not None:
        return ProfileChoice(sub)
    other = _smallest(p for p in video if not p.recordable)
    return ProfileChoice(other, other.encoding if other is not None else None)


def select_profile(profiles: Iterable[MediaProfile], stream: str) -> MediaProfile | None:
    """The profile `choose_profile` picks (H.264/H.265 first; MJPEG only as a last resort)."""
    return choose_profile(list(profiles), stream).profile


def group_channels(
    sources: Sequence[VideoSource], profiles: Sequence[MediaProfile]
) -> list[Channel]:
    """The device's channels: one per video source, each with the profiles that name it.

    Sources come from GetVideoSources; when a device did not answer it, the sources the profiles
    name are used in the order they first appear. Profiles that name no source (or an unknown
    one) belong to the only channel when there is one, and are left out otherwise."""
    tokens = [s.token for s in sources]
    for profile in profiles:
        if profile.source_token is not None and profile.source_token not in tokens:
            tokens.append(profile.source_token)
    known = {s.token: s for s in sources}
    if not tokens:
        return [Channel(1, None, tuple(profiles))] if profiles else []
    channels: list[Channel] = []
    for number, token in enumerate(tokens, start=1):
        mine = [p for p in profiles if p.source_token == token]
        if len(tokens) == 1:
            mine = list(profiles)
        channels.append(Channel(number, known.get(token, VideoSource(token)), tuple(mine)))
    return channels
