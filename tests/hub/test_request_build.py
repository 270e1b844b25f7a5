"""Request claims as the hub builds them: valid per the wire contract, or an error naming the
flag to fix, before anything is signed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.wire import parse_request_claims
from hub.request import RequestError, build_claims
from hub.workflow import default_ttl

NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
TEN_MIN = timedelta(minutes=10)
BASE: dict[str, Any] = {"site": "site-1", "issuer": "https://rtcc.test", "now": NOW}


def test_every_command_builds_valid_claims() -> None:
    target = str(uuid.uuid4())
    built = {
        "clip": build_claims(
            "clip",
            ttl=TEN_MIN,
            camera="front-door",
            case="C-1",
            requester="a-7",
            reason="burglary",
            start=NOW - timedelta(minutes=6),
            end=NOW - timedelta(minutes=1),
            upload_url="https://up.example/x",
            manifest_url="https://up.example/x.json",
            **BASE,
        ),
        "snapshot": build_claims(
            "snapshot",
            ttl=TEN_MIN,
            camera="front-door",
            case="C-1",
            upload_url="https://up.example/s",
            **BASE,
        ),
        "stream": build_claims(
            "stream",
            ttl=TEN_MIN,
            camera="front-door",
            case="C-1",
            relay_url="wss://relay.example/in",
            relay_token="t" * 32,
            max_seconds=60,
            **BASE,
        ),
        "cancel": build_claims("cancel", ttl=TEN_MIN, target=target, **BASE),
        "inventory": build_claims("inventory", ttl=TEN_MIN, **BASE),
    }
    for cmd, claims in built.items():
        request = parse_request_claims(claims)
        assert request.cmd == cmd
        assert claims["aud"] == "site-1" and claims["iss"] == "https://rtcc.test"
        assert claims["exp"] - claims["iat"] == 600
        uuid.UUID(claims["jti"])
    assert built["clip"]["start"] == "2026-11-22T13:54:00Z"
    assert built["clip"]["upload"] == {
        "url": "https://up.example/x",
        "manifest_url": "https://up.example/x.json",
    }
    assert "manifest_url" not in built["snapshot"]["upload"]
    assert built["cancel"]["target"] == target
    assert len({c["jti"] for c in built.values()}) == 5


@pytest.mark.parametrize(
    ("cmd", "options", "message"),
    [
        ("clip", {"camera": "c", "case": "1", "upload_url": "https://u/x"}, "clip needs --from"),
        (
            "clip",
            {"case": "1", "start": NOW, "end": NOW + TEN_MIN, "upload_url": "https://u/x"},
            "clip needs --camera",
        ),
        (
            "clip",
            {
                "camera": "c",
                "case": "1",
                "start": NOW,
                "end": NOW - TEN_MIN,
                "upload_url": "https://u/x",
            },
            "end must be after start",
        ),
        ("snapshot", {"camera": "c", "case": "1"}, "snapshot needs --upload-url"),
        ("snapshot", {"camera": "c", "case": "1", "upload_url": "ftp://u/x"}, "--upload-url"),
        (
            "stream",
            {
                "camera": "c",
                "case": "1",
                "relay_url": "wss://r/x",
                "relay_token": "short",
                "max_seconds": 5,
            },
            "--relay-url/--relay-token",
        ),
        ("inventory", {"camera": "c"}, "--camera does not apply to inventory"),
        ("cancel", {}, "cancel needs --target"),
        ("cancel", {"target": "not-a-uuid"}, "--target"),
        ("teleport", {}, "unknown command"),
    ],
)
def test_mistakes_name_the_flag(cmd: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        build_claims(cmd, ttl=TEN_MIN, **BASE, **options)


def test_lifetime_caps_of_the_protocol() -> None:
    stream: dict[str, Any] = {
        "camera": "c",
        "case": "1",
        "relay_url": "wss://r/x",
        "relay_token": "t" * 32,
        "max_seconds": 5,
    }
    build_claims("stream", ttl=timedelta(minutes=15), **BASE, **stream)
    with pytest.raises(RequestError, match="at most 0:15:00"):
        build_claims("stream", ttl=timedelta(minutes=16), **BASE, **stream)
    build_claims("inventory", ttl=timedelta(days=7), **BASE)
    with pytest.raises(RequestError, match="at most 7 days"):
        build_claims("inventory", ttl=timedelta(days=8), **BASE)
    with pytest.raises(RequestError, match="more than 0"):
        build_claims("inventory", ttl=timedelta(0), **BASE)


def test_footage_requests_live_long_enough_for_an_owner_to_answer() -> None:
    """A registry camera's owner gets days, not minutes; live stays short."""
    assert default_ttl("clip") == default_ttl("snapshot") == timedelta(days=2)
    assert default_ttl("stream") == TEN_MIN
    # The two days fit under the clip's ttl limit, and the request carries them.
    claims = build_claims(
        "clip",
        ttl=default_ttl("clip"),
        camera="front-door",
        case="C-1",
        start=NOW - timedelta(minutes=6),
        end=NOW - timedelta(minutes=1),
        upload_url="https://up.example/x",
        **BASE,
    )
    assert claims["exp"] - claims["iat"] == 2 * 24 * 3600
    assert parse_request_claims(claims).cmd == "clip"
