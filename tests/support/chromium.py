"""Headless Chromium for tests, driven over the Chrome DevTools Protocol (CDP) with aiohttp's
websocket client.

    async with headless_chromium(tmp_path, trust_spki=[spki]) as browser:
        await browser.navigate(page_url)
        t = await browser.evaluate("document.querySelector('video').currentTime")

Debian's `chromium` is installed with apt when it is missing, as the project installs its other
system packages; a test is skipped (with the reason) only if that cannot be done. The browser
runs with the flags FIELD-NOTES lists as working as root (`--headless --no-sandbox
--disable-gpu --no-first-run --disable-background-networking`, autoplay allowed, a fresh
profile) and `--remote-debugging-port=0`; the port it picked is read from `DevToolsActivePort`
in the profile. `--dump-dom` is not used: it advances a virtual media clock without decoding.

A server certificate from a private CA is accepted by pinning its public key
(`--ignore-certificate-errors-spki-list`, see `spki_hash`), never by turning checks off.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)
_INSTALL_TIMEOUT = 900


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> str:
    """The chromium executable, installed with apt if missing; skips the test if impossible."""
    exe = find_chromium()
    if exe is not None:
        return exe
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(
        [apt, "install", "-y", "--no-install-recommends", "chromium"],
        capture_output=True,
        text=True,
        env=env,
        timeout=_INSTALL_TIMEOUT,
    )
    exe = find_chromium()
    if exe is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        pytest.skip(f"chromium could not be installed with apt-get: {' / '.join(tail)}")
    return exe


def spki_hash(cert_pem: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate, as Chromium's SPKI list wants."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class CdpError(RuntimeError):
    pass


class Browser:
    """One page of a running Chromium, over its CDP websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = message.json()
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        await self._ws.send_json({"id": number, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def navigate(self, url: str) -> None:
        reply = await self.call("Page.navigate", url=url)
        if reply.get("errorText"):
            raise CdpError(f"could not open {url}: {reply['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise CdpError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


async def _devtools_port(profile: Path, proc: asyncio.subprocess.Process) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text().strip():
        if proc.returncode is not None:
            raise CdpError(f"chromium exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise CdpError("chromium did not open its DevTools port within 60 s")
        await asyncio.sleep(0.1)
    return int(marker.read_text().splitlines()[0])


@contextlib.asynccontextmanager
async def headless_chromium(
    workdir: Path, *, trust_spki: Sequence[str] = ()
) -> AsyncIterator[Browser]:
    exe = ensure_chromium()
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    args = [*FLAGS, f"--user-data-dir={profile}"]
    if trust_spki:
        args.append(f"--ignore-certificate-errors-spki-list={','.join(trust_spki)}")
    log = (workdir / "chromium.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        exe, *args, "about:blank", stdout=log, stderr=subprocess.STDOUT
    )
    try:
        port = await _devtools_port(profile, proc)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t.get("type") == "page")
            ws = await http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
            browser = Browser(ws)
            try:
                await browser.call("Page.enable")
                await browser.call("Runtime.enable")
                yield browser
            finally:
                await browser.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
