"""Clip delivery, the whole chain as deployed: `rtcc-edge run` recording a camsim camera,
`rtcc-hub serve` receiving, a real TLS mosquitto between them. The analyst runs `rtcc-hub
request clip` (upload URLs minted on the hub's receiver), gets `completed`, and `rtcc-hub
verify` accepts what arrived; the clip's SEI stamps cover the window. Then the daemon is
killed in the middle of an upload and restarted: the upload resumes and completes once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.ledger import read_entries
from agent.store import ClipStore, StoreNotFound
from agent.store.model import from_us
from camsim.sei import stamps_in_file
from hub.presign import case_directory
from tests.e2e.deploy import REPO, agent_config, deploy, next_json, process, wait_for_file
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker, broker  # noqa: F401
from tests.support.camsim import CamsimRun, camera, run_camsim  # noqa: F401
from tests.support.ffprobe import ffprobe, video_stream

CAMERA = "front-door"
CASE = "2026-000123"

pytestmark = pytest.mark.slow


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def clip_config(path: Path, state: Path, **kwargs: Any) -> Path:
    """The live test's agent configuration, with uploads allowed to the hub on loopback."""
    agent_config(path, state, **kwargs)
    text = path.read_text().replace(
        "[policy]\n", '[policy]\nallowed_upload_hosts = ["127.0.0.1"]\n', 1
    )
    path.write_text(text)
    return path


async def recording_since(config: Path, *, within: float = 60) -> datetime:
    """When the daemon's recording of CAMERA began (waits for its first segment)."""
    deadline = time.monotonic() + within
    settings = load_config(config)
    while True:
        with contextlib.suppress(StoreNotFound):
            with ClipStore.from_config(settings, create=False) as store:
                rows = store.segments(CAMERA)
            if rows:
                return from_us(min(r.start_us for r in rows))
        assert time.monotonic() < deadline, "the daemon did not start recording"
        await asyncio.sleep(0.2)


