"""One simulated camera: persona, faults, RTSP server, ONVIF services and a snapshot."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import structlog

from camsim.config import CameraConfig
from camsim.faults import Faults
from camsim.media import VideoSpec, encode_stream, snapshot_jpeg
from camsim.onvif import MediaProfile, OnvifDevice, OnvifServer
from camsim.persona import DEVICE_SERVICE_PATH, Quirk, StreamName
from camsim.rtsp import RtspServer

log = structlog.get_logger(__name__)

STREAMS: tuple[StreamName, ...] = ("main", "sub")


def build_device(config: CameraConfig) -> OnvifDevice:
    """The ONVIF view of a configured camera (ports are filled in when its servers bind).

    A recorder persona gets one video source per channel, each with its main and sub profiles
    at that channel's paths; extra profiles (MJPEG) go on the first channel."""
    persona = config.persona_info
    identity = persona.identity(config.id)
    quirks = config.effective_quirks()
    sources = tuple(f"VideoSource_{n}" for n in range(1, persona.channels + 1))
    profiles: list[MediaProfile] = []
    for number, source in enumerate(sources, start=1):
        for stream in STREAMS:
            mjpeg = stream == "sub" and Quirk.MJPEG_SUB in quirks
            profiles.append(
                MediaProfile(
                    token=persona.profile_token(stream, number),
                    name=f"{stream}Stream" if persona.channels == 1 else f"ch{number}_{stream}",
                    stream=None if mjpeg else stream,
                    spec=config.video_spec(stream),
                    encoder_token=f"VideoEncoder_{len(profiles) + 1}",
                    rtsp_path=persona.rtsp_path(stream, number),
                    source_token=source,
                    encoding="JPEG" if mjpeg else "H264",
                )
            )
    for extra in persona.extra_profiles:
        profiles.append(
            MediaProfile(
                token=extra.token,
                name=extra.name,
                stream=None,
                spec=VideoSpec(
                    codec="h264",  # unused: camsim does not stream it
                    width=extra.width,
                    height=extra.height,
                    fps=extra.fps,
                    gop=extra.fps,
                    bitrate=1_000_000,
                ),
                encoder_token=f"VideoEncoder_{len(profiles) + 1}",
                rtsp_path=extra.rtsp_path,
                source_token=sources[0],
                encoding=extra.encoding,
            )
        )
    model = config.model or persona.model
    return OnvifDevice(
        manufacturer=persona.vendor,
        model=model,
        firmware=config.firmware or persona.firmware,
        serial=identity.serial,
        hardware_id=persona.hardware_id,
        mac=identity.mac,
        hostname=config.id,
        name=config.name
        or persona.name_scope
        or f"{persona.vendor} {config.model or persona.model}",
        location=config.location or persona.location,
        quirks=quirks,
        profiles=tuple(profiles),
        media_path=persona.media_path,
        snapshot_path=persona.snapshot_path,
        clock_skew=config.effective_clock_skew(),
        host=config.host,
        video_sources=sources,
        scope_encoding="latin-1" if Quirk.WSD_LOOSE_REPLY in quirks else "utf-8",
    )


