"""Every site message is judged against the site's registered device key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.identity import DeviceKey
from hub.state import TrustedSite
from hub.trust import Verdict, check_message

KEY = DeviceKey.generate()
SITES = {"site-1": TrustedSite(jwk=KEY.public_jwk, kid=KEY.kid, added=datetime.now(UTC))}
EVT = "rtcc/v1/sites/site-1/evt"
EVENT = {"iss": "site-1", "iat": 1, "req": "r-1", "state": "accepted", "seq": 1}


def test_a_genuine_event_is_verified() -> None:
    checked = check_message(EVT, KEY.sign(EVENT).encode(), SITES)
    assert checked.verdict is Verdict.VERIFIED and checked.ok
    assert checked.claims is not None and checked.claims["req"] == "r-1"
    assert checked.site == "site-1" and checked.kind == "evt"


@pytest.mark.parametrize(
    ("topic", "payload", "verdict", "reason"),
    [
        (EVT, DeviceKey.generate().sign(EVENT).encode(), Verdict.FORGED, "kid"),
        (EVT, b"not a token", Verdict.MALFORMED, "not a JWS"),
        (EVT, b"\xff\xfe", Verdict.MALFORMED, "not a JWS"),
        (EVT, KEY.sign({**EVENT, "iss": "site-2"}).encode(), Verdict.MALFORMED, "iss"),
        (EVT, KEY.sign({**EVENT, "seq": 0}).encode(), Verdict.MALFORMED, "seq"),
        (EVT, KEY.sign({**EVENT, "state": "rejected"}).encode(), Verdict.MALFORMED, "code"),
        ("rtcc/v1/sites/site-9/evt", KEY.sign(EVENT).encode(), Verdict.UNTRUSTED, "site-9"),
        ("rtcc/v1/sites/site-1/req", KEY.sign(EVENT).encode(), Verdict.MALFORMED, "not a site"),
        ("elsewhere", b"", Verdict.MALFORMED, "not a site"),
    ],
)
def test_everything_else_is_flagged(
    topic: str, payload: bytes, verdict: Verdict, reason: str
) -> None:
    checked = check_message(topic, payload, SITES)
    assert checked.verdict is verdict and reason in checked.reason
    assert checked.claims is None and checked.model is None


def test_same_kid_different_key_is_forged() -> None:
    impostor = DeviceKey.generate()
    import jwt

    token = jwt.encode(EVENT, impostor.private_key, algorithm="EdDSA", headers={"kid": KEY.kid})
    checked = check_message(EVT, token.encode(), SITES)
    assert checked.verdict is Verdict.FORGED and "signature" in checked.reason


def test_alg_none_is_forged() -> None:
    import base64
    import json

    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    token = f"{seg({'alg': 'none', 'kid': KEY.kid})}.{seg(EVENT)}."
    assert check_message(EVT, token.encode(), SITES).verdict is Verdict.FORGED
