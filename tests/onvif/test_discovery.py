"""Finding cameras: WS-Discovery (unicast on loopback, multicast in a network namespace), the
port sweep, merging, and what a hostile network can throw at the prober."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from agent.onvif import (
    ProbeMatch,
    ScanRangeError,
    SweepHit,
    find_cameras,
    port_sweep,
    scan_hosts,
    ws_discover,
)
from agent.onvif.discovery import probe_message
from agent.onvif.finder import merge
from agent.onvif.wsd_reply import Via, parse_probe_matches
from tests.onvif.servers import closed_port, http_server, silent_server
from tests.support.camsim import CamsimRun, camera, run_cameras

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="hik", host="127.0.0.2"),
        camera("budget", id="budget", host="127.0.0.3"),  # XAddrs with host 0.0.0.0
        camera("budget-dvr", id="dvr", host="127.0.0.4"),  # ignores Probes
        camera("dahua", id="dahua", host="127.0.0.5"),
    ) as run:
        yield run


def ports(cams: CamsimRun) -> list[int]:
    return [c.onvif_port for c in cams]


# -- scan ranges ---------------------------------------------------------------------------------


def test_scan_ranges() -> None:
    assert len(scan_hosts(["192.168.1.0/24"])) == 254
    assert scan_hosts(["10.0.0.7"]) == ["10.0.0.7"]
    assert scan_hosts(["10.0.0.6/31", "10.0.0.7"]) == ["10.0.0.6", "10.0.0.7"]
    assert len(scan_hosts(["172.16.0.0/22"])) == 1022
    assert scan_hosts(["192.168.1.77/30"]) == ["192.168.1.77", "192.168.1.78"]


@pytest.mark.parametrize(
    ("ranges", "words"),
    [
        (["10.0.0.0/16"], "at most a /22"),
        (["10.0.0.0/22", "10.0.4.0/22"], "more than 1024"),
        (["fe80::/64"], "only IPv4"),
        (["192.168.1.300"], "not an IPv4"),
        (["camera.local"], "not an IPv4"),
    ],
)
def test_bad_scan_ranges_are_refused_clearly(ranges: list[str], words: str) -> None:
    with pytest.raises(ScanRangeError) as caught:
        scan_hosts(ranges)
    assert words in str(caught.value)


# -- merging -------------------------------------------------------------------------------------


def match(
    sender: str, xaddr: str, endpoint: str | None = "urn:uuid:1", via: Via = "unicast"
) -> ProbeMatch:
    return ProbeMatch(endpoint, ("dn:NetworkVideoTransmitter",), (), (xaddr,), sender, 3702, via)


def test_duplicates_are_merged_and_bad_xaddrs_fixed() -> None:
    found = merge(
        [
            match("10.0.0.5", "http://0.0.0.0:80/onvif/device_service", via="multicast"),
            match("10.0.0.5", "http://0.0.0.0:80/onvif/device_service"),  # same endpoint
            match("10.0.0.6", "http://10.0.0.6:8000:8000/onvif/device_service", "urn:uuid:2"),
            match("10.0.0.6", "http://10.0.0.6:8000/onvif/device_service", "urn:uuid:3"),
            match("10.0.0.7", "http://192.168.99.1/onvif/device_service", None),
            match("10.0.0.8", "not a url", "urn:uuid:9"),
        ],
        [
            SweepHit("10.0.0.6", 8000, "http://10.0.0.6:8000/onvif/device_service", None),
            SweepHit("10.0.0.9", 8080, "http://10.0.0.9:8080/onvif/device_service", None),
        ],
    )
    assert [(c.host, c.port) for c in found] == [
        ("10.0.0.5", 80),
        ("10.0.0.6", 8000),
        ("10.0.0.7", 80),
        ("10.0.0.9", 8080),
    ]
    first, second, third, fourth = found
    assert first.found_by == ["multicast", "unicast"] and first.quirks == ["xaddr_zero_host"]
    assert second.found_by == ["unicast", "port_sweep"]
    assert second.quirks == ["xaddr_duplicate_port"]
    # A camera never chooses another host for us: the address it answered from is used.
    assert third.device_url == "http://10.0.0.7:80/onvif/device_service"
    assert third.quirks == ["xaddr_other_host"]
    assert fourth.found_by == ["port_sweep"]


# -- the prober against camsim -------------------------------------------------------------------


def test_unicast_scan_finds_every_camera_on_loopback(cams: CamsimRun) -> None:
    result = asyncio.run(
        find_cameras(
            scan=["127.0.0.0/29"],
            multicast=False,
            ws_port=cams.discovery_port or 0,
            sweep_ports=ports(cams),
            wait=1.0,
        )
    )
    by_host = {c.host: c for c in result.cameras}
    assert set(by_host) == {c.host for c in cams}
    for cam in cams:
        found = by_host[cam.host]
        assert found.device_url == cam.onvif_url
        assert found.port == cam.onvif_port
        assert found.clock is not None  # answered the sweep's GetSystemDateAndTime
    assert by_host["127.0.0.2"].endpoint == cams["hik"].endpoint
    assert by_host["127.0.0.2"].model == "DS-2CD2023G0-I"
    assert by_host["127.0.0.2"].found_by == ["unicast", "port_sweep"]
    assert by_host["127.0.0.3"].quirks == ["xaddr_zero_host"]
    assert by_host["127.0.0.4"].found_by == ["port_sweep"]
    assert by_host["127.0.0.4"].quirks == ["no_ws_discovery"]
    assert result.hosts_scanned == 6


def test_an_unplugged_camera_is_not_found(run_camsim: Callable[..., CamsimRun]) -> None:
    run = run_camsim(camera("generic", host="127.0.0.6"), camera("generic", host="127.0.0.7"))
    run[1].faults.unplug()
    assert run.discovery_port is not None
    result = asyncio.run(
        ws_discover(
            interfaces=[], hosts=["127.0.0.6", "127.0.0.7"], port=run.discovery_port, wait=1
        )
    )
    assert {m.sender for m in result} == {"127.0.0.6"}


# -- a hostile responder -------------------------------------------------------------------------


@pytest.fixture
def hostile_responder() -> Iterator[int]:
    """Answers each Probe with junk, a reply to another Probe, then one real ProbeMatch."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.8", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, sender = sock.recvfrom(65535)
            except TimeoutError:
                continue
            message_id = data.split(b"<a:MessageID>")[1].split(b"<")[0].decode()
            reply = (
                '<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
                ' xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
                ' xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header>'
                "<a:RelatesTo>{rel}</a:RelatesTo></s:Header><s:Body><d:ProbeMatches><d:ProbeMatch>"
                "<a:EndpointReference><a:Address>urn:uuid:{ep}</a:Address></a:EndpointReference>"
                "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
                "<d:XAddrs>http://0.0.0.0:8080/onvif/device_service</d:XAddrs>"
                "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
            )
            # From an ephemeral port, as many cameras answer.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.bind(("127.0.0.8", 0))
                for junk in (
                    b"\x00\xff" * 50,
                    b"<a><b>",
                    b"<!DOCTYPE x [<!ENTITY e 'e'>]><x>&e;</x>",
                ):
                    out.sendto(junk, sender)
                out.sendto(reply.format(rel="urn:uuid:someone-else", ep="bad").encode(), sender)
                out.sendto(reply.format(rel=message_id, ep="good").encode(), sender)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_junk_and_unrelated_replies_are_ignored(hostile_responder: int) -> None:
    matches = asyncio.run(
        ws_discover(interfaces=[], hosts=["127.0.0.8"], port=hostile_responder, wait=1.0)
    )
    assert matches and {m.endpoint for m in matches} == {"urn:uuid:good"}
    assert all(m.sender == "127.0.0.8" and m.sender_port != hostile_responder for m in matches)
    found = merge(matches.matches, [])
    assert [(c.host, c.port, c.quirks) for c in found] == [("127.0.0.8", 8080, ["xaddr_zero_host"])]


