"""A broken or hostile enrollment answer is refused as a whole, before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.enroll import EnrollError
from agent.enroll.answer import check_answer
from agent.enroll.csr import build_csr, new_client_key
from agent.enroll.protocol import EnrollResponse
from agent.identity import DeviceKey
from hub.ca import CertificateAuthority
from tests.support.rtcc import RTCC

SITE = "corner-3f9a"


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca", "ca", name="test CA")


def answer_for(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, **changes: Any
) -> EnrollResponse:
    cert = ca.sign_site_csr(build_csr(key), site_id=SITE)
    data: dict[str, Any] = {
        "site_id": SITE,
        "site_name": "Corner Grocery",
        "location": {"lat": 35.08, "lon": -106.65},
        "client_cert": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "ca_cert": ca.cert_pem.decode(),
        "broker_url": "mqtts://broker.rtcc.test:8883",
        "issuer": "https://rtcc.test",
        "jwks": RTCC.jwks(),
    }
    data.update(changes)
    return EnrollResponse.model_validate(data)


def test_a_good_answer_passes(ca: CertificateAuthority) -> None:
    key = new_client_key()
    checked = check_answer(answer_for(ca, key), key)
    assert checked.site_id == SITE
    assert b"BEGIN CERTIFICATE" in checked.client_cert_pem
    assert RTCC.kid in checked.jwks_json


def _other_ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "other", "ca", name="other CA")


Mutation = Callable[[CertificateAuthority, ec.EllipticCurvePrivateKey, Path], dict[str, Any]]


def _cert_for_another_key(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, tmp: Path
) -> dict[str, Any]:
    other = ca.sign_site_csr(build_csr(new_client_key()), site_id=SITE)
    return {"client_cert": other.public_bytes(serialization.Encoding.PEM).decode()}


def _cert_for_another_site(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, tmp: Path
) -> dict[str, Any]:
    other = ca.sign_site_csr(build_csr(key), site_id="someone-else")
    return {"client_cert": other.public_bytes(serialization.Encoding.PEM).decode()}


def _ca_did_not_issue(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, tmp: Path
) -> dict[str, Any]:
    return {"ca_cert": _other_ca(tmp).cert_pem.decode()}


def _leaf_as_ca(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, tmp: Path
) -> dict[str, Any]:
    leaf = ca.issue_client("not-a-ca")
    return {"ca_cert": leaf.cert_pem.decode()}


def _server_cert(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, tmp: Path
) -> dict[str, Any]:
    return {"client_cert": ca.issue_server([SITE]).cert_pem.decode()}


@pytest.mark.parametrize(
    ("mutation", "words"),
    [
        (_cert_for_another_key, "not for the key this device sent"),
        (_cert_for_another_site, "does not name the site"),
        (_ca_did_not_issue, "not issued by the CA"),
        (_leaf_as_ca, "not a CA"),
        (_server_cert, "not for the key"),
        (lambda ca, key, tmp: {"client_cert": "garbage"}, "not a PEM certificate"),
        (lambda ca, key, tmp: {"broker_url": "mqtt://broker:1883"}, "not mqtts://"),
        (lambda ca, key, tmp: {"site_name": "evil\x1b[2J"}, "control characters"),
        (lambda ca, key, tmp: {"issuer": "https://x\x00"}, "issuer"),
        (lambda ca, key, tmp: {"jwks": {"keys": []}}, "no keys"),
        (lambda ca, key, tmp: {"jwks": {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}},
         "not Ed25519"),
        (lambda ca, key, tmp: {"jwks": {"keys": [{**RTCC.public_jwk, "d": "AAAA"}]}},
         "other than public keys"),
        (lambda ca, key, tmp: {"jwks": {"keys": [{**RTCC.public_jwk, "kid": "mine"}]}},
         "not its thumbprint"),
        (lambda ca, key, tmp: {"evidence_hosts": ["*.evil.example"]}, "not a host name"),
        (lambda ca, key, tmp: {"evidence_hosts": ["rtcc.test:443"]}, "not a host name"),
    ],
)  # fmt: skip
def test_bad_answers_are_refused(
    ca: CertificateAuthority, tmp_path: Path, mutation: Mutation, words: str
) -> None:
    key = new_client_key()
    answer = answer_for(ca, key, **mutation(ca, key, tmp_path))
    with pytest.raises(EnrollError, match="not usable") as caught:
        check_answer(answer, key)
    assert words in str(caught.value)
    assert caught.value.code == "bad_answer"


def test_device_key_is_not_the_mqtt_key() -> None:
    """The CSR carries an EC P-256 key of its own, never the Ed25519 device key."""
    from cryptography import x509

    device = DeviceKey.generate()
    key = new_client_key()
    csr = x509.load_pem_x509_csr(build_csr(key).encode())
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    raw = device.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert raw not in csr.public_bytes(serialization.Encoding.DER)


def test_a_cluster_answer_lists_every_node_and_refuses_a_bad_one(
    ca: CertificateAuthority,
) -> None:
    key = new_client_key()
    nodes = ["mqtts://broker.rtcc.test:8883", "mqtts://broker.rtcc.test:8884"]
    checked = check_answer(answer_for(ca, key, broker_urls=nodes), key)
    assert checked.broker_urls == tuple(nodes)
    with pytest.raises(EnrollError, match="not mqtts"):
        check_answer(answer_for(ca, key, broker_urls=[nodes[0], "mqtt://plain:1883"]), key)
