"""`rtcc-edge run` with the link: a real daemon, a camsim camera, a real TLS broker.

The RTCC side is a plain MQTT client holding the hub's certificate: it publishes a signed
request and reads what the site publishes, checking every signature with the device key.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from aiohttp import web

from agent.delivery import JobQueue
from agent.identity import DeviceKey, device_key_path, verify_device_jws
from agent.notify.message import SIGNATURE_HEADER, verify_body
from agent.secretbox import SecretBox
from agent.wire import RegistryClaims, StatusClaims, Topics
from tests.daemon.conftest import low_res_camera
from tests.delivery.conftest import (  # noqa: F401 - pytest fixtures
    ReceiverFactory,
    https_receiver,
    receiver_tls,
    test_ca,
)
from tests.delivery.receivers import ok, status
from tests.support.broker import (
    MosquittoBroker,
    TestCA,
    broker,  # noqa: F401 - pytest fixture
    next_message,
)
from tests.support.camsim import CameraHandle, run_cameras
from tests.support.rtcc import ISSUER, RTCC, make_request
from tests.support.smtp_server import SmtpServer


def linked_config(
    tmp_path: Path, mqtt: MosquittoBroker, site: str, cam: CameraHandle
) -> tuple[Path, Path]:
    state_dir = tmp_path / "state"
    cert, key = mqtt.issue_client_cert(site)
    jwks = RTCC.write_jwks(tmp_path / "rtcc-jwks.json")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{state_dir}"\n'
        f'[site]\nid = "{site}"\nname = "Corner Grocery"\naddress = "1 Main St"\n'
        f'[rtcc]\nbroker_url = "{mqtt.url()}"\nca_file = "{mqtt.ca_file}"\n'
        f'cert_file = "{cert}"\nkey_file = "{key}"\nissuer = "{ISSUER}"\n'
        f'jwks_file = "{jwks}"\n'
        "[store]\nsegment_seconds = 10\nmin_free = 0\n"
        '[policy]\nallowed_upload_hosts = ["uploads.rtcc.test"]\n'
        f'[control]\nsocket = "{tmp_path / "control.sock"}"\n'
        '[log]\nlevel = "info"\nformat = "console"\n'
        f'[[cameras]]\nid = "front-door"\nname = "Front door"\n'
        f'rtsp_url = "{cam.rtsp_url("main")}"\n'
        f'username = "{cam.username}"\nsecret = "{cam.password}"\n'
        'sharing = "integrated"\nlive = false\n'
        "[cameras.location]\nlat = 35.0844\nlon = -106.6504\n"
    )
    return config, state_dir


async def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`rtcc-edge --config CONFIG ARGS…` as the owner would type it."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agent", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Inbox:
    """Every message the RTCC side receives, verified with the device key, kept by topic, so a
    wait for one topic never discards another's (retained messages arrive once)."""

    def __init__(self, client: aiomqtt.Client, key: DeviceKey) -> None:
        self._client = client
        self._key = key
        self._seen: dict[str, list[dict[str, Any]]] = {}

    async def wait(
        self, topic: str, want: Callable[[dict[str, Any]], bool] = lambda c: True
    ) -> dict[str, Any]:
        async with asyncio.timeout(60):
            while True:
                for claims in self._seen.get(topic, []):
                    if want(claims):
                        return claims
                message = await next_message(self._client, within=60)
                if message.topic.value.endswith("/req"):
                    continue  # our own request, echoed back: the RTCC's, not the site's
                claims = verify_device_jws(bytes(message.payload).decode(), self._key.public_jwk)
                self._seen.setdefault(message.topic.value, []).append(claims)


