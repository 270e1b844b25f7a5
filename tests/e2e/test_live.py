"""Live view, the whole chain as it is deployed: `rtcc-hub serve` (the relay) and `rtcc-edge run`
as real processes, a real TLS mosquitto, a camsim camera. The analyst runs `rtcc-hub request
stream`, gets a viewer URL and a page; ffprobe, PyAV and headless Chromium play it; the owner
sees the session in `rtcc-edge status` and ends it with `rtcc-edge live stop`; the hub's
follower gets `ended owner_stopped`; the ledger and the recording say what happened."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.ledger import read_entries
from agent.store import ClipStore
from camsim.sei import stamps_in_file
from hub.ca import site_ca
from tests.e2e.deploy import CAMERA, REPO, deploy, edge, next_json
from tests.support.broker import MosquittoBroker, broker  # noqa: F401
from tests.support.camsim import CamsimRun, camera, run_camsim  # noqa: F401
from tests.support.chromium import headless_chromium, spki_hash
from tests.support.ffprobe import ffprobe
from tests.support.relay import decode_url, ffprobe_url

pytestmark = pytest.mark.slow


async def video_clock(browser: Any) -> dict[str, Any]:
    value: dict[str, Any] = await browser.evaluate(
        "(() => { const v = document.querySelector('video');"
        " if (!v) return {t: 0, ready: -1, w: 0, h: 0, paused: true, error: null};"
        " return {t: v.currentTime, ready: v.readyState, w: v.videoWidth, h: v.videoHeight,"
        " paused: v.paused, error: v.error && v.error.code}; })()"
    )
    return value


async def test_live_view_end_to_end(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    run_camsim: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    cams: CamsimRun = run_camsim(
        camera("generic", main={"width": 320, "height": 240, "fps": 15, "gop": 15})
    )
    deployed = deploy(tmp_path, broker, cams[0], capsys)
    hub, site, state, config = deployed.hub, deployed.site, deployed.state, deployed.config

    async with deployed.serving(), deployed.running():
        request = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "--home", str(hub.home.root), "request", "stream",
            "--site", site, "--camera", CAMERA, "--case", "2026-000777",
            "--requester", "analyst-7", "--reason", "robbery in progress",
            "--max-seconds", "120", "--json",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert request.stdout is not None
        try:
            sent = await next_json(request.stdout, "sent")
            relay = await next_json(request.stdout, "relay")
            jti = sent["jti"]
            viewer_url, page_url = relay["viewer_url"], relay["page_url"]
            streaming = await next_json(request.stdout, "event")
            while streaming["state"] != "streaming":
                streaming = await next_json(request.stdout, "event")
            start = datetime.now(UTC)  # the live video comes from the recorder: it runs

            ca = site_ca(hub.home).cert_path
            probe = asyncio.create_task(asyncio.to_thread(ffprobe_url, viewer_url, ca))
            frames = asyncio.create_task(asyncio.to_thread(decode_url, viewer_url, ca, frames=45))
            server_cert = (hub.home.root / "tls" / "server.pem").read_bytes()
            async with headless_chromium(tmp_path, trust_spki=[spki_hash(server_cert)]) as browser:
                await browser.navigate(page_url)
                deadline = time.monotonic() + 30
                first = await video_clock(browser)
                while first["t"] <= 0:
                    assert time.monotonic() < deadline, f"the page never played: {first}"
                    await asyncio.sleep(0.25)
                    first = await video_clock(browser)
                wall = time.monotonic()
                await asyncio.sleep(4)
                second = await video_clock(browser)
                elapsed = time.monotonic() - wall
            sizes = await asyncio.wait_for(frames, 60)

            status = edge(config, "status", "--json")
            assert status.returncode == 0, status.stderr
            [live] = json.loads(status.stdout)["live"]
            assert live["id"] == jti and live["state"] == "streaming"
            assert live["case"] == "2026-000777" and live["requester"] == "analyst-7"
            shown = edge(config, "status")
            assert "live sessions" in shown.stdout and jti[:8] in shown.stdout

            stopped = edge(config, "live", "stop", jti[:8])
            assert stopped.returncode == 0, stopped.stderr
            assert f"ended live session {jti}" in stopped.stdout
            ended = await next_json(request.stdout, "event")
            assert (ended["state"], ended["reason"]) == ("ended", "owner_stopped")
            assert await asyncio.wait_for(request.wait(), 30) == 0
            info = await asyncio.wait_for(probe, 60)
            again = edge(config, "live", "stop", jti[:8])
            assert again.returncode == 1 and "no live session" in again.stderr
        finally:
            if request.returncode is None:
                request.kill()
                await request.wait()
        end = datetime.now(UTC)
        await asyncio.sleep(2)

    # The page played in Chromium: the video element's clock ran with real time.
    advanced = second["t"] - first["t"]
    print(f"\nchromium: currentTime advanced {advanced:.2f} s in {elapsed:.2f} s of real time")
    assert (second["w"], second["h"]) == (320, 240) and second["error"] is None
    assert not second["paused"] and second["ready"] >= 2
    assert advanced > 0.5 * elapsed, (first, second)
    # ffprobe and PyAV read the stream through the viewer URL.
    [video] = info["streams"]
    assert (video["codec_name"], video["width"]) == ("h264", 320)
    assert int(video["nb_read_frames"]) > 4 * 15
    assert sizes == [(320, 240)] * 45

    # The ledger: who asked, how it ended, how much left the site.
    entries = list(read_entries(state / "ledger"))
    [received] = [e.data for e in entries if e.kind == "request_received"]
    assert (received["requester"], received["case"], received["cmd"]) == (
        "analyst-7",
        "2026-000777",
        "stream",
    )
    [session] = [e.data for e in entries if e.kind == "live_session"]
    assert (session["jti"], session["reason"]) == (jti, "owner_stopped")
    [sent_bytes] = [e.data for e in entries if e.kind == "upload"]
    assert sent_bytes["bytes"] > 0 and sent_bytes["host"] == "127.0.0.1"

    # The recording went on through the whole session, frame by frame.
    store = ClipStore.from_config(load_config(config))
    try:
        clip = tmp_path / "recording.mp4"
        result = await asyncio.to_thread(store.extract, CAMERA, start, end, clip)
    finally:
        store.close()
    assert result.gaps == ()
    await asyncio.to_thread(ffprobe, clip)
    numbers = [s.frame_number for s in await asyncio.to_thread(stamps_in_file, str(clip))]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
