"""Where a live session's video comes from.

- The stream a camera is recorded from (its configured `stream`, `main` by default) comes from
  the recorder's fan-out (`agent.recorder.LiveHub`): the very fragments written to the store,
  no second RTSP session to a camera that may allow only two to four.
- Any other profile (`sub` of a camera recorded on `main`), or a camera that is not recorded,
  gets its own RTSP session in a child process (`agent.tunnel.own_stream`), closed at the end.
  Its URL: over ONVIF when the camera is configured by `onvif_url` (the recorder's
  `resolve_source`, with the profile asked for); for an `rtsp_url` camera, the configured URL
  when the profile is the configured stream, otherwise the vendor's documented counterpart path
  (`firmware_profiles/`: the `sub` path listed next to the configured `main` path, e.g.
  Hikvision `/Streaming/Channels/101` → `/102`). Nothing a request carries goes into the URL:
  the profile is one of two fixed words and the rest comes from the owner's configuration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from agent.compat import ProfileError, ProfileSet, load_profiles
from agent.config import CameraConfig
from agent.media.source import SourceError, resolve_source
from agent.recorder.live import LiveFeed, LiveHub, UnknownCamera
from agent.tunnel.own_stream import OwnStream, OwnStreamSpec

Profile = Literal["main", "sub"]


class SourceUnavailable(Exception):
    """No video can be had for this camera and profile (the message says why, for the RTCC)."""


@dataclass
class OpenedFeed:
    feed: LiveFeed
    origin: Literal["recorder", "own_session"]
    close: Callable[[], Awaitable[None]]


def counterpart_path(path: str, *, have: str, want: Profile, profiles: ProfileSet) -> str | None:
    """The vendor path of stream `want` listed with `path` (a `have` stream path), if any.

    Profiles list a vendor's paths in main/sub pairs; the `want` entry that follows (or, for
    `sub` → `main`, precedes) the matching `have` entry is its counterpart. A recorder channel's
    path (Hikvision `/Streaming/Channels/301`) gives the same channel's (`/302`)."""
    channel = profiles.channel_path(path)
    if channel is not None and channel.stream == have:
        return profiles.recorder_counterpart(channel, want=want)
    for vendor in profiles.vendors:
        if vendor.rtsp is None:
            continue
        entries = list(vendor.rtsp.paths)
        for index, entry in enumerate(entries):
            if entry.stream != have or entry.path != path:
                continue
            step = 1 if want == "sub" else -1
            position = index + step
            while 0 <= position < len(entries) and entries[position].stream == want:
                if entries[position].models == entry.models:
                    return entries[position].path
                position += step
    return None


class LiveSources:
    def __init__(
        self,
        live: LiveHub,
        cameras: Sequence[CameraConfig],
        *,
        state_dir: Path,
        fragment_seconds: float = 1.0,
        log_level: str = "info",
        log_format: str = "auto",
        profiles: Callable[[], ProfileSet] = load_profiles,
    ) -> None:
        self.live = live
        self.cameras = {camera.id: camera for camera in cameras}
        self.state_dir = state_dir
        self.fragment_seconds = fragment_seconds
        self.log_level = log_level
        self.log_format = log_format
        self._load_profiles = profiles
        self._profiles: ProfileSet | None = None

    def recorded(self, camera: CameraConfig, profile: Profile) -> bool:
        return camera.enabled and camera.stream == profile

    async def open(self, camera_id: str, profile: Profile, *, max_queue_bytes: int) -> OpenedFeed:
        camera = self.cameras.get(camera_id)
        if camera is None:
            raise SourceUnavailable(f"camera {camera_id} is not configured")
        if self.recorded(camera, profile):
            try:
                feed = self.live.subscribe(camera_id, max_queue_bytes=max_queue_bytes)
            except UnknownCamera:
                raise SourceUnavailable(f"camera {camera_id} is not being recorded") from None
            return OpenedFeed(feed, "recorder", feed.aclose)
        try:
            source = await resolve_source(
                self._own_config(camera, profile), state_dir=self.state_dir
            )
        except SourceError as exc:
            raise SourceUnavailable(str(exc)) from exc
        stream = OwnStream(
            OwnStreamSpec(
                camera=camera_id,
                source=source,
                fragment_seconds=self.fragment_seconds,
                log_level=self.log_level,
                log_format=self.log_format,
            )
        )
        try:
            feed = await stream.open(max_queue_bytes=max_queue_bytes)
        except OSError as exc:
            await stream.close()
            raise SourceUnavailable(f"could not start a stream process: {exc}") from exc

        async def close() -> None:
            await feed.aclose()
            await stream.close()

        return OpenedFeed(feed, "own_session", close)

    def _own_config(self, camera: CameraConfig, profile: Profile) -> CameraConfig:
        """The camera's configuration pointed at `profile` (the recorder resolves it)."""
        if camera.rtsp_url is None:
            return camera.model_copy(update={"stream": profile})  # asked over ONVIF
        if camera.stream == profile:
            return camera
        parts = urlsplit(camera.rtsp_url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        wanted = None
        if camera.stream in ("main", "sub"):
            wanted = counterpart_path(path, have=camera.stream, want=profile, profiles=self._set())
        if wanted is None:
            raise SourceUnavailable(
                f"camera {camera.id}: its {profile} stream URL is not known (the configured "
                f"rtsp_url is not a path the firmware profiles list a {profile} stream for)"
            )
        new_path, _, query = wanted.partition("?")
        url = urlunsplit(parts._replace(path=new_path, query=query))
        return camera.model_copy(update={"rtsp_url": url, "stream": profile})

    def _set(self) -> ProfileSet:
        if self._profiles is None:
            try:
                self._profiles = self._load_profiles()
            except ProfileError as exc:
                raise SourceUnavailable(f"the firmware profiles cannot be read: {exc}") from exc
        return self._profiles
