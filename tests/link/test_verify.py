"""Request verification: every code verification can produce, each from a crafted request."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.link.replay import ReplayCache
from agent.link.verify import JwksError, KeyRing, Rejection, Verified, Verifier, parse_jwks
from agent.wire import MAX_REQUEST_BYTES, RejectCode
from agent.wire.requests import ClipRequest, StreamRequest
from tests.support.rtcc import (
    DROP,
    ISSUER,
    RTCC,
    SITE,
    RtccTestKey,
    alg_none,
    b64url,
    forged,
    hs256_with_public_key,
    jti_of,
    make_claims,
    make_request,
    make_token,
    tampered,
)


@pytest.fixture
def jwks_path(tmp_path: Path) -> Path:
    return RTCC.write_jwks(tmp_path / "jwks.json")


@pytest.fixture
def verifier(tmp_path: Path, jwks_path: Path) -> Iterator[Verifier]:
    replay = ReplayCache(tmp_path / "replay.db")
    yield Verifier(
        KeyRing(jwks_path),
        replay,
        issuer=ISSUER,
        audience=SITE,
        leeway=timedelta(seconds=30),
        max_lifetime=timedelta(days=7),
        max_stream_lifetime=timedelta(minutes=15),
    )
    replay.close()


def rejected(result: Verified | Rejection, code: RejectCode) -> Rejection:
    assert isinstance(result, Rejection), f"expected {code}, got a verified request"
    assert result.code is code, f"expected {code}, got {result.code}: {result.message}"
    return result


def raw_token(
    header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"x" * 64
) -> bytes:
    parts = [
        b64url(json.dumps(header).encode()),
        b64url(json.dumps(claims).encode()),
        b64url(signature),
    ]
    return ".".join(parts).encode()


@pytest.mark.parametrize("cmd", ["clip", "snapshot", "stream", "cancel", "inventory"])
def test_valid_requests_verify(verifier: Verifier, cmd: str) -> None:
    payload = make_request(cmd)
    result = verifier.verify(payload)
    assert isinstance(result, Verified), result
    assert result.request.cmd == cmd
    assert result.request.jti == jti_of(payload)
    assert result.kid == RTCC.kid


def test_clock_leeway_tolerates_a_slightly_expired_request(verifier: Verifier) -> None:
    now = time.time()
    result = verifier.verify(make_request(iat=int(now) - 600, exp=int(now) - 10))
    assert isinstance(result, Verified)


def test_oversize_payload_refused_before_parsing(verifier: Verifier) -> None:
    payload = make_request(reason="x" * 100) + b"A" * MAX_REQUEST_BYTES
    result = rejected(verifier.verify(payload), RejectCode.MALFORMED)
    assert not result.parseable and result.jti is None
    assert str(MAX_REQUEST_BYTES) in result.message


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello",
        b"a.b",
        b"a.b.c.d",
        "é.é.é".encode(),
        b"\xff\xfe.x.y",
        b"!!!.eyJ9.abc",
        b64url(b"[1,2]").encode() + b"." + b64url(b"{}").encode() + b".",
        b64url(b'{"alg":"EdDSA"}').encode() + b"." + b64url(b"not json").encode() + b".",
        b64url(b'{"alg":"EdDSA"}').encode() + b"." + b64url(b'{"a":NaN}').encode() + b".",
        b64url(b'{"alg":"EdDSA"}').encode() + b"." + b64url(b'{"a":1,"a":2}').encode() + b".",
        b64url(b'{"alg":"EdDSA"}').encode() + b"." + b64url(b"[" * 5000).encode() + b".",
        b64url(b'{"alg":"EdDSA"}').encode() + b"." + b64url(b"{}").encode() + b".***",
    ],
)
def test_not_a_jwt_is_malformed_and_unaddressable(verifier: Verifier, payload: bytes) -> None:
    result = rejected(verifier.verify(payload), RejectCode.MALFORMED)
    assert not result.parseable
    assert result.jti is None


def test_signed_token_with_non_json_claims_is_unparseable(verifier: Verifier) -> None:
    token = RTCC.sign_raw({"alg": "EdDSA", "kid": RTCC.kid}, b"definitely not json")
    result = rejected(verifier.verify(token.encode()), RejectCode.MALFORMED)
    assert not result.parseable


def test_alg_none(verifier: Verifier) -> None:
    claims = make_claims()
    result = rejected(verifier.verify(alg_none(claims)), RejectCode.BAD_ALGORITHM)
    assert result.jti == claims["jti"] and result.parseable and not result.verified


def test_hs256_signed_with_the_public_key(verifier: Verifier) -> None:
    claims = make_claims()
    rejected(verifier.verify(hs256_with_public_key(claims)), RejectCode.BAD_ALGORITHM)


@pytest.mark.parametrize(
    "alg", ["HS256", "HS512", "RS256", "ES256", "PS256", "Ed25519", "eddsa", None, 7, ["EdDSA"]]
)
def test_every_other_algorithm(verifier: Verifier, alg: Any) -> None:
    header = {"kid": RTCC.kid, "typ": "JWT"}
    if alg is not None:
        header["alg"] = alg
    rejected(verifier.verify(raw_token(header, make_claims())), RejectCode.BAD_ALGORITHM)


@pytest.mark.parametrize("extension", [{"crit": ["exp"]}, {"b64": False, "crit": ["b64"]}])
def test_header_extensions_are_refused(verifier: Verifier, extension: dict[str, Any]) -> None:
    header = {"alg": "EdDSA", "kid": RTCC.kid, **extension}
    rejected(verifier.verify(raw_token(header, make_claims())), RejectCode.MALFORMED)


def test_unknown_kid(verifier: Verifier) -> None:
    stranger = RtccTestKey.generate()
    result = rejected(verifier.verify(make_request(key=stranger)), RejectCode.UNKNOWN_KEY)
    assert result.kid == stranger.kid


def test_missing_kid(verifier: Verifier) -> None:
    header = {"alg": "EdDSA"}
    rejected(verifier.verify(raw_token(header, make_claims())), RejectCode.UNKNOWN_KEY)


def test_keys_named_in_the_header_are_ignored(verifier: Verifier) -> None:
    """`jwk` in the header (the embedded-key attack) does not make a stranger's key trusted."""
    stranger = RtccTestKey.generate()
    token = stranger.sign(make_claims(), headers={"kid": RTCC.kid, "jwk": stranger.public_jwk})
    rejected(verifier.verify(token.encode()), RejectCode.BAD_SIGNATURE)


