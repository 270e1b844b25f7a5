"""The hub's home: configuration, signing key and JWKS, trusted site keys."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest

from agent.identity import DeviceKey, jwk_thumbprint
from agent.units import parse_duration
from hub.keys import current_trust_set, load_signing_key, root_key_path
from hub.request import build_claims, sign_request
from hub.state import HubHome
from tests.hub.conftest import HubRunner
from tests.support.rtcc import ISSUER


def test_keys_new_writes_a_private_key_and_the_jwks_sites_trust(hub_cli: HubRunner) -> None:
    home = hub_cli.home
    assert stat.S_IMODE(home.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.config_path.stat().st_mode) == 0o600
    jwks = json.loads(home.jwks_path.read_text())
    [public] = jwks["keys"]
    assert "d" not in public and public["kty"] == "OKP" and public["crv"] == "Ed25519"
    assert public["kid"] == jwk_thumbprint(public) == load_signing_key(home).kid
    assert home.load_config().issuer == ISSUER

    shown = hub_cli.run("keys", "show", "--json")
    assert shown.code == 0
    data = json.loads(shown.out)
    assert data["issuer"] == ISSUER and data["kid"] == public["kid"] and data["jwks"] == jwks


def test_a_signed_request_verifies_with_pyjwt_and_the_written_jwks(hub_cli: HubRunner) -> None:
    home = hub_cli.home
    claims = build_claims("inventory", site="site-1", issuer=ISSUER, ttl=parse_duration("10m"))
    token = sign_request(load_signing_key(home), claims)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    keys = jwt.PyJWKSet.from_json(home.jwks_path.read_text())
    verified = jwt.decode(
        token,
        keys[header["kid"]].key,
        algorithms=["EdDSA"],
        audience="site-1",
        issuer=ISSUER,
        options={"require": ["exp", "iat", "jti"]},
    )
    assert verified == claims


def test_second_key_needs_rotate_and_rotation_keeps_the_old_key_for_the_overlap(
    hub_cli: HubRunner,
) -> None:
    old = load_signing_key(hub_cli.home).kid
    again = hub_cli.run("keys", "new")
    assert again.code == 2 and "keys rotate" in again.err and old in again.err
    rotated = hub_cli.run("keys", "new", "--rotate", "--no-publish")
    assert rotated.code == 2  # `new --rotate` takes no rotate options: use `keys rotate`
    rotated = hub_cli.run("keys", "rotate", "--overlap", "1h", "--no-publish")
    assert rotated.code == 0, rotated.err
    assert f"sites accept {old} until" in rotated.out
    new = load_signing_key(hub_cli.home).kid
    assert new != old
    document = json.loads(hub_cli.home.jwks_path.read_text())
    assert [k["kid"] for k in document["keys"]] == [new, old]
    trust_set = current_trust_set(hub_cli.home)
    assert trust_set is not None and trust_set.ver == 2
    ends = {k.kid: k.exp for k in trust_set.keys}
    assert ends[new] is None
    old_end = ends[old]
    assert old_end is not None and 3500 <= old_end - time.time() <= 3600


def test_keys_new_needs_an_issuer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = HubRunner(HubHome(tmp_path / "h"), capsys)
    result = runner.run("keys", "new")
    assert result.code == 2 and "--issuer" in result.err
    assert not (tmp_path / "h" / "signing.key").exists()


def test_sites_trust_accepts_text_file_and_keys_show_output(
    hub_cli: HubRunner, tmp_path: Path
) -> None:
    device = DeviceKey.generate()
    as_text = json.dumps(device.public_jwk)
    assert hub_cli.run("sites", "trust", "site-1", as_text).code == 0
    path = tmp_path / "jwk.json"
    path.write_text(json.dumps({"site": "site-2", "kid": device.kid, "jwk": device.public_jwk}))
    assert hub_cli.run("sites", "trust", "site-2", str(path)).code == 0
    trusted = hub_cli.home.trusted_sites()
    assert trusted["site-1"].kid == trusted["site-2"].kid == device.kid
    assert trusted["site-1"].jwk["x"] == device.public_jwk["x"]


@pytest.mark.parametrize(
    ("site", "jwk", "message"),
    [
        ("Bad Site", None, "site id"),
        ("site-1", {"kty": "RSA", "n": "x", "e": "AQAB"}, "Ed25519"),
        ("site-1", {"kty": "OKP", "crv": "Ed25519", "x": "short"}, "Ed25519"),
        ("site-1", "private", "private key"),
        ("site-1", "wrong-kid", "thumbprint"),
        ("site-1", "[1, 2]", "JSON object"),
        ("site-1", "{not json", "not valid JSON"),
        ("site-1", "/no/such/file", "not JSON and not a readable file"),
    ],
)
def test_sites_trust_refuses_what_is_not_a_public_ed25519_key(
    hub_cli: HubRunner, site: str, jwk: object, message: str
) -> None:
    device = DeviceKey.generate()
    if jwk == "private":
        jwk = {**device.public_jwk, "d": "c2VjcmV0"}
    elif jwk == "wrong-kid":
        jwk = {**device.public_jwk, "kid": "not-the-thumbprint"}
    argument = jwk if isinstance(jwk, str) else json.dumps(jwk or device.public_jwk)
    result = hub_cli.run("sites", "trust", site, argument)
    assert result.code == 2
    assert message in result.err
    assert not hub_cli.home.sites_path.exists()


def test_init_validates_its_arguments(hub_cli: HubRunner, tmp_path: Path) -> None:
    cases = [
        (["--broker", "http://x"], "give --cert"),
        (["--broker", "mqtts://h", "--cert", "c"], "--cert and --key go together"),
        (["--broker", "mqtts://h", "--username", "u"], "--username and --password-file"),
        (["--broker", "ftp://h", "--username", "u", "--password-file", __file__], "mqtts://"),
        (
            ["--broker", "mqtt://example.org", "--username", "u", "--password-file", __file__],
            "localhost",
        ),
        (["--broker", "mqtts://h", "--cert", "/nope", "--key", "/nope"], "no such file"),
    ]
    before = hub_cli.home.config_path.read_text()
    for argv, message in cases:
        result = hub_cli.run("init", *argv)
        assert result.code == 2 and message in result.err, (argv, result.err)
    assert hub_cli.home.config_path.read_text() == before


def test_password_login_is_kept_in_a_private_config(hub_cli: HubRunner, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text('s3cret "quoted"\n')
    result = hub_cli.run(
        "init",
        "--broker",
        "mqtts://broker.example:8883",
        "--username",
        "hub",
        "--password-file",
        str(secret),
    )
    assert result.code == 0
    config = hub_cli.home.load_config()
    assert config.broker is not None and config.broker.password is not None
    assert config.broker.password.get_secret_value() == 's3cret "quoted"'
    assert config.issuer == ISSUER  # kept from `keys new`
    assert stat.S_IMODE(hub_cli.home.config_path.stat().st_mode) == 0o600


def test_a_broken_config_file_is_reported_not_crashed_on(hub_cli: HubRunner) -> None:
    hub_cli.home.config_path.write_text("issuer = 'x'\n[broker]\nurl = 'mqtts://h'\nbogus = 1\n")
    result = hub_cli.run("watch")
    assert result.code == 2 and "bogus" in result.err
    hub_cli.home.config_path.write_text("not toml = = =")
    result = hub_cli.run("watch")
    assert result.code == 2 and "hub.toml" in result.err


def test_no_broker_configured_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = HubRunner(HubHome(tmp_path / "h"), capsys)
    result = runner.run("sites")
    assert result.code == 2 and "rtcc-hub init" in result.err


def test_revoke_and_an_offline_root_key(hub_cli: HubRunner, tmp_path: Path) -> None:
    first = load_signing_key(hub_cli.home).kid
    assert hub_cli.run("keys", "rotate", "--overlap", "2h", "--no-publish").code == 0
    second = load_signing_key(hub_cli.home).kid
    refused = hub_cli.run("keys", "revoke", "--no-publish", "--", second)
    assert refused.code == 2 and "keys rotate --overlap 0" in refused.err
    unknown = hub_cli.run("keys", "revoke", "--no-publish", "--", "not-a-key")
    assert unknown.code == 2 and "no key not-a-key in the trust set (version 2)" in unknown.err
    # The operator moves the root key offline: commands that sign a set need it back.
    offline = tmp_path / "usb" / "trust-root.key"
    offline.parent.mkdir()
    root_key_path(hub_cli.home).replace(offline)
    missing = hub_cli.run("keys", "revoke", "--no-publish", "--", first)
    assert missing.code == 2 and "--root-key PATH" in missing.err
    wrong = tmp_path / "other.key"
    DeviceKey.load_or_create(wrong)
    mismatch = hub_cli.run("keys", "revoke", "--no-publish", "--root-key", str(wrong), "--", first)
    assert mismatch.code == 2 and "not the trust root sites pinned" in mismatch.err
    done = hub_cli.run("keys", "revoke", "--no-publish", "--root-key", str(offline), "--", first)
    assert done.code == 0, done.err
    assert f"revoked {first}: trust set version 3 lists {second}" in done.out
    # Rotation without overlap revokes the old key at once.
    rotated = hub_cli.run(
        "keys", "rotate", "--overlap", "0", "--no-publish", "--root-key", str(offline)
    )
    assert rotated.code == 0 and f"{second} is revoked" in rotated.out
    trust_set = current_trust_set(hub_cli.home)
    assert trust_set is not None and trust_set.ver == 4
    assert trust_set.kids() == [load_signing_key(hub_cli.home).kid]
    shown = hub_cli.run("keys", "show")
    assert "version 4" in shown.out and "signs now" in shown.out
