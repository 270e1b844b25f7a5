"""S3 compatibility: a clip uploaded through URLs presigned by boto3 for a real S3-compatible
server (moto in server mode, its own process on a free loopback port) and read back
byte-identical."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from agent.identity import verify_device_jws
from agent.wire import Manifest
from tests.delivery.site import (
    CAMERA,
    delivering_site,
    delivery_config,
    final_event,
    footage_spec,
    recent,
    record_footage,
    rfc3339,
    signed_manifest,
    wall,
)
from tests.support.broker import free_port
from tests.support.media import MediaSpec
from tests.support.rtcc import make_request

BUCKET = "rtcc-evidence"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4"),  # what AWS S3 requires
    )
    client.create_bucket(Bucket=BUCKET)
    return client


async def test_clip_through_boto3_presigned_urls(
    tmp_path: Path, s3: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spec: MediaSpec = footage_spec(recent(300), 20)
    config = delivery_config(tmp_path / "state")
    await asyncio.to_thread(record_footage, config, tmp_path_factory.mktemp("s3-media"), spec)
    jti = str(uuid.uuid4())
    clip_key, manifest_key = f"cases/2026-000123/{jti}/clip.mp4", f"cases/2026-000123/{jti}/m.jws"

    def presign(key: str) -> str:
        url: str = s3.generate_presigned_url(
            "put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=600
        )
        return url

    upload = {"url": presign(clip_key), "manifest_url": presign(manifest_key)}
    assert "X-Amz-Signature=" in upload["url"] and "%2F" in upload["url"]
    request = make_request(
        "clip",
        jti=jti,
        camera=CAMERA,
        start=rfc3339(wall(spec, 30)),
        end=rfc3339(wall(spec, 240)),
        upload=upload,
    )
    async with delivering_site(config) as site:
        await site.service.handle(request)
        done = await final_event(site, jti)
        assert done.state.value == "completed", done
    manifest = Manifest.model_validate(
        verify_device_jws(signed_manifest(done), site.key.public_jwk)
    )
    clip = s3.get_object(Bucket=BUCKET, Key=clip_key)
    body = clip["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest.file.sha256
    assert len(body) == manifest.file.bytes
    assert clip["ContentType"] == "video/mp4"
    stored_manifest = s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read()
    assert stored_manifest.decode() == done.manifest
