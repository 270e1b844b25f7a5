"""`agent.redact`: a camera URL's secret never survives, whatever shape the URL has."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agent.config import AgentConfig, config_warnings
from agent.redact import REDACTED, is_secret_name, redact, redact_url

SECRET_NAMES = ["password", "pwd", "pass", "passwd", "auth", "token", "key", "secret"]
# The same names as cheap cameras and cloud gateways spell them.
SPELLINGS = ["PassWord", "loginpas", "user_pwd", "api_key", "access_token", "X-Auth", "psw", "sig"]
HARMLESS = ["user", "usr", "channel", "subtype", "ch", "stream", "profile", "resolution"]

name_chars = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
secrets = st.text(min_size=4, max_size=24).filter(lambda s: s.strip() == s)


def percent_encode_one(name: str, index: int) -> str:
    """`name` with one character written as %XX (valid, and what a client may send)."""
    i = index % len(name)
    return name[:i] + "%" + format(ord(name[i]), "02X") + name[i + 1 :]


@st.composite
def camera_urls(draw: st.DrawFn) -> Callable[[str], str]:
    """A URL shape: given a secret, the URL carrying it in its userinfo, its query, its
    fragment, or several (drawn once, so the same URL can be built with and without it)."""
    scheme = draw(st.sampled_from(["rtsp", "rtsps", "http", "https"]))
    host = draw(st.sampled_from(["10.0.0.7", "cam.local", "[fe80::1]", "nvr-2"]))
    port = draw(st.sampled_from(["", ":554", ":8080"]))
    path = "/" + "/".join(draw(st.lists(name_chars, max_size=3)))
    encoders: list[Callable[[str], str]] = [lambda s: quote(s, safe=""), quote_plus, quote]
    encode = draw(st.sampled_from(encoders))
    places = draw(st.sets(st.sampled_from(["userinfo", "query", "fragment"]), min_size=1))
    user = draw(name_chars)

    def pairs() -> tuple[list[str], int, str, str]:
        name = draw(st.sampled_from(SECRET_NAMES + SPELLINGS))
        if draw(st.booleans()):
            name = percent_encode_one(name, draw(st.integers(0, 20)))
        harmless = [
            f"{draw(st.sampled_from(HARMLESS))}={draw(name_chars)}"
            for _ in range(draw(st.integers(0, 3)))
        ]
        position = draw(st.integers(0, len(harmless)))
        separator = draw(st.sampled_from(["&", ";"]))  # `;` in old CGI forms
        return harmless, position, name, separator

    query = pairs() if "query" in places else None
    fragment = pairs() if "fragment" in places else None
    fragment_head = draw(st.sampled_from(["", "/view?"]))

    def params(shape: tuple[list[str], int, str, str], secret: str) -> str:
        harmless, position, name, separator = shape
        items = [*harmless[:position], f"{name}={encode(secret)}", *harmless[position:]]
        return separator.join(items)

    def build(secret: str) -> str:
        userinfo = f"{user}:{quote(secret, safe='')}@" if "userinfo" in places else ""
        url = f"{scheme}://{userinfo}{host}{port}{path}"
        if query is not None:
            url += "?" + params(query, secret)
        if fragment is not None:
            url += "#" + fragment_head + params(fragment, secret)
        return url

    return build


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}


def outputs(url: str) -> list[str]:
    return [
        redact_url(url),
        redact(f"av.open failed for '{url}': 401 Unauthorized"),
        # An address printed without its scheme and userinfo: the query still goes.
        redact(url.split("://", 1)[1].split("@", 1)[-1]),
    ]


@given(camera_urls(), secrets)
def test_the_secret_never_survives_in_any_url_shape(
    build: Callable[[str], str], secret: str
) -> None:
    url = build(secret)
    # A form of the secret that the URL holds anyway (a secret "live" and the path /live)
    # cannot be told apart: such draws are skipped.
    clean = "".join(outputs(build("SECRETPLACEHOLDER")))
    for form in forms(secret):
        assume(form not in clean and form not in REDACTED)
    for text in outputs(url):
        for form in forms(secret):
            assert form not in text, (url, text)


@given(camera_urls(), secrets)
def test_redaction_keeps_what_says_which_camera(build: Callable[[str], str], secret: str) -> None:
    url = build(secret)
    out = redact_url(url)
    assert out.split("://")[0] == url.split("://")[0]
    host_and_path = url.split("://", 1)[1].split("@", 1)[-1].split("?")[0].split("#")[0]
    assert host_and_path in out
    assert out.count(REDACTED) >= 1


@pytest.mark.parametrize("name", SECRET_NAMES + SPELLINGS + ["pass%77ord", "PWD", "Passwd"])
def test_secret_parameter_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [*HARMLESS, "keyframe_interval", "fps", "codec"])
def test_harmless_parameter_names(name: str) -> None:
    assert not is_secret_name(name)


def test_known_shapes() -> None:
    assert (
        redact_url("rtsp://admin:h%40ck@10.0.0.5:554/cam/realmonitor?channel=1&subtype=0")
        == "rtsp://admin:[redacted]@10.0.0.5:554/cam/realmonitor?channel=1&subtype=0"
    )
    assert (
        redact_url("http://cam/videostream.cgi?loginuse=admin&loginpas=12345")
        == "http://cam/videostream.cgi?loginuse=admin&loginpas=[redacted]"
    )
    assert (
        redact_url("rtsp://cam/live?user=admin&password=x&pwd=y#token=z")
        == "rtsp://cam/live?user=admin&password=[redacted]&pwd=[redacted]#token=[redacted]"
    )
    assert redact("bad secret enc:v1:QUJD_-x in the file") == "bad secret [redacted] in the file"
    assert redact("rtsp://cam/live?user=admin") == "rtsp://cam/live?user=admin"


def test_config_check_warns_of_a_password_in_a_url_query(tmp_path: Path) -> None:
    """`?user=admin&password=…` is a password in clear, as much as `admin:…@` is."""
    config = AgentConfig(
        state_dir=tmp_path,
        site={"id": "site-1", "name": "x"},
        cameras=[
            {"id": "a", "name": "A", "rtsp_url": "rtsp://cam/live?user=admin&pwd=Hunter-2"},
            {"id": "b", "name": "B", "rtsp_url": "rtsp://cam/live?channel=1"},
        ],
    )
    fields = {p.field for p in config_warnings(config) if "in clear" in p.message}
    assert "cameras[0].rtsp_url" in fields and "cameras[1].rtsp_url" not in fields