async def test_daemon_takes_a_signed_request_and_publishes_its_presence(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    daemons: Callable[..., Any],
) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    topics = Topics(site)
    with run_cameras(low_res_camera()) as cams:
        config, state_dir = linked_config(tmp_path, broker, site, cams[0])
        daemon = daemons(config)
        await asyncio.to_thread(daemon.wait_recording, "front-door")
        key = DeviceKey.load(device_key_path(state_dir))

        async with broker.client() as rtcc:
            await rtcc.subscribe(f"rtcc/v1/sites/{site}/#", qos=1)
            inbox = Inbox(rtcc, key)
            registry = RegistryClaims.model_validate(
                await inbox.wait(
                    topics.registry, lambda c: any(cam["online"] for cam in c["cameras"])
                )
            )
            assert registry.site.name == "Corner Grocery"
            [listed] = registry.cameras
            assert (listed.id, listed.sharing, listed.live) == ("front-door", "integrated", False)

            payload = make_request("clip", aud=site, camera="front-door")
            await rtcc.publish(topics.req, payload, qos=1)
            event = await inbox.wait(topics.evt)
            assert (event["state"], event["seq"], event["iss"]) == ("accepted", 1, site)

            status = StatusClaims.model_validate(await inbox.wait(topics.status))
            assert status.online and status.cameras_online == 1 and status.cameras_total == 1
            assert status.store is not None and status.store.bytes_budget > 0
            assert status.clock is not None and status.clock.source

        # The owner sees the link up and the camera recording, and the request.
        shown = await cli(config, "status", "--json")
        assert shown.returncode == 0, shown.stderr
        owner_status = json.loads(shown.stdout)
        assert owner_status["enrolled"] is True and owner_status["link"]["state"] == "connected"
        [recorder] = owner_status["recorders"]
        assert (recorder["camera"], recorder["state"]) == ("front-door", "recording")
        owner = await cli(config, "requests", "--json")
        assert owner.returncode == 0, owner.stderr
        assert event["req"] in owner.stdout  # its state by now depends on delivery

        daemon.signal(15)
        assert await asyncio.to_thread(daemon.wait) == 0, daemon.log()

    async with broker.client() as rtcc:
        await rtcc.subscribe(topics.status, qos=1)
        message = await next_message(rtcc, within=30)
        final = verify_device_jws(bytes(message.payload).decode(), key.public_jwk)
        assert final["online"] is False
    # The ledger recorded the request and its decision, and its chain verifies.
    audit = await cli(config, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    assert event["req"] in audit.stdout
    verify = await cli(config, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_a_retry_after_outlives_a_daemon_restart(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    daemons: Callable[..., Any],
    https_receiver: ReceiverFactory,  # noqa: F811
    test_ca: TestCA,  # noqa: F811
) -> None:
    """The upload server answers 503 with Retry-After; the daemon is killed and started again
    at once: the retry must still wait for the time the server asked (measured by the server)."""
    site = f"site-{uuid.uuid4().hex[:8]}"
    topics = Topics(site)
    wait = 8
    with run_cameras(low_res_camera()) as cams:
        config, state_dir = linked_config(tmp_path, broker, site, cams[0])
        text = config.read_text().replace(
            '["uploads.rtcc.test"]',
            '["127.0.0.1"]\n[upload]\nca_file = "' + str(test_ca.cert_path) + '"',
        )
        config.write_text(text)
        first = daemons(config, name="first")
        await asyncio.to_thread(first.wait_recording, "front-door")
        await asyncio.sleep(4)
        script = [status(503, **{"Retry-After": str(wait)}), ok()]
        async with https_receiver(script) as receiver, broker.client() as rtcc:
            now = datetime.now(UTC)
            payload = make_request(
                "clip",
                aud=site,
                camera="front-door",
                start=(now - timedelta(seconds=4)).isoformat().replace("+00:00", "Z"),
                end=(now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
                upload={"url": receiver.url()},
            )
            await rtcc.publish(topics.req, payload, qos=1)
            jobs = state_dir / "delivery.db"
            async with asyncio.timeout(60):
                while not receiver.received or not _retry_after_kept(jobs):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            first.signal(9)
            await asyncio.to_thread(first.wait)
            second = daemons(config, name="second")
            async with asyncio.timeout(wait + 90):
                while len(receiver.completed) < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            second.signal(15)
            assert await asyncio.to_thread(second.wait) == 0, second.log()
    refused, accepted = receiver.received
    assert (refused.answered, accepted.answered) == (503, 200)
    assert accepted.at - refused.at >= wait - 0.05, accepted.at - refused.at


def _retry_after_kept(path: Path) -> bool:
    if not path.exists():
        return False
    queue = JobQueue(path)
    try:
        return any(row.not_before is not None for row in queue.all())
    finally:
        queue.close()


async def test_a_cut_tail_is_caught_with_the_head_the_rtcc_witnessed(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    daemons: Callable[..., Any],
) -> None:
    """Issue 12, item 5: entries cut from the end of a ledger that has no signed checkpoint yet
    (a daemon killed before its first one, then `head.json`-less) look like a whole ledger to
    the file alone; the head carried in the signed status the RTCC received catches it."""
    site = f"site-{uuid.uuid4().hex[:8]}"
    topics = Topics(site)
    with run_cameras(low_res_camera()) as cams:
        config, state_dir = linked_config(tmp_path, broker, site, cams[0])
        daemon = daemons(config)
        await asyncio.to_thread(daemon.wait_recording, "front-door")
        key = DeviceKey.load(device_key_path(state_dir))
        async with broker.client() as rtcc:
            await rtcc.subscribe(f"rtcc/v1/sites/{site}/#", qos=1)
            inbox = Inbox(rtcc, key)
            await inbox.wait(topics.status)
            payload = make_request("clip", aud=site, camera="no-such-camera")
            await rtcc.publish(topics.req, payload, qos=1)
            await inbox.wait(topics.evt, lambda c: c["state"] == "rejected")
            # A pause and a resume: entries, and a status published after each.
            for command in (["pause"], ["resume"]):
                done = await cli(config, *command)
                assert done.returncode == 0, done.stderr
            ledger_path = state_dir / "ledger" / "ledger.jsonl"
            last = json.loads(ledger_path.read_text().splitlines()[-1])
            assert last["kind"] == "resumed"
            # The signed status the RTCC receives after the resume carries that head.
            witnessed = ""
            async with asyncio.timeout(60):
                while not witnessed:
                    message = await next_message(rtcc, within=60)
                    if message.topic.value != topics.status:
                        continue
                    token = bytes(message.payload).decode()
                    claims = verify_device_jws(token, key.public_jwk)
                    if claims.get("ledger_seq") == last["seq"]:
                        assert claims["ledger_hash"] == last["hash"]
                        witnessed = token
        daemon.signal(9)  # no closing checkpoint
        await asyncio.to_thread(daemon.wait)

    entries = ledger_path.read_text().splitlines(keepends=True)
    assert not any('"kind": "checkpoint"' in line for line in entries), "none signed yet"
    assert not (state_dir / "ledger" / "head.json").exists()
    ledger_path.write_text("".join(entries[:-2]))  # the tail cut off
    alone = await cli(config, "audit", "verify")
    assert alone.returncode == 0, "the file alone cannot tell"
    witness = tmp_path / "status.jwt"
    witness.write_text(witnessed)
    caught = await cli(config, "audit", "verify", "--witness", str(witness))
    assert caught.returncode == 1, caught.stdout + caught.stderr
    said = " ".join(caught.stderr.split())
    assert "cut tail" in said and f"entry {last['seq']} was witnessed" in said, said


async def test_a_pending_request_is_notified_signed_and_by_email(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    daemons: Callable[..., Any],
) -> None:
    """The daemon tells the owner of a registry camera's request: a webhook body signed with
    its own device key, and an email over STARTTLS, both linking to the request on the page."""
    site = f"site-{uuid.uuid4().hex[:8]}"
    topics = Topics(site)
    posted: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await posted.put((await request.read(), request.headers.get(SIGNATURE_HEADER, "")))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    pki = TestCA(tmp_path / "mail-pki")
    mail_cert, mail_key = pki.issue("mail.test", server=True)
    try:
        async with SmtpServer(mail_cert, mail_key) as smtp:
            with run_cameras(low_res_camera()) as cams:
                config, state_dir = linked_config(tmp_path, broker, site, cams[0])
                secret = SecretBox.load_or_create(state_dir).encrypt(smtp.password)
                text = config.read_text()
                text = text.replace('sharing = "integrated"', 'sharing = "registry"')
                text = text.replace("[policy]\n", f'[policy]\nowner_webhook = "{hook_url}"\n')
                text += (
                    '[notify]\npage_url = "https://shop.lan:8443"\n'
                    f'[notify.email]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                    f'username = "{smtp.username}"\npassword = "{secret}"\n'
                    'from = "rtcc-edge@example.org"\nto = ["owner@example.org"]\n'
                    f'ca_file = "{pki.cert_path}"\n'
                )
                config.write_text(text)
                daemon = daemons(config)
                await asyncio.to_thread(daemon.wait_recording, "front-door")
                key = DeviceKey.load(device_key_path(state_dir))
                async with broker.client() as rtcc:
                    await rtcc.subscribe(f"rtcc/v1/sites/{site}/#", qos=1)
                    inbox = Inbox(rtcc, key)
                    payload = make_request("clip", aud=site, camera="front-door")
                    await rtcc.publish(topics.req, payload, qos=1)
                    event = await inbox.wait(topics.evt)
                    assert event["state"] == "pending_approval"
                body, signature = await asyncio.wait_for(posted.get(), 60)
                mail = await asyncio.wait_for(smtp.messages.get(), 60)
                daemon.signal(15)
                assert await asyncio.to_thread(daemon.wait) == 0, daemon.log()
    finally:
        await runner.cleanup()
    link = f"https://shop.lan:8443/requests/{event['req']}"
    assert verify_body(body, signature, key.public_jwk)["kid"] == key.kid
    assert json.loads(body)["link"] == link
    assert mail.tls and mail.login == "owner@example.org" and link in mail.message.get_content()
