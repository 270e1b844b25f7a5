"""Hostile input to `POST /enroll` and `/enroll/check` on a real `rtcc-hub serve`: every bad
body gets a 4xx with a JSON reason, the server keeps serving, and no token is spent by a
request the hub refused."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.enroll.csr import build_csr, new_client_key
from agent.enroll.protocol import PROOF_TYP, ProofClaims, sha256_hex
from agent.identity import DeviceKey
from hub.tokens import TokenStore
from tests.support.hub_enroll import EnrollHub, HubThread


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnrollHub]:
    with HubThread(tmp_path_factory.mktemp("enroll-inputs")) as running:
        yield running


def post(hub: EnrollHub, path: str, body: bytes) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(hub.ca_file))
    request = urllib.request.Request(
        hub.url + path, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def valid_body(
    token: str, *, key: DeviceKey | None = None, changes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A well-formed request; `changes` replace fields before the proof is made over them."""
    device = key or DeviceKey.generate()
    body: dict[str, Any] = {
        "token": token,
        "csr": build_csr(new_client_key()),
        "device_jwk": device.public_jwk,
        **(changes or {}),
    }
    if "proof" not in (changes or {}):
        claims = ProofClaims(
            token_sha256=sha256_hex(str(body["token"])),
            csr_sha256=sha256_hex(str(body["csr"])),
            iat=int(time.time()),
        )
        body["proof"] = device.sign(claims.model_dump(), typ=PROOF_TYP)
    return body


def unspent(hub: EnrollHub) -> bool:
    return all(record.used_at is None for record in TokenStore(hub.home).records())


def test_check_does_not_spend(hub: EnrollHub) -> None:
    token = hub.token("Check Me")
    status, answer = post(hub, "/enroll/check", json.dumps({"token": token}).encode())
    assert status == 200
    assert answer["site_name"] == "Check Me"
    assert unspent(hub)
    status, answer = post(hub, "/enroll/check", json.dumps({"token": "rtcc1_" + "B" * 43}).encode())
    assert (status, answer["error"]) == (403, "unknown_token")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"},
         400, "bad_csr"),
        ({"device_jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}, 400, "bad_device_key"),
        ({"device_jwk": {"kty": "RSA", "n": "x", "e": "AQAB"}}, 400, "bad_device_key"),
        ({"proof": "not.a.jws"}, 400, "bad_proof"),
        ({"extra": 1}, 400, "malformed"),
        ({"token": 5}, 400, "malformed"),
    ],
)  # fmt: skip
def test_bad_fields(hub: EnrollHub, change: dict[str, Any], status: int, code: str) -> None:
    body = valid_body(hub.token(), changes=change)
    got, answer = post(hub, "/enroll", json.dumps(body).encode())
    assert (got, answer["error"]) == (status, code), answer
    assert answer["message"]
    assert unspent(hub)


def test_private_device_key_refused(hub: EnrollHub) -> None:
    device = DeviceKey.generate()
    body = valid_body(hub.token(), key=device)
    body["device_jwk"] = {**device.public_jwk, "d": "secret"}
    status, answer = post(hub, "/enroll", json.dumps(body).encode())
    assert (status, answer["error"]) == (400, "bad_device_key")
    assert unspent(hub)


def test_proof_by_another_key_refused(hub: EnrollHub) -> None:
    """A device cannot register a key it does not hold (e.g. another site's public key)."""
    token = hub.token()
    body = valid_body(token)
    body["device_jwk"] = DeviceKey.generate().public_jwk
    status, answer = post(hub, "/enroll", json.dumps(body).encode())
    assert (status, answer["error"]) == (400, "bad_proof")
    assert unspent(hub)


def test_proof_for_another_token_or_csr_refused(hub: EnrollHub) -> None:
    token = hub.token()
    body = valid_body(token)
    body["csr"] = build_csr(new_client_key())
    status, answer = post(hub, "/enroll", json.dumps(body).encode())
    assert (status, answer["error"]) == (400, "bad_proof")
    stale = valid_body(hub.token())
    device = DeviceKey.generate()
    claims = ProofClaims(
        token_sha256=sha256_hex(stale["token"]),
        csr_sha256=sha256_hex(stale["csr"]),
        iat=int(time.time()) - 3600,
    )
    stale["device_jwk"] = device.public_jwk
    stale["proof"] = device.sign(claims.model_dump(), typ=PROOF_TYP)
    status, answer = post(hub, "/enroll", json.dumps(stale).encode())
    assert (status, answer["error"]) == (400, "bad_proof")
    assert "fresh" in answer["message"]
    assert unspent(hub)


def test_weak_csr_key_refused(hub: EnrollHub) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub")]))
        .sign(weak, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    token = hub.token()
    device = DeviceKey.generate()
    claims = ProofClaims(
        token_sha256=sha256_hex(token), csr_sha256=sha256_hex(csr), iat=int(time.time())
    )
    body = {
        "token": token,
        "csr": csr,
        "device_jwk": device.public_jwk,
        "proof": device.sign(claims.model_dump(), typ=PROOF_TYP),
    }
    status, answer = post(hub, "/enroll", json.dumps(body).encode())
    assert (status, answer["error"]) == (400, "bad_csr")
    assert "2048" in answer["message"]
    assert unspent(hub)


def test_oversized_body_refused(hub: EnrollHub) -> None:
    status, answer = post(hub, "/enroll", b'{"token": "' + b"A" * 100_000 + b'"}')
    assert (status, answer["error"]) == (413, "too_large")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"token": st.text(max_size=60), "csr": st.text(max_size=60)},
            optional={"device_jwk": json_values, "proof": st.text(max_size=60)},
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_fuzzed_bodies_refused(hub: EnrollHub, body: bytes) -> None:
    for path in ("/enroll", "/enroll/check"):
        status, answer = post(hub, path, body)
        assert status in (400, 403), (status, answer)
        assert isinstance(answer["message"], str) and answer["message"]
    assert unspent(hub)