class Camera:
    """Start with `await camera.start()`, stop with `await camera.close()`.

    `faults` may be flipped from any thread (tests) or through the host's control API.
    """

    def __init__(self, config: CameraConfig, *, faults: Faults | None = None) -> None:
        self.config = config
        self.persona = config.persona_info
        self.identity = self.persona.identity(config.id)
        self.faults = faults if faults is not None else Faults()
        self.device = build_device(config)
        self._rtsp: RtspServer | None = None
        self._onvif: OnvifServer | None = None

    # -- what the discovery responder reads -------------------------------------------------

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def endpoint(self) -> str:
        return self.identity.endpoint

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def quirks(self) -> frozenset[Quirk]:
        return self.device.quirks

    @property
    def discoverable(self) -> bool:
        return (
            self._onvif is not None
            and not self.faults.unplugged
            and Quirk.NO_WS_DISCOVERY not in self.quirks
        )

    def discovery_xaddrs(self, local: str) -> str:
        return self.device.device_url(local=local)

    def discovery_scopes(self) -> list[str]:
        return [scope for scope, _fixed in self.device.scopes()]

    @property
    def loose_discovery(self) -> bool:
        return Quirk.WSD_LOOSE_REPLY in self.quirks

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        specs = {stream: self.config.video_spec(stream) for stream in STREAMS}
        # Blocking encode (or cache read) off the loop; the media module encodes each spec once.
        encoded = {
            stream: await asyncio.to_thread(encode_stream, spec) for stream, spec in specs.items()
        }
        self._rtsp = RtspServer(
            {p.rtsp_path: encoded[p.stream] for p in self.device.profiles if p.stream is not None},
            host=self.config.host,
            port=self.config.rtsp_port,
            username=self.config.username,
            password=self.config.password,
            max_sessions=self.config.effective_max_sessions(),
            faults=self.faults,
            clock_offset=self.device.clock_skew,
            auth=self.persona.rtsp_auth,
        )
        await self._rtsp.start()
        self.device.rtsp_port = self._rtsp.port
        main_spec = specs["main"]

        async def snapshot() -> bytes:
            return await asyncio.to_thread(snapshot_jpeg, main_spec)

        self._onvif = OnvifServer(
            self.device,
            username=self.config.username,
            password=self.config.password,
            snapshot=snapshot,
            faults=self.faults,
            port=self.config.onvif_port,
            auth_window=self.config.auth_window,
            snapshot_auth=self.persona.snapshot_auth,
        )
        try:
            await self._onvif.start()
        except BaseException:
            self._onvif = None
            await self.close()
            raise
        log.info(
            "camera_started",
            camera=self.id,
            persona=self.persona.name,
            onvif=self.onvif_url,
            rtsp=self.rtsp_url("main"),
        )

    async def close(self) -> None:
        onvif, rtsp = self._onvif, self._rtsp
        self._onvif = self._rtsp = None
        if onvif is not None:
            await onvif.close()
        if rtsp is not None:
            await rtsp.close()

    # -- addresses --------------------------------------------------------------------------

    @property
    def url_host(self) -> str:
        """The address to put in URLs for this camera (loopback if it listens everywhere)."""
        return "127.0.0.1" if self.host == "0.0.0.0" else self.host  # noqa: S104

    @property
    def onvif_port(self) -> int:
        return self.device.http_port

    @property
    def rtsp_port(self) -> int:
        return self.device.rtsp_port

    @property
    def onvif_url(self) -> str:
        """The device service URL a client should use (the true one, whatever the quirks)."""
        return f"http://{self.url_host}:{self.onvif_port}{DEVICE_SERVICE_PATH}"

    def rtsp_url(
        self, stream: StreamName = "main", *, credentials: bool = False, channel: int = 1
    ) -> str:
        userinfo = ""
        if credentials:
            userinfo = f"{quote(self.config.username, safe='')}:"
            userinfo += f"{quote(self.config.password, safe='')}@"
        path = self.persona.rtsp_path(stream, channel)
        return f"rtsp://{userinfo}{self.url_host}:{self.rtsp_port}{path}"

    @property
    def snapshot_url(self) -> str | None:
        if Quirk.NO_SNAPSHOT in self.quirks:
            return None
        return self.device.snapshot_uri(local=self.url_host)

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about this camera (ready file, control API)."""
        return {
            "id": self.id,
            "persona": self.persona.name,
            "vendor": self.device.manufacturer,
            "model": self.device.model,
            "firmware": self.device.firmware,
            "serial": self.identity.serial,
            "mac": self.identity.mac,
            "endpoint": self.endpoint,
            "quirks": sorted(self.quirks),
            "channels": self.persona.channels,
            "clock_skew": self.device.clock_skew,
            "host": self.host,
            "onvif_port": self.onvif_port,
            "rtsp_port": self.rtsp_port,
            "onvif_url": self.onvif_url,
            "rtsp": {stream: self.rtsp_url(stream) for stream in STREAMS},
            "snapshot_url": self.snapshot_url,
            "username": self.config.username,
            "password": self.config.password,
            "faults": {
                "unplugged": self.faults.unplugged,
                "stalled": self.faults.stalled,
                "soap_delay": self.faults.soap_delay,
                "drop_after_frames": self.faults.drop_after_frames,
            },
        }
