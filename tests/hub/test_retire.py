"""`rtcc-hub sites retire` against the mosquitto `broker-config` wrote (issue 12, item 4): the
retired site's certificate is refused once mosquitto has read the new CRL, another site's is
not, and the site's retained registry and status are gone from the broker and the map."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from agent.cli import main as agent_main
from agent.cli.keys_cmd import device_key_path
from agent.config import load_config
from agent.enroll import EnrollResult, enroll
from agent.identity import DeviceKey
from agent.link import BrokerSettings, MqttSession, registry_from_config
from hub.cli import main as hub_main
from hub.core import Hub
from hub.ingest import ingest_retained
from hub.mqtt import hub_client
from hub.registry import map_cameras
from hub.sites import camera_rows, collect_sites
from tests.hub.test_enroll_broker import _refused, _site_tls
from tests.support.hub_enroll import EnrollHub, running_hub, write_agent_config

CAMERA = (
    '\n[[cameras]]\nid = "front"\nname = "Front door"\nrtsp_url = "rtsp://127.0.0.1:9/x"\n'
    'sharing = "integrated"\nlive = true\nlocation = { lat = 35.08, lon = -106.65 }\n'
)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[EnrollHub]:
    async with running_hub(tmp_path, broker=True) as running:
        yield running


async def _enroll(hub: EnrollHub, root: Path, name: str) -> tuple[EnrollResult, Path]:
    # Its own control socket: `retract` asks whether a daemon answers there.
    control = f'\n[control]\nsocket = "{root}/control.sock"\n'
    config = write_agent_config(root / "etc" / "agent.toml", root / "state", extra=CAMERA + control)
    result = await enroll(
        config,
        hub_url=hub.url,
        token=hub.token(name),
        device_key_at=device_key_path,
        ca_file=hub.ca_file,
    )
    return result, config


async def _publish_presence(config_path: Path) -> None:
    """The site's daemon, as far as the map is concerned: connect, publish, leave."""
    config = load_config(config_path)

    async def ignore(_payload: bytes) -> None:
        return None

    session = MqttSession(
        site_id=config.site.id,
        broker=BrokerSettings.from_config(config.rtcc),
        device_key=DeviceKey.load(device_key_path(config.state_dir)),
        on_request=ignore,
        registry=registry_from_config(config),
    )
    async with session:
        async with asyncio.timeout(30):
            await session.wait_connected()


def _serial(cert_file: Path | None) -> int:
    assert cert_file is not None
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number


