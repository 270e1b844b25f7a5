"""camsim's WS-Discovery responder: unicast Probes on loopback, multicast in a network namespace."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camsim.discovery import parse_probe
from tests.support.camsim import (
    CamsimRun,
    ProbeMatch,
    camera,
    probe_message,
    run_cameras,
    ws_probe,
)

REPO = Path(__file__).resolve().parents[2]
DN_TYPE = "dn:NetworkVideoTransmitter"


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="hik"),
        camera("axis", id="axis"),
        camera("dahua", id="other-host", host="127.0.0.2", location="city/springfield"),
        camera("budget", id="zero", host="127.0.0.3"),
        camera("budget-dvr", id="hidden"),  # no_ws_discovery
    ) as run:
        yield run


def probe(
    cams: CamsimRun,
    host: str = "127.0.0.1",
    *,
    types: str | None = DN_TYPE,
    scopes: str | None = None,
) -> list[ProbeMatch]:
    assert cams.discovery_port
    message_id, payload = probe_message(types=types, scopes=scopes)
    _, matches = ws_probe((host, cams.discovery_port), payload=payload, wait=0.6)
    assert all(m.relates_to == message_id for m in matches)
    return matches


def test_unicast_probe_gets_one_match_per_camera_at_that_address(cams: CamsimRun) -> None:
    assert cams.discovery_port
    message_id, matches = ws_probe(("127.0.0.1", cams.discovery_port), wait=0.8)
    by_endpoint = {m.endpoint: m for m in matches}
    assert len(matches) == len(by_endpoint) == 2  # hik and axis; "hidden" ignores Probes
    assert set(by_endpoint) == {cams["hik"].endpoint, cams["axis"].endpoint}
    assert len({m.message_id for m in matches}) == 2
    for cam in (cams["hik"], cams["axis"]):
        match = by_endpoint[cam.endpoint]
        assert match.endpoint.startswith("urn:uuid:")
        assert match.relates_to == message_id
        assert match.message_id.startswith("urn:uuid:") and match.message_id != message_id
        assert match.sender == ("127.0.0.1", cams.discovery_port)
        assert DN_TYPE in match.types and "tds:Device" in match.types
        assert match.xaddrs == [cam.onvif_url]
        model = cam.persona.model
        assert f"onvif://www.onvif.org/hardware/{model}" in match.scopes
        assert any(s.startswith("onvif://www.onvif.org/name/") for s in match.scopes)
        assert any(s.startswith("onvif://www.onvif.org/location/") for s in match.scopes)


def test_each_camera_answers_from_its_own_address(cams: CamsimRun) -> None:
    (match,) = probe(cams, "127.0.0.2")
    cam = cams["other-host"]
    assert match.endpoint == cam.endpoint
    assert match.sender == ("127.0.0.2", cams.discovery_port)
    assert "onvif://www.onvif.org/location/city/springfield" in match.scopes


def test_zero_host_quirk_in_xaddrs(cams: CamsimRun) -> None:
    (match,) = probe(cams, "127.0.0.3")
    cam = cams["zero"]
    assert match.xaddrs == [f"http://0.0.0.0:{cam.onvif_port}/onvif/device_service"]
    # The sender's address is what the agent must put in its place.
    assert match.sender[0] == cam.host


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (None, 2),
        ("", 2),
        (DN_TYPE, 2),
        ("tds:Device", 2),
        (f"{DN_TYPE} tds:Device", 2),
        ("dn:Printer", 0),
        ("nope:NetworkVideoTransmitter", 0),
    ],
)
def test_types_select_what_answers(cams: CamsimRun, types: str | None, expected: int) -> None:
    assert len(probe(cams, types=types)) == expected


def test_scopes_select_what_answers(cams: CamsimRun) -> None:
    hardware = "onvif://www.onvif.org/hardware/M1065-L"
    (match,) = probe(cams, scopes=hardware)
    assert match.endpoint == cams["axis"].endpoint
    assert len(probe(cams, scopes="onvif://www.onvif.org/type")) == 2  # a prefix matches all
    assert probe(cams, scopes="onvif://www.onvif.org/hardware/M1065") == []  # segments, not text


def test_unplugged_camera_is_silent(cams: CamsimRun) -> None:
    cam = cams["axis"]
    cam.faults.unplug()
    try:
        assert [m.endpoint for m in probe(cams)] == [cams["hik"].endpoint]
    finally:
        cam.faults.replug()
    assert len(probe(cams)) == 2


def test_malformed_datagrams_are_ignored(cams: CamsimRun) -> None:
    assert cams.discovery_port
    _, good = probe_message()
    junk = [
        b"",
        b"\x00" * 100,
        b"<not xml",
        good.replace(b"/Probe</a:Action>", b"/Hello</a:Action>"),  # not a Probe
        good.replace(b"<a:MessageID>", b"<a:Other>").replace(b"</a:MessageID>", b"</a:Other>"),
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + good.split(b"?>", 1)[1],
        good * 40,
    ]
    for payload in junk:
        _, matches = ws_probe(("127.0.0.1", cams.discovery_port), payload=payload, wait=0.2)
        assert matches == []
    assert len(probe(cams)) == 2


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=1500))
def test_fuzzed_datagrams_never_break_the_responder(cams: CamsimRun, data: bytes) -> None:
    assert cams.discovery_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", cams.discovery_port))


def test_responder_still_answers_after_fuzzing(cams: CamsimRun) -> None:
    assert len(probe(cams)) == 2


@given(data=st.binary(max_size=3000))
def test_probe_parser_never_raises(data: bytes) -> None:
    parse_probe(data)


@given(types=st.text(max_size=60), scopes=st.text(max_size=120))
def test_probe_parser_handles_any_types_and_scopes(types: str, scopes: str) -> None:
    escaped = types.replace("&", "&amp;").replace("<", "&lt;")
    escaped_scopes = scopes.replace("&", "&amp;").replace("<", "&lt;")
    _, payload = probe_message(types=escaped, scopes=escaped_scopes)
    parse_probe(payload)


# -- multicast, in a private network namespace ----------------------------------------------

_NETNS_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    from tests.support.camsim import camera, run_cameras, ws_probe

    GROUP, PORT = "239.255.255.250", 3702
    # Listen to the group like any other node, to see the Hello and Bye messages.
    watcher = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    watcher.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    watcher.bind((GROUP, PORT))
    watcher.setsockopt(
        socket.IPPROTO_IP,
        socket.IP_ADD_MEMBERSHIP,
        socket.inet_aton(GROUP) + socket.inet_aton("127.0.0.1"),
    )
    watcher.settimeout(0.5)

    def announcements():
        seen = []
        try:
            while True:
                seen.append(watcher.recvfrom(65535)[0].decode())
        except socket.timeout:
            return seen

    with run_cameras(
        camera("hikvision", id="a"),
        camera("dahua", id="b", host="127.0.0.2"),
        camera("reolink", id="c", host="127.0.0.3"),
        camera("budget-dvr", id="hidden"),
        discovery_port=PORT,
        multicast=True,
    ) as cams:
        hellos = announcements()
        message_id, matches = ws_probe((GROUP, PORT), multicast_interface="127.0.0.1", wait=1.5)
        result = {
            "message_id": message_id,
            "cameras": {c.id: [c.endpoint, c.host, c.onvif_url] for c in cams},
            "matches": [
                [m.endpoint, m.sender[0], m.sender[1], m.relates_to, m.xaddrs] for m in matches
            ],
            "hello": sum("/discovery/Hello<" in h for h in hellos),
        }
    result["bye"] = sum("/discovery/Bye<" in h for h in announcements())
    print(json.dumps(result))
    """
)


def _netns_available() -> bool:
    return (
        os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None
    )


@pytest.mark.netns
@pytest.mark.skipif(not _netns_available(), reason="needs root, unshare and ip")
def test_multicast_probe_in_a_network_namespace() -> None:
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
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cameras = result["cameras"]
    visible = {k: v for k, v in cameras.items() if k != "hidden"}
    matches = result["matches"]
    assert len(matches) == len(visible) == 3  # one ProbeMatch per camera, "hidden" stays quiet
    assert all(m[3] == result["message_id"] for m in matches)
    got = {m[0]: (m[1], m[2], m[4]) for m in matches}
    for endpoint, host, onvif_url in visible.values():
        assert got[endpoint] == (host, 3702, [onvif_url])
    assert result["hello"] == 3
    assert result["bye"] == 3