@given(st.binary(max_size=3000))
def test_the_reply_parser_never_raises(data: bytes) -> None:
    parse_probe_matches(data, ("10.0.0.1", 3702), message_ids=frozenset({"x"}), via="unicast")


@given(st.text(max_size=300))
def test_the_reply_parser_takes_any_text_in_a_match(text: str) -> None:
    body = probe_message("urn:uuid:x").replace(
        b"<d:Probe>",
        f"<d:ProbeMatches><d:ProbeMatch><d:Scopes>{text}</d:Scopes></d:ProbeMatch></d:ProbeMatches><d:Probe>".encode(
            "utf-8", "replace"
        ),
    )
    parse_probe_matches(body, ("10.0.0.1", 3702), message_ids=frozenset(), via="unicast")


# -- the sweep -----------------------------------------------------------------------------------


async def _web_page(_request: web.Request) -> web.Response:
    return web.Response(text="<html>router</html>", content_type="text/html")


def test_the_sweep_finds_onvif_and_nothing_else(cams: CamsimRun) -> None:
    camera_port = cams["dvr"].onvif_port
    with http_server(_web_page) as web_port, silent_server() as mute:
        hits = asyncio.run(
            port_sweep(
                ["127.0.0.1", "127.0.0.4"],
                [camera_port, web_port, mute, closed_port()],
                answer_within=0.5,
            )
        )
    assert [(h.host, h.port) for h in hits] == [("127.0.0.4", camera_port)]
    assert hits[0].clock is not None and hits[0].clock.offset is not None