def _hub_cli(hub: EnrollHub, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = hub_main(["--home", str(hub.home.root), *argv])
    return status, out.getvalue()


async def _map(hub: EnrollHub) -> set[str]:
    broker = hub.home.load_config().broker
    assert broker is not None
    async with hub_client(broker) as client:
        views = await collect_sites(client, hub.home.trusted_sites())
    return {row.site for row in camera_rows(views) if row.camera is not None}


async def _console_map(hub: EnrollHub) -> set[str]:
    opened = await Hub.open(hub.home)
    try:
        broker = hub.home.load_config().broker
        assert broker is not None
        async with hub_client(broker) as client:
            await ingest_retained(opened, client)
        return {camera.site for camera in await map_cameras(opened.db)}
    finally:
        await opened.close()


async def _eventually_refused(hub: EnrollHub, config: Path, *, within: float = 20) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await asyncio.to_thread(_refused, hub.site_port, _site_tls(config)):
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError("the retired site's certificate is still accepted")


async def test_a_retired_site_is_refused_and_leaves_the_map(hub: EnrollHub, tmp_path: Path) -> None:
    a, a_config = await _enroll(hub, tmp_path / "a", "Corner Grocery")
    b, b_config = await _enroll(hub, tmp_path / "b", "Bakery")
    await _publish_presence(a_config)
    await _publish_presence(b_config)
    assert await _map(hub) == {a.site_id, b.site_id}
    assert await _console_map(hub) == {a.site_id, b.site_id}
    assert not await asyncio.to_thread(_refused, hub.site_port, _site_tls(a_config))

    status, out = await asyncio.to_thread(_hub_cli, hub, "sites", "retire", a.site_id)
    assert status == 0, out
    serial = _serial(load_config(a_config).rtcc.cert_file)
    assert f"serial {serial:x}" in out and "withdrawn from the map" in out
    assert "systemctl reload mosquitto" in out  # how to make the broker read it
    crl = x509.load_pem_x509_crl((hub.broker_files.directory / "ca.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    # The map forgets the site at once; the broker has not read the CRL yet (as documented).
    assert await _map(hub) == {b.site_id}
    assert await _console_map(hub) == {b.site_id}
    assert not await asyncio.to_thread(_refused, hub.site_port, _site_tls(a_config))

    # Retiring again is harmless; this time the command signals the broker to reload.
    assert hub.mqtt is not None and hub.mqtt._proc is not None
    pid = str(hub.mqtt._proc.pid)
    status, out = await asyncio.to_thread(
        _hub_cli, hub, "sites", "retire", a.site_id, "--reload-pid", pid
    )
    assert status == 0 and "already revoked" in out and "sent SIGHUP" in out, out
    took = await _eventually_refused(hub, a_config)
    print(f"retired certificate refused {took:.2f} s after the reload signal")
    assert not await asyncio.to_thread(_refused, hub.site_port, _site_tls(b_config))
    assert hub.mqtt._proc.poll() is None  # reloaded, not restarted


async def test_retire_with_a_certificate_file_and_refusals(hub: EnrollHub, tmp_path: Path) -> None:
    a, a_config = await _enroll(hub, tmp_path / "a", "Corner Grocery")
    _, b_config = await _enroll(hub, tmp_path / "b", "Bakery")
    cert_b = str(load_config(b_config).rtcc.cert_file)
    # A certificate of another site is refused, and nothing is revoked.
    status, _ = await asyncio.to_thread(
        _hub_cli, hub, "sites", "retire", a.site_id, "--cert", cert_b
    )
    assert status == 2
    crl = x509.load_pem_x509_crl((hub.broker_files.directory / "ca.crl").read_bytes())
    assert len(list(crl)) == 0
    # The site's own certificate, also on record from enrollment: revoked once, not twice.
    cert_a = load_config(a_config).rtcc.cert_file
    status, out = await asyncio.to_thread(
        _hub_cli, hub, "sites", "retire", a.site_id, "--cert", str(cert_a)
    )
    assert status == 0, out
    crl = x509.load_pem_x509_crl((hub.broker_files.directory / "ca.crl").read_bytes())
    assert [entry.serial_number for entry in crl] == [_serial(cert_a)]


def _agent_cli(config: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = agent_main(["--config", str(config), *argv])
    return status, out.getvalue(), err.getvalue()


async def test_a_site_leaving_takes_itself_off_the_map(hub: EnrollHub, tmp_path: Path) -> None:
    """`rtcc-edge retract` (what the uninstaller runs): the site's own identity deletes its
    retained registry and status; the map and the console no longer show it."""
    a, a_config = await _enroll(hub, tmp_path / "a", "Corner Grocery")
    b, b_config = await _enroll(hub, tmp_path / "b", "Bakery")
    await _publish_presence(a_config)
    await _publish_presence(b_config)
    assert await _console_map(hub) == {a.site_id, b.site_id}
    status, out, err = await asyncio.to_thread(_agent_cli, a_config, "retract")
    assert status == 0, err
    assert f"Site {a.site_id} is off the RTCC's map" in out
    assert await _map(hub) == {b.site_id}
    assert await _console_map(hub) == {b.site_id}


async def test_retract_says_why_it_could_not(tmp_path: Path) -> None:
    """No broker there: a sentence naming what to do instead, exit 1, no traceback."""
    from tests.support.broker import free_port

    root = tmp_path / "site"
    config = write_agent_config(
        root / "agent.toml",
        root / "state",
        extra=f'\n[control]\nsocket = "{root}/control.sock"\n',
    )
    text = config.read_text().replace('id = "unenrolled"', 'id = "corner-1"')
    jwks = root / "jwks.json"
    jwks.write_text('{"keys": []}')
    config.write_text(
        text + f'\n[rtcc]\nbroker_url = "mqtt://127.0.0.1:{free_port()}"\nissuer = "x"\n'
        f'jwks_file = "{jwks}"\nusername = "corner-1"\npassword = "not-used-9"\n'
    )
    status, _, err = await asyncio.to_thread(_agent_cli, config, "retract", "--timeout", "5")
    assert status == 1
    assert "Could not take site corner-1 off the RTCC's map" in err
    assert "nothing listens on that port" in err
    assert "rtcc-hub sites retire corner-1" in " ".join(err.split()) and "Traceback" not in err
