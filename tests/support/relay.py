"""The hub's live relay for tests, and real fMP4 to feed it.

    async with running_relay(tmp_path / "hub") as relay:        # HTTPS on a free loopback port
        minted = relay.mint(camera="front-door")                # session + publisher/viewer tokens
        async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws: ...
        stats = await relay.stats(minted)                       # GET /live/{id}/stats

The application is `rtcc-hub serve`'s own (`hub.server.create_app` with the relay module), with a
server certificate from the hub's CA for 127.0.0.1 and localhost; `relay.ca_file` is that CA,
which a client (the agent) must trust. `serve.toml` records the public URL, so
`rtcc-hub request stream` against the same home mints URLs for this server.

`ffprobe_url` and `decode_url` read a viewer URL over HTTPS, verifying the relay's certificate
against its CA, as an analyst's tools would.

`fmp4_stream(ts)` remuxes a stamped test file (`tests.support.media.encode_stamped`) with the
`ffmpeg` CLI into fragmented MP4 — an independent muxer — and splits it into the init segment
and one entry per fragment, as a publisher sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiohttp import web

from agent.media import fmp4
from hub.ca import site_ca
from hub.relay import RELAY, Relay, RelaySettings
from hub.relay_sessions import MintedSession, SessionStore
from hub.server import (
    ServerContext,
    create_app,
    hub_server_certificate,
    server_tls_context,
    update_serve_settings,
)
from hub.state import HubHome

HOST = "127.0.0.1"


@dataclass
class RunningRelay:
    home: HubHome
    url: str
    port: int
    relay: Relay
    ca_file: Path

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def mint(
        self,
        *,
        site: str = "site-1",
        camera: str = "front-door",
        lifetime: timedelta = timedelta(minutes=5),
        case: str | None = "2026-000123",
    ) -> MintedSession:
        return SessionStore(self.home).mint(
            public_url=self.url, site=site, camera=camera, lifetime=lifetime, case=case
        )

    async def stats(self, minted: MintedSession) -> dict[str, Any]:
        url = f"{self.url}/live/{minted.record.id}/stats?token={minted.viewer_token}"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, ssl=self.client_ssl()) as response,
        ):
            assert response.status == 200, await response.text()
            data: dict[str, Any] = await response.json()
            return data


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def running_relay(
    root: Path, *, settings: RelaySettings | None = None
) -> AsyncIterator[RunningRelay]:
    home = HubHome(root)
    sock = _bind()
    port = int(sock.getsockname()[1])
    url = f"https://{HOST}:{port}"
    cert, key = await asyncio.to_thread(hub_server_certificate, home, [HOST, "localhost"])
    update_serve_settings(home, public_url=url)
    app = create_app(ServerContext(home, url), modules=("hub.relay",))
    relay = app[RELAY]
    if settings is not None:
        relay.settings = settings
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=server_tls_context(cert, key)).start()
    try:
        yield RunningRelay(home, url, port, relay, site_ca(home).cert_path)
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Fmp4Stream:
    init: bytes
    fragments: list[tuple[bytes, bool]]  # (moof + mdat, starts with a keyframe)


def fmp4_stream(ts: Path, out_dir: Path, *, fragment_seconds: float = 0.5) -> Fmp4Stream:
    """`ts` remuxed (`ffmpeg -c copy`) to fragmented MP4 and split as a publisher sends it."""
    exe = shutil.which("ffmpeg")
    assert exe is not None, "ffmpeg is not installed (Debian package ffmpeg)"
    out = out_dir / f"{ts.stem}-frag.mp4"
    if not out.exists():
        subprocess.run(
            [
                exe, "-v", "error", "-y", "-i", str(ts), "-c", "copy", "-f", "mp4",
                "-movflags", "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
                "-frag_duration", str(int(fragment_seconds * 1_000_000)), str(out),
            ],
            check=True,
            timeout=120,
        )  # fmt: skip
    data = out.read_bytes()
    split = fmp4.split_stream(data, have_init=False)
    moov = next(b for b in fmp4.iter_boxes(data[: split.init_end]) if b.type == "moov")
    track = fmp4.parse_moov(data, moov)
    fragments = [
        (data[moof.offset : mdat.end], fmp4.parse_fragment(data, moof, mdat, track).keyframe)
        for moof, mdat in split.fragments
    ]
    return Fmp4Stream(data[: split.init_end], fragments)


@contextlib.asynccontextmanager
async def publisher(
    relay: RunningRelay, url: str, token: str | None, **options: Any
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A websocket to the ingest endpoint as a site opens it (raises WSServerHandshakeError
    when the relay refuses)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers=headers, ssl=relay.client_ssl(), **options) as ws,
    ):
        yield ws


def ffprobe_url(url: str, ca_file: Path) -> dict[str, Any]:
    """ffprobe over HTTPS (verifying the relay's certificate), counting the frames it decodes."""
    proc = subprocess.run(
        [
            "ffprobe", "-v", "error", "-ca_file", str(ca_file), "-tls_verify", "1",
            "-print_format", "json", "-show_streams", "-count_frames", url,
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    info: dict[str, Any] = json.loads(proc.stdout)
    return info


def decode_url(url: str, ca_file: Path, *, frames: int) -> list[tuple[int, int]]:
    """Decode `frames` frames with PyAV from the viewer URL; their sizes."""
    sizes: list[tuple[int, int]] = []
    options = {"ca_file": str(ca_file), "tls_verify": "1"}
    with av.open(url, options=options, timeout=30) as container:
        for frame in container.decode(container.streams.video[0]):
            sizes.append((frame.width, frame.height))
            if len(sizes) >= frames:
                break
    return sizes
