"""The hub's request-signing key (Ed25519) and the JWKS that sites trust (DESIGN §4.2)."""

from __future__ import annotations

import json
from typing import Any

from agent.identity import DeviceKey, DeviceKeyError
from hub.state import HubHome, HubStateError, write_atomic


class HubKeyError(Exception):
    """No signing key, or one that cannot be used."""


def load_signing_key(home: HubHome) -> DeviceKey:
    if not home.key_path.exists():
        raise HubKeyError(f"no signing key in {home.root}: run `rtcc-hub keys new --issuer URL`")
    try:
        return DeviceKey.load(home.key_path)
    except DeviceKeyError as exc:
        raise HubKeyError(str(exc)) from exc


def read_jwks(home: HubHome) -> dict[str, Any]:
    try:
        data = json.loads(home.jwks_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"keys": []}
    except (OSError, ValueError) as exc:
        raise HubStateError(f"{home.jwks_path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise HubStateError(f"{home.jwks_path}: not a JWKS (no keys list)")
    return data


def new_signing_key(home: HubHome, *, rotate: bool = False) -> DeviceKey:
    """Make the signing key and write `jwks.json` with its public half first.

    An existing key is kept unless `rotate`; then the new key signs from now on and the old
    public keys stay in the JWKS so sites still accept requests already sent."""
    if home.key_path.exists():
        if not rotate:
            current = load_signing_key(home)
            raise HubKeyError(
                f"a signing key exists (kid {current.kid}); use --rotate to make a new one"
            )
        previous = read_jwks(home)["keys"]
        retired = home.key_path.with_name(f"signing.{load_signing_key(home).kid}.key.retired")
        home.key_path.replace(retired)
    else:
        previous = []
    key = DeviceKey.load_or_create(home.key_path)
    keys = [key.public_jwk, *(k for k in previous if k.get("kid") != key.kid)]
    write_atomic(home.jwks_path, json.dumps({"keys": keys}, indent=2) + "\n")
    return key
