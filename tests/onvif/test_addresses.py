"""Service addresses and stream URIs as cameras advertise them, made usable."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.onvif.addresses import (
    FixedUrl,
    advertised_port,
    fix_service_url,
    fix_stream_uri,
    unescape_uri,
)
from agent.onvif.errors import MalformedAnswer
from agent.quirks import QuirkId


def test_a_zero_host_is_replaced_by_the_host_we_reached() -> None:
    fixed = fix_service_url(
        "http://0.0.0.0:8899/onvif/Media",
        reached_host="10.1.2.3",
        reached_port=8899,
        device_port=8899,
    )
    assert fixed.url == "http://10.1.2.3:8899/onvif/Media"
    assert fixed.quirks == [QuirkId.XADDR_ZERO_HOST]


def test_a_duplicated_port_is_dropped() -> None:
    fixed = fix_service_url(
        "http://10.1.2.3:8080:8080/onvif/media_service",
        reached_host="10.1.2.3",
        reached_port=8080,
        device_port=8080,
    )
    assert fixed.url == "http://10.1.2.3:8080/onvif/media_service"
    assert fixed.quirks == [QuirkId.XADDR_DUPLICATE_PORT]


def test_a_lan_address_seen_through_nat_gets_the_address_and_port_we_reached() -> None:
    # The camera is 192.168.1.10:80 on its LAN; we reach it as 203.0.113.5:8081.
    device = "http://192.168.1.10/onvif/device_service"
    media = "http://192.168.1.10/onvif/Media"
    port = advertised_port(device)
    fixed = fix_service_url(media, reached_host="203.0.113.5", reached_port=8081, device_port=port)
    assert fixed.url == "http://203.0.113.5:8081/onvif/Media"
    assert fixed.quirks == [QuirkId.XADDR_OTHER_HOST]


def test_a_service_on_another_port_keeps_its_port() -> None:
    fixed = fix_service_url(
        "http://10.1.2.3:8999/event", reached_host="10.1.2.3", reached_port=80, device_port=80
    )
    assert fixed.url == "http://10.1.2.3:8999/event" and fixed.quirks == []


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "http://h:99999/x", "http://h:port/x", "http://h/x y", "x" * 3000, ""]
)
def test_unusable_service_addresses_are_malformed(url: str) -> None:
    with pytest.raises(MalformedAnswer):
        fix_service_url(url, reached_host="h", reached_port=80, device_port=80)


def test_a_double_escaped_stream_uri_is_unescaped() -> None:
    fixed = fix_stream_uri(
        "rtsp://10.0.0.7:554/cam/realmonitor?channel=1&amp;amp;subtype=0", reached_host="10.0.0.7"
    )
    assert fixed.url == "rtsp://10.0.0.7:554/cam/realmonitor?channel=1&subtype=0"
    assert fixed.quirks == [QuirkId.ESCAPED_STREAM_URI]


def test_a_stream_uri_loses_its_credentials_and_points_where_we_reached() -> None:
    fixed = fix_stream_uri("rtsp://admin:pw@192.168.0.99/live", reached_host="10.0.0.7")
    assert fixed.url == "rtsp://10.0.0.7:554/live"
    assert "pw" not in fixed.url
    assert fixed.quirks == [QuirkId.XADDR_OTHER_HOST]


def test_unescaping_leaves_other_entities_alone() -> None:
    assert unescape_uri("rtsp://h/a?x=1&copy=2") == ("rtsp://h/a?x=1&copy=2", False)
    assert unescape_uri("rtsp://h/a?x=1&#38;y=2") == ("rtsp://h/a?x=1&y=2", True)


@given(st.text(max_size=300), st.sampled_from(["10.0.0.1", "cam.local", "fe80::1"]))
def test_any_advertised_text_is_fixed_to_our_host_or_refused(text: str, host: str) -> None:
    calls: tuple[Callable[[], FixedUrl], ...] = (
        lambda: fix_service_url(text, reached_host=host, reached_port=80, device_port=None),
        lambda: fix_stream_uri(text, reached_host=host),
    )
    for call in calls:
        try:
            fixed = call()
        except MalformedAnswer:
            continue
        assert urlsplit(fixed.url).hostname == host.lower()
