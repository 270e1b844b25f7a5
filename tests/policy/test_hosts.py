"""Upload, manifest and relay destinations against the owner's allowed hosts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.policy import destination_problem, host_matches, is_loopback

ALLOWED = [
    "evidence.rtcc.example.gov",
    "*.s3.amazonaws.com",
    "upload.example.org:8443",
    "127.0.0.1",
]


def upload(url: str) -> str | None:
    return destination_problem(url, ALLOWED, secure="https", plain="http", what="upload")


@pytest.mark.parametrize(
    "url",
    [
        "https://evidence.rtcc.example.gov/put/1",
        "https://EVIDENCE.rtcc.example.gov./put/1",
        "https://bucket.s3.amazonaws.com/key?X-Amz-Signature=abc",
        "https://a.b.s3.amazonaws.com/key",
        "https://upload.example.org:8443/x",
        "http://127.0.0.1:8080/put",
        "https://127.0.0.1/put",
    ],
)
def test_allowed(url: str) -> None:
    assert upload(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.example/put", "not in the owner's allowed hosts"),
        ("https://s3.amazonaws.com/key", "not in the owner's allowed hosts"),
        ("https://evidence.rtcc.example.gov.evil.example/x", "not in the owner's allowed hosts"),
        ("https://xs3.amazonaws.com/key", "not in the owner's allowed hosts"),
        ("https://upload.example.org/x", "not in the owner's allowed hosts"),
        ("https://upload.example.org:443/x", "not in the owner's allowed hosts"),
        ("http://evidence.rtcc.example.gov/put", "must use https://"),
        ("ftp://evidence.rtcc.example.gov/put", "must use https://"),
        ("https://192.168.1.20/put", "not in the owner's allowed hosts"),
        ("https://[::1]/put", "not in the owner's allowed hosts"),
        ("https://evidence.rtcc.example.gov:99999/x", "not valid"),
        ("https:///nohost", "no host"),
        ("http://localhost/x", "not in the owner's allowed hosts"),
    ],
)
def test_refused(url: str, why: str) -> None:
    problem = upload(url)
    assert problem is not None and why in problem


def test_relay_needs_wss() -> None:
    relay = ["relay.rtcc.example.gov", "127.0.0.1"]

    def check(url: str) -> str | None:
        return destination_problem(url, relay, secure="wss", plain="ws", what="relay")

    assert check("wss://relay.rtcc.example.gov/in") is None
    assert check("ws://127.0.0.1:9000/in") is None
    assert "wss://" in (check("ws://relay.rtcc.example.gov/in") or "")
    assert "wss://" in (check("https://relay.rtcc.example.gov/in") or "")


def test_nothing_allowed_means_nothing_passes() -> None:
    problem = destination_problem(
        "https://evidence.rtcc.example.gov/", [], secure="https", plain="http", what="upload"
    )
    assert problem is not None


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.5.5.5") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("localhost.evil.example")


def test_pattern_matching() -> None:
    assert host_matches("a.example.com", 443, "*.example.com")
    assert not host_matches("example.com", 443, "*.example.com")
    assert host_matches("example.com", 8443, "example.com:8443")
    assert not host_matches("example.com", 443, "example.com:8443")


@given(st.text(max_size=200))
def test_any_text_is_judged_without_error(url: str) -> None:
    result = upload(url)
    assert result is None or isinstance(result, str)