def test_forged_signature(verifier: Verifier) -> None:
    claims = make_claims()
    result = rejected(verifier.verify(forged(claims)), RejectCode.BAD_SIGNATURE)
    assert result.jti == claims["jti"] and not result.verified
    assert result.issuer is None, "claims of an unverified token are never reported as facts"


def test_claims_changed_after_signing(verifier: Verifier) -> None:
    token = make_token(camera="front-door")
    rejected(verifier.verify(tampered(token, camera="stockroom")), RejectCode.BAD_SIGNATURE)


def test_signature_checked_before_any_claim(verifier: Verifier) -> None:
    """An expired, wrongly addressed request with a bad signature is `bad_signature`."""
    now = int(time.time())
    claims = make_claims(iat=now - 7200, exp=now - 3600, aud="other-site", iss="https://evil")
    rejected(verifier.verify(forged(claims)), RejectCode.BAD_SIGNATURE)


def test_truncated_signature(verifier: Verifier) -> None:
    token = make_token()
    rejected(verifier.verify(token[:-10].encode()), RejectCode.BAD_SIGNATURE)


def test_wrong_issuer(verifier: Verifier) -> None:
    result = rejected(
        verifier.verify(make_request(iss="https://other.rtcc")), RejectCode.WRONG_ISSUER
    )
    assert result.verified and result.issuer == "https://other.rtcc"


def test_wrong_audience(verifier: Verifier) -> None:
    rejected(verifier.verify(make_request(aud="site-2")), RejectCode.WRONG_AUDIENCE)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_not_yet_valid(verifier: Verifier, claim: str) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now + 600, "exp": now + 900}
    if claim == "nbf":
        claims = {"iat": now, "nbf": now + 600, "exp": now + 900}
    rejected(verifier.verify(make_request(**claims)), RejectCode.NOT_YET_VALID)


def test_expired(verifier: Verifier) -> None:
    now = int(time.time())
    rejected(verifier.verify(make_request(iat=now - 900, exp=now - 60)), RejectCode.EXPIRED)


