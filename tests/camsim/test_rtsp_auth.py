"""Digest (RFC 2069 and RFC 2617 qop=auth), Basic and no auth, answered as a camera would."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camsim.rtsp.auth import RtspAuth, parse_auth_params

URI = "rtsp://127.0.0.1:8554/Streaming/Channels/101"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class Clock:
    """A clock the test moves by hand, so nonce expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def nonce_of(challenge: str) -> str:
    params = parse_auth_params(challenge.split(" ", 1)[1])
    return params["nonce"]


def digest(
    nonce: str,
    *,
    method: str = "DESCRIBE",
    uri: str = URI,
    username: str = "admin",
    password: str = "pw:1",
    realm: str = "camsim",
    qop: bool = False,
) -> str:
    ha1 = md5(f"{username}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if qop:
        response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
        extra = ', qop=auth, nc=00000001, cnonce="c0ffee"'
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
        extra = ""
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}"{extra}'
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock: Clock) -> RtspAuth:
    return RtspAuth(
        "digest",
        realm="camsim",
        username="admin",
        password="pw:1",
        nonce_lifetime=60,
        clock=clock,
    )


def test_missing_authorization_gets_a_digest_challenge(auth: RtspAuth) -> None:
    challenge = auth.check("DESCRIBE", URI, None)
    assert challenge is not None
    assert challenge.startswith('Digest realm="camsim", nonce="')
    assert "stale=FALSE" in challenge


@pytest.mark.parametrize("qop", [False, True], ids=["rfc2069", "qop-auth"])
def test_correct_digest_passes(auth: RtspAuth, qop: bool) -> None:
    nonce = nonce_of(auth.challenge())
    assert auth.check("DESCRIBE", URI, digest(nonce, qop=qop)) is None
    # The same nonce keeps working for later requests until it expires.
    assert auth.check("PLAY", URI, digest(nonce, method="PLAY", qop=qop)) is None


def test_path_form_uri_matches_absolute_request_uri(auth: RtspAuth) -> None:
    nonce = nonce_of(auth.challenge())
    assert auth.check("DESCRIBE", URI, digest(nonce, uri="/Streaming/Channels/101")) is None


@pytest.mark.parametrize(
    "change",
    [
        {"password": "wrong"},
        {"username": "root"},
        {"realm": "other"},
        {"method": "PLAY"},  # response computed for another method
        {"uri": "rtsp://127.0.0.1:8554/Streaming/Channels/102"},  # for another resource
    ],
)
def test_wrong_digest_is_refused_without_stale(auth: RtspAuth, change: dict[str, str]) -> None:
    nonce = nonce_of(auth.challenge())
    challenge = auth.check("DESCRIBE", URI, digest(nonce, **change))  # type: ignore[arg-type]
    assert challenge is not None and "stale=FALSE" in challenge


def test_forged_nonce_is_refused(auth: RtspAuth) -> None:
    nonce = nonce_of(auth.challenge())
    forged = nonce[:16] + ("0" if nonce[16] != "0" else "1") + nonce[17:]
    assert auth.check("DESCRIBE", URI, digest(forged)) is not None
    assert auth.check("DESCRIBE", URI, digest("not-a-nonce")) is not None
    other = RtspAuth("digest", realm="camsim", username="admin", password="pw:1")
    assert auth.check("DESCRIBE", URI, digest(nonce_of(other.challenge()))) is not None


def test_expired_nonce_with_right_password_is_stale(auth: RtspAuth, clock: Clock) -> None:
    nonce = nonce_of(auth.challenge())
    clock.now += 61
    challenge = auth.check("DESCRIBE", URI, digest(nonce))
    assert challenge is not None and "stale=TRUE" in challenge
    fresh = nonce_of(challenge)
    assert fresh != nonce
    assert auth.check("DESCRIBE", URI, digest(fresh)) is None
    # A wrong password is never "stale": the client must not retry silently.
    challenge = auth.check("DESCRIBE", URI, digest(nonce, password="wrong"))
    assert challenge is not None and "stale=FALSE" in challenge


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWRtaW46cHc6MQ==",  # Basic offered to a Digest camera
        "Digest",
        "Digest username=",
        'Digest username="admin", username="admin"',
        'Digest username="admin" realm="camsim"',
        'Digest username="admin", realm="camsim", nonce="x", uri="y", response="z", '
        "algorithm=SHA-256",
        'Digest username="admin", qop=auth-int',
        "Bearer abc",
        "x" * 10_000,
    ],
)
def test_malformed_or_foreign_authorization_is_refused(auth: RtspAuth, header: str) -> None:
    assert auth.check("DESCRIBE", URI, header) is not None


def test_qop_auth_needs_nc_and_cnonce(auth: RtspAuth) -> None:
    nonce = nonce_of(auth.challenge())
    header = digest(nonce, qop=True).replace(", nc=00000001", "")
    assert auth.check("DESCRIBE", URI, header) is not None


def test_basic_mode() -> None:
    auth = RtspAuth("basic", realm="cam", username="admin", password="pw:1")
    assert auth.check("DESCRIBE", URI, None) == 'Basic realm="cam"'
    good = "Basic " + base64.b64encode(b"admin:pw:1").decode()
    assert auth.check("DESCRIBE", URI, good) is None
    bad = "Basic " + base64.b64encode(b"admin:nope").decode()
    assert auth.check("DESCRIBE", URI, bad) is not None
    assert auth.check("DESCRIBE", URI, "Basic !!!notbase64") is not None
    not_utf8 = "Basic " + base64.b64encode(b"\xff\xfe").decode()
    assert auth.check("DESCRIBE", URI, not_utf8) is not None


def test_none_mode_lets_everything_through() -> None:
    auth = RtspAuth("none", realm="cam", username="admin", password="pw")
    assert auth.check("DESCRIBE", URI, None) is None
    assert auth.check("DESCRIBE", URI, "garbage") is None


def test_realm_is_quoted_safely() -> None:
    auth = RtspAuth("digest", realm='IP "Camera" \\ 1', username="admin", password="pw")
    challenge = auth.challenge()
    assert parse_auth_params(challenge.split(" ", 1)[1])["realm"] == 'IP "Camera" \\ 1'


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "ntlm"},
        {"realm": ""},
        {"realm": "a\r\nb"},
        {"username": "a:b"},
        {"password": "a\nb"},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, str]) -> None:
    values = {"mode": "digest", "realm": "camsim", "username": "admin", "password": "pw"}
    values.update(kwargs)
    mode = values.pop("mode")
    with pytest.raises(ValueError):
        RtspAuth(mode, **values)  # type: ignore[arg-type]


@settings(max_examples=3000, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_authorization_header(header: str) -> None:
    auth = RtspAuth("digest", realm="camsim", username="admin", password="pw")
    assert auth.check("DESCRIBE", URI, header) is not None
    assert auth.check("DESCRIBE", URI, "Digest " + header) is not None
