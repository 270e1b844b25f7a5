"""`rtcc-hub tokens`, `broker-config` and `serve` as an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import ID_PATTERN
from hub.cli import main as hub_main
from hub.enroll import _Routes
from hub.keys import new_signing_key
from hub.state import HubHome
from hub.tokens import Location, TokenStore, site_id_for
from tests.support.broker import free_port

REPO = Path(__file__).resolve().parents[2]


def run(home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = hub_main(["--home", str(home), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tokens_new_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "hub"
    code, out, err = run(
        home, capsys, "tokens", "new", "--site-name", "Corner Grocery", "--location",
        "35.0844,-106.6504", "--ttl", "2h", "--json",
    )  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    assert made["token"].startswith("rtcc1_") and len(made["token"]) == 49
    expires = datetime.fromisoformat(made["expires"])
    assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)
    # Stored hashed: the token itself is nowhere in the hub's home.
    for path in home.rglob("*"):
        if path.is_file():
            assert made["token"] not in path.read_text(errors="replace"), path
    assert (home / "tokens.json").stat().st_mode & 0o777 == 0o600

    code, out, _ = run(home, capsys, "tokens", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["site"] == made["site"] and listed["used_at"] is None
    code, out, _ = run(home, capsys, "tokens", "list")
    assert made["site"] in out and "unused" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--site-name", "X", "--location", "91,0"],
        ["--site-name", "X", "--location", "nowhere"],
        ["--site-name", "", "--location", "1,1"],
        ["--site-name", "X", "--location", "1,1", "--ttl", "90d"],
        ["--site-name", "X", "--location", "1,1", "--ttl", "0s"],
    ],
)
def test_tokens_new_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    try:
        code, _, err = run(tmp_path / "hub", capsys, "tokens", "new", *argv)
    except SystemExit as exc:  # argparse's own refusal
        code, err = int(str(exc.code)), capsys.readouterr().err
    assert code == 2
    assert err.strip()
    assert not (tmp_path / "hub" / "tokens.json").exists()


@given(st.text(max_size=80))
def test_site_ids_from_any_name_are_valid(name: str) -> None:
    import re

    taken: set[str] = set()
    for _ in range(3):
        site = site_id_for(name, taken)
        assert re.fullmatch(ID_PATTERN, site)
        assert site not in taken
        taken.add(site)


def test_token_ids_never_collide_with_trusted_sites(tmp_path: Path) -> None:
    home = HubHome(tmp_path / "hub")
    store = TokenStore(home)
    made = {
        store.create(site_name="Same Name", location=Location(lat=1, lon=1))[1].site_id
        for _ in range(20)
    }
    assert len(made) == 20


def test_broker_config_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "hub"
    out = tmp_path / "broker"
    for argv in (
        ["--host", "evil host\nlistener 1"],
        ["--host", "ok", "--port", "0"],
        ["--host", "ok", "--port", "9000", "--hub-port", "9000", "--hub-bind", "0.0.0.0"],
    ):
        code, _, err = run(home, capsys, "broker-config", "--out", str(out), "--user", "", *argv)
        assert code == 2, argv
        assert "error:" in err
    assert not (out / "mosquitto.conf").exists()


def test_broker_config_writes_what_it_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "hub"
    out = tmp_path / "broker"
    code, stdout, err = run(
        home, capsys, "broker-config", "--out", str(out), "--host", "mqtt.rtcc.test",
        "--port", "8883", "--bind", "127.0.0.1", "--user", "",
    )  # fmt: skip
    assert code == 0, err
    assert "mqtts://mqtt.rtcc.test:8883" in stdout
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert conf.count("require_certificate true") == 2
    assert "use_identity_as_username true" in conf
    assert "use_username_as_clientid true" in conf
    acl = (out / "acl").read_text()
    assert "pattern readwrite rtcc/v1/sites/%u/#" in acl
    assert "user rtcc.hub\ntopic readwrite rtcc/v1/sites/#" in acl
    assert (out / "server.key").stat().st_mode & 0o777 == 0o600
    hub_toml = (home / "hub.toml").read_text()
    assert 'url = "mqtts://127.0.0.1:8884"' in hub_toml
    assert 'site_broker_url = "mqtts://mqtt.rtcc.test:8883"' in (home / "serve.toml").read_text()


def test_serve_process_starts_reports_and_stops(tmp_path: Path) -> None:
    home = HubHome(tmp_path / "hub")
    new_signing_key(home)
    ready = Path(tempfile.mkdtemp()) / "ready.json"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "--home", str(home.root), "serve", "--port", str(port),
         "--ready-file", str(ready)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["url"] == f"https://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=str(home.root / "ca" / "ca.pem"))
        with urllib.request.urlopen(info["url"] + "/healthz", context=context) as response:
            assert json.loads(response.read()) == {"ok": True}
        with urllib.request.urlopen(info["url"] + "/install.sh", context=context) as response:
            assert response.read().startswith(b"#!/bin/sh")
        settings = (home.root / "serve.toml").read_text()
        assert f'public_url = "https://127.0.0.1:{port}"' in settings
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"serving https://127.0.0.1:{port}" in out.decode()
    os.unlink(ready)


def test_server_certificate_is_reused_until_names_change(tmp_path: Path) -> None:
    from hub.server import hub_server_certificate

    home = HubHome(tmp_path / "hub")
    cert, _ = hub_server_certificate(home, ["hub.rtcc.test", "127.0.0.1"])
    first = cert.read_bytes()
    hub_server_certificate(home, ["127.0.0.1"])  # a subset: still covered
    assert cert.read_bytes() == first
    hub_server_certificate(home, ["relay.rtcc.test"])
    assert cert.read_bytes() != first


async def test_serve_with_a_given_certificate(tmp_path: Path) -> None:
    """--tls-cert/--tls-key: the server presents exactly that certificate."""
    import asyncio

    from hub.ca import CertificateAuthority
    from hub.server import HubServer

    other = CertificateAuthority.load_or_create(tmp_path / "public-ca", "ca", name="Public CA")
    pair = other.issue_server(["127.0.0.1"])
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    server = HubServer(HubHome(tmp_path / "hub"), port=0, tls_cert=cert, tls_key=key)
    listening = await server.start()
    try:
        context = ssl.create_default_context(cafile=str(other.cert_path))

        def fetch() -> bytes:
            with urllib.request.urlopen(listening.url + "/healthz", context=context) as response:
                return bytes(response.read())

        assert json.loads(await asyncio.to_thread(fetch)) == {"ok": True}
    finally:
        await server.close()
    assert not (tmp_path / "hub" / "tls").exists()  # no certificate of its own was made


def test_broker_config_nats_writes_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "hub"
    out = tmp_path / "nats"
    code, stdout, err = run(
        home, capsys, "broker-config", "--broker", "nats", "--out", str(out),
        "--host", "mqtt.rtcc.test", "--port", "8883",
    )  # fmt: skip
    assert code == 0, err
    urls = [f"mqtts://mqtt.rtcc.test:{port}" for port in (8883, 8884, 8885)]
    assert " ".join(urls) in stdout
    confs = [(out / f"node-{n}.conf").read_text() for n in (1, 2, 3)]
    assert all("verify_and_map: true" in c and "stream_replicas: 3" in c for c in confs)
    assert confs[0].count("nats-route://") == 2
    users = (out / "users.conf").read_text()
    assert '"CN=rtcc.hub"' in users and "rtcc.v1.sites.>" in users
    serve = (home / "serve.toml").read_text()
    assert all(url in serve for url in urls)
    # The hub's own client tries every node, the first one first.
    broker = HubHome(home).load_config().broker
    assert broker is not None and (broker.url, broker.urls) == (urls[0], urls[1:])
    assert broker.cert_file is not None and broker.cert_file.exists()
    code, _, err = run(home, capsys, "keys", "new", "--issuer", "https://rtcc.test")
    assert code == 0, err
    handed_out, _, _ = _Routes(HubHome(home))._ready()  # what enrollment answers
    assert handed_out == urls
    code, _, err = run(
        home, capsys, "broker-config", "--broker", "nats", "--out", str(out), "--host", "x",
        "--port", "8883", "--cluster-port", "8884",
    )  # fmt: skip
    assert code == 2 and "overlap" in err