@pytest.mark.parametrize(
    ("cmd", "lifetime"),
    [
        ("stream", 15 * 60 + 1),
        ("clip", 7 * 86400 + 1),
        ("snapshot", 8 * 86400),
        ("cancel", 8 * 86400),
    ],
)
def test_lifetime_too_long(verifier: Verifier, cmd: str, lifetime: int) -> None:
    now = int(time.time())
    result = verifier.verify(make_request(cmd, iat=now, exp=now + lifetime))
    rejected(result, RejectCode.LIFETIME_TOO_LONG)


def test_lifetime_at_the_cap_passes(verifier: Verifier) -> None:
    now = int(time.time())
    assert isinstance(verifier.verify(make_request("stream", iat=now, exp=now + 900)), Verified)


def test_configured_lifetime_lower_than_the_protocol(tmp_path: Path, jwks_path: Path) -> None:
    replay = ReplayCache(tmp_path / "r.db")
    strict = Verifier(
        KeyRing(jwks_path),
        replay,
        issuer=ISSUER,
        audience=SITE,
        leeway=timedelta(seconds=30),
        max_lifetime=timedelta(hours=1),
        max_stream_lifetime=timedelta(minutes=5),
    )
    now = int(time.time())
    rejected(strict.verify(make_request(iat=now, exp=now + 7200)), RejectCode.LIFETIME_TOO_LONG)
    rejected(
        strict.verify(make_request("stream", iat=now, exp=now + 600)), RejectCode.LIFETIME_TOO_LONG
    )
    assert isinstance(strict.verify(make_request(iat=now, exp=now + 3600)), Verified)
    replay.close()


@pytest.mark.parametrize("cmd", ["delete", "CLIP", "shell", ""])
def test_unknown_command(verifier: Verifier, cmd: str) -> None:
    rejected(verifier.verify(make_request(cmd)), RejectCode.UNKNOWN_COMMAND)


@pytest.mark.parametrize(
    "changes",
    [
        {"cmd": DROP},
        {"cmd": 5},
        {"case": DROP},
        {"camera": 17},
        {"jti": "not-a-uuid"},
        {"jti": 12345},
        {"iat": "1700000000"},
        {"iat": True},
        {"exp": 1.5e9},
        {"nbf": "soon"},
        {"aud": [SITE]},
        {"iss": DROP},
        {"extra": "claim"},
        {"start": "yesterday"},
        {"start": "2026-01-01T00:10:00Z", "end": "2026-01-01T00:00:00Z"},
        {"upload": {"url": "ftp://x/y"}},
        {"upload": {"url": "https://u:p@host/y"}},
        {"upload": {"url": "https://host/y", "headers": {"Host": "evil"}}},
        {"upload": {"url": "https://host/y", "headers": {"X-A": "a\r\nInjected: 1"}}},
    ],
)
def test_malformed_claims(verifier: Verifier, changes: dict[str, Any]) -> None:
    claims = make_claims("clip")
    for name, value in changes.items():
        if value is DROP:
            del claims[name]
        else:
            claims[name] = value
    result = rejected(verifier.verify(RTCC.sign(claims).encode()), RejectCode.MALFORMED)
    assert result.verified


def test_exp_before_iat_is_malformed(verifier: Verifier) -> None:
    now = int(time.time())
    rejected(verifier.verify(make_request(iat=now, exp=now - 1)), RejectCode.MALFORMED)


@pytest.mark.parametrize(
    ("cmd", "changes"),
    [
        ("stream", {"max_seconds": 0}),
        ("stream", {"relay": {"url": "https://relay/x", "token": "t" * 32}}),
        ("stream", {"relay": {"url": "wss://relay/x", "token": "short"}}),
        ("cancel", {"target": "nope"}),
        ("snapshot", {"at": "2026-01-01T00:00:00"}),
        ("inventory", {"camera": "front-door"}),
    ],
)
def test_malformed_per_command(verifier: Verifier, cmd: str, changes: dict[str, Any]) -> None:
    rejected(verifier.verify(make_request(cmd, **changes)), RejectCode.MALFORMED)


def test_replayed(verifier: Verifier) -> None:
    payload = make_request()
    assert isinstance(verifier.verify(payload), Verified)
    result = rejected(verifier.verify(payload), RejectCode.REPLAYED)
    assert result.jti == jti_of(payload)