async def wait_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def hub_request(hub: HubRunner, *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "--home", str(hub.home.root), "request", *argv,
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def hub_verify(hub: HubRunner, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(hub.home.root), "verify", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


async def final_line(request: asyncio.subprocess.Process, *, within: float) -> dict[str, Any]:
    assert request.stdout is not None
    event = await next_json(request.stdout, "event", within=within)
    while event["state"] not in ("completed", "failed", "rejected", "cancelled"):
        event = await next_json(request.stdout, "event", within=within)
    return event


def check_clip(clip: Path, start: datetime, end: datetime) -> None:
    info = ffprobe(clip, count_frames=True)
    video = video_stream(info)
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    # camsim stamps each frame with its capture time; the window is on the agent's clock,
    # which receives a frame a few milliseconds after it was captured.
    stamps = stamps_in_file(str(clip))
    first = from_us(min(s.capture_us for s in stamps))
    last = from_us(max(s.capture_us for s in stamps))
    assert first <= start, (first, start)
    assert last >= end - timedelta(milliseconds=500), (last, end)
    numbers = sorted(s.frame_number for s in stamps)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # nothing missing


async def test_clip_request_to_verified_evidence(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    run_camsim: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    cams: CamsimRun = run_camsim(
        camera("generic", main={"width": 320, "height": 240, "fps": 15, "gop": 15})
    )
    deployed = deploy(tmp_path, broker, cams[0], capsys, write_config=clip_config)
    hub, site, state, config = deployed.hub, deployed.site, deployed.state, deployed.config

    async with deployed.serving(), deployed.running():
        began = await recording_since(config)
        start, end = began + timedelta(seconds=3), began + timedelta(seconds=11)
        await wait_until(end + timedelta(seconds=2))
        request = await hub_request(
            hub, "clip", "--site", site, "--camera", CAMERA, "--case", CASE,
            "--from", rfc3339(start), "--to", rfc3339(end), "--json",
        )  # fmt: skip
        assert request.stdout is not None
        try:
            sent = await next_json(request.stdout, "sent")
            done = await final_line(request, within=90)
            assert done["state"] == "completed", done
            received = await next_json(request.stdout, "received")
            assert await asyncio.wait_for(request.wait(), 30) == 0
        finally:
            if request.returncode is None:
                request.kill()
                await request.wait()
    jti = sent["jti"]
    clip, manifest = Path(received["file"]), Path(received["manifest"])
    assert clip.parent == case_directory(hub.home, CASE, jti)
    assert await asyncio.to_thread(manifest.read_text) == done["manifest"]
    verified = hub_verify(
        hub, str(clip), str(manifest), "--from", rfc3339(start), "--to", rfc3339(end), "--json"
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["request"] == jti and report["gaps"] == []
    check_clip(clip, start, end)
    entries = list(read_entries(state / "ledger"))
    uploads = [e.data for e in entries if e.kind == "upload" and e.data["jti"] == jti]
    assert [(u["object"], u["outcome"], u["host"]) for u in uploads] == [
        ("clip", "uploaded", "127.0.0.1"),
        ("manifest", "uploaded", "127.0.0.1"),
    ]
    [closed] = [e.data for e in entries if e.kind == "request_closed" and e.data["jti"] == jti]
    assert closed["state"] == "completed"
    released = [e.data for e in entries if e.kind == "hold_released" and e.data["jti"] == jti]
    assert released and released[0]["released"] is True
    assert os.listdir(state / "delivery") == []


async def test_daemon_killed_mid_upload_resumes_and_completes_once(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    run_camsim: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    main = {"width": 320, "height": 240, "fps": 15, "gop": 15, "bitrate": 300_000}
    cams: CamsimRun = run_camsim(camera("generic", main=main))
    deployed = deploy(tmp_path, broker, cams[0], capsys, write_config=clip_config)
    hub, site, state, config = deployed.hub, deployed.site, deployed.state, deployed.config
    # A slow uplink (about 12 s for this clip): the upload is still going when the daemon dies.
    slow = config.read_text().replace("[upload]\n", "[upload]\nbandwidth_mbps = 0.3\n")
    config.write_text(slow)
    run_argv = ("-m", "agent", "--config", str(config), "run")

    async with deployed.serving():
        async with process(*run_argv, log=tmp_path / "agent-1.log") as run:
            await wait_for_file(state / "control.sock", 60, run)
            began = await recording_since(config)
            start, end = began + timedelta(seconds=2), began + timedelta(seconds=14)
            await wait_until(end + timedelta(seconds=2))
            request = await hub_request(
                hub, "clip", "--site", site, "--camera", CAMERA, "--case", CASE,
                "--from", rfc3339(start), "--to", rfc3339(end), "--json",
            )  # fmt: skip
            assert request.stdout is not None
            sent = await next_json(request.stdout, "sent")
            jti = sent["jti"]
            cases = case_directory(hub.home, CASE, jti)
            deadline = time.monotonic() + 60
            while not (cases.exists() and any(cases.glob(".clip.mp4.*.partial"))):
                assert time.monotonic() < deadline, "the upload never started"
                await asyncio.sleep(0.05)
            run.kill()  # kill -9, mid-upload
            await run.wait()
        assert not (cases / "clip.mp4").exists()
        try:
            async with process(*run_argv, log=tmp_path / "agent-2.log"):
                done = await final_line(request, within=120)
                assert done["state"] == "completed", done
                received = await next_json(request.stdout, "received")
                assert await asyncio.wait_for(request.wait(), 30) == 0
                await asyncio.sleep(2)  # a second final event would be sent by now
        finally:
            if request.returncode is None:
                request.kill()
                await request.wait()
    clip, manifest = Path(received["file"]), Path(received["manifest"])
    verified = hub_verify(hub, str(clip), str(manifest), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    check_clip(clip, start, end)
    entries = [e for e in read_entries(state / "ledger") if e.data.get("jti") == jti]
    closed = [e.data["state"] for e in entries if e.kind == "request_closed"]
    assert closed == ["completed"]  # exactly one final state, on the site's own record
    [clip_upload] = [e.data for e in entries if e.kind == "upload" and e.data["object"] == "clip"]
    assert clip_upload["outcome"] == "uploaded"
    assert clip_upload["attempts_total"] == 2  # the one the kill cut, and the one that worked
    assert os.listdir(state / "delivery") == []