# -- multicast, in a private network namespace -------------------------------------------------

_NETNS_SCRIPT = textwrap.dedent(
    """
    import asyncio, contextlib, io, json, os, sys
    from agent.log import configure_logging
    configure_logging("warning", fmt="console")
    from agent.cli import main
    from agent.onvif import find_cameras
    from tests.support.camsim import camera, run_cameras

    def at(persona, id, host, port, **extra):
        return camera(persona, id=id, host=host, onvif_port=port, rtsp_port=554, **extra)

    with run_cameras(
        at("hikvision", "hik", "127.0.0.1", 80),
        at("dahua", "dahua", "127.0.0.2", 80),
        at("reolink", "reolink", "127.0.0.3", 8000),
        at("budget", "budget", "127.0.0.4", 8899),
        at("budget-dvr", "hidden", "127.0.0.5", 8080),
        at("hikvision", "nouri", "127.0.0.6", 80, add_quirks=["stream_uri_fails"]),
        discovery_port=3702,
        multicast=True,
    ) as cams:
        multicast = asyncio.run(find_cameras())
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(["discover", "--scan", "127.0.0.0/29", "--no-multicast", "--json"])
        discovered = json.loads(out.getvalue())
        nouri = cams["nouri"]
        sys.stdin = io.StringIO(nouri.password + "\\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            check_status = main(
                ["check", "127.0.0.6", "--username", nouri.username, "--password-stdin", "--json"]
            )
        print(json.dumps({
            "cameras": {c.id: [c.host, c.onvif_url, c.endpoint] for c in cams},
            "multicast": [[c.host, c.device_url, c.found_by, c.quirks] for c in multicast.cameras],
            "interfaces": [i.name for i in multicast.interfaces],
            "discover_status": status,
            "discovered": discovered,
            "check_status": check_status,
            "check": json.loads(out.getvalue()),
        }))
    """
)


def _netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and bool(shutil.which("ip"))


@pytest.mark.netns
@pytest.mark.skipif(not _netns_available(), reason="needs root, unshare and ip")
def test_multicast_and_default_ports_in_a_network_namespace(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[site]\nid = "s"\nname = "S"\n')
    setup = (
        "ip link set lo up && ip link set lo multicast on && "
        'ip route add 239.0.0.0/8 dev lo && exec "$0" -'
    )
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", setup, sys.executable],
        input=_NETNS_SCRIPT,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "RTCC_EDGE_CONFIG": str(config)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cameras = result["cameras"]
    assert result["interfaces"] == ["lo"]
    # Multicast: every camera that answers Probes, from its own address, each once.
    visible = {k: v for k, v in cameras.items() if k != "hidden"}
    multicast = {
        host: (url, found_by, quirks) for host, url, found_by, quirks in result["multicast"]
    }
    assert set(multicast) == {host for host, _url, _ep in visible.values()}
    for host, url, _endpoint in visible.values():
        assert multicast[host][0] == url and multicast[host][1] == ["multicast"]
    assert multicast["127.0.0.4"][2] == ["xaddr_zero_host"]
    # `discover --scan` with the default ports also finds the camera that ignores Probes.
    assert result["discover_status"] == 0
    found = {c["host"]: c for c in result["discovered"]["cameras"]}
    assert set(found) == {host for host, _url, _ep in cameras.values()}
    assert found["127.0.0.5"]["found_by"] == ["port_sweep"]
    assert [q["id"] for q in found["127.0.0.5"]["quirks"]] == ["no_ws_discovery"]
    assert found["127.0.0.3"]["port"] == 8000 and found["127.0.0.3"]["vendor"]["id"] == "reolink"
    # GetStreamUri fails; the vendor's known path on the default RTSP port is found and verified.
    check = result["check"]
    streaming = next(c for c in check["checks"] if c["id"] == "streaming")
    assert streaming["status"] == "warn"
    assert check["stream"]["url"] == "rtsp://127.0.0.6:554/Streaming/Channels/101"
    assert check["stream"]["url_source"] == "firmware_profile"
    assert check["stream"]["codec"] == "h264"
    quirk = next(q for q in check["quirks"] if q["id"] == "stream_uri_fails")
    assert quirk["workaround"]