def test_replayed_after_restart(tmp_path: Path, jwks_path: Path) -> None:
    payload = make_request()

    def fresh() -> tuple[Verifier, ReplayCache]:
        replay = ReplayCache(tmp_path / "replay.db")
        verifier = Verifier(
            KeyRing(jwks_path), replay, issuer=ISSUER, audience=SITE, leeway=timedelta(seconds=30)
        )
        return verifier, replay

    first, replay = fresh()
    assert isinstance(first.verify(payload), Verified)
    replay.close()
    second, replay = fresh()
    rejected(second.verify(payload), RejectCode.REPLAYED)
    replay.close()


def test_a_rejected_request_does_not_consume_its_id(verifier: Verifier) -> None:
    claims = make_claims(cmd="clip", case=DROP)
    rejected(verifier.verify(RTCC.sign(claims).encode()), RejectCode.MALFORMED)
    claims["case"] = "2026-1"
    assert isinstance(verifier.verify(RTCC.sign(claims).encode()), Verified)


def test_verified_request_is_the_pydantic_model(verifier: Verifier) -> None:
    clip = verifier.verify(make_request("clip"))
    stream = verifier.verify(make_request("stream"))
    assert isinstance(clip, Verified) and isinstance(clip.request, ClipRequest)
    assert isinstance(stream, Verified) and isinstance(stream.request, StreamRequest)


def test_key_rotation_without_restart(verifier: Verifier, jwks_path: Path) -> None:
    newer = RtccTestKey.generate()
    rejected(verifier.verify(make_request(key=newer)), RejectCode.UNKNOWN_KEY)
    RTCC.write_jwks(jwks_path, newer)
    assert isinstance(verifier.verify(make_request(key=newer)), Verified)
    assert isinstance(verifier.verify(make_request()), Verified)


def test_a_broken_rotation_keeps_the_old_keys(verifier: Verifier, jwks_path: Path) -> None:
    jwks_path.write_text("{broken")
    rejected(verifier.verify(make_request(key=RtccTestKey.generate())), RejectCode.UNKNOWN_KEY)
    assert isinstance(verifier.verify(make_request()), Verified)


@pytest.mark.parametrize(
    ("jwks", "problem"),
    [
        ([], "not a JWKS"),
        ({"keys": []}, "no Ed25519"),
        ({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}, "no Ed25519"),
        ({"keys": ["x"]}, "not an object"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}, "32 bytes"),
        ({"keys": [RTCC.public_jwk, RTCC.public_jwk]}, "twice"),
        ({"keys": [{**RTCC.public_jwk, "use": "enc"}]}, "no Ed25519"),
    ],
)
def test_bad_jwks(jwks: Any, problem: str) -> None:
    with pytest.raises(JwksError, match=problem):
        parse_jwks(jwks)


def test_jwks_key_without_kid_is_named_by_its_thumbprint() -> None:
    jwk = {k: v for k, v in RTCC.public_jwk.items() if k != "kid"}
    assert set(parse_jwks({"keys": [jwk]})) == {RTCC.kid}


def test_missing_jwks_file(tmp_path: Path) -> None:
    with pytest.raises(JwksError, match="cannot read"):
        KeyRing(tmp_path / "absent.json")


def test_event_address_is_recovered_only_when_printable(verifier: Verifier) -> None:
    odd = make_claims(jti="a\nb")
    assert rejected(verifier.verify(forged(odd)), RejectCode.BAD_SIGNATURE).jti is None
    long = make_claims(jti="x" * 200)
    assert rejected(verifier.verify(forged(long)), RejectCode.BAD_SIGNATURE).jti is None
    plain = make_claims(jti=str(uuid.uuid4()))
    assert rejected(verifier.verify(forged(plain)), RejectCode.BAD_SIGNATURE).jti == plain["jti"]


def test_padding_variants_are_not_a_jwt(verifier: Verifier) -> None:
    header, claims, signature = make_token().split(".")
    padded = claims + "=" * (-len(claims) % 4 or 4)
    result = verifier.verify(f"{header}.{padded}.{signature}".encode())
    rejected(result, RejectCode.MALFORMED)
    noncanonical = base64.urlsafe_b64encode(b"{}").decode().rstrip("=")[:-1] + "1"
    rejected(verifier.verify(f"{header}.{noncanonical}.{signature}".encode()), RejectCode.MALFORMED)
