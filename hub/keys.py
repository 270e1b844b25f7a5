"""The hub's request-signing key (Ed25519), the root key that signs the trust set, and the JWKS
file sites trust (DESIGN §4.2; `agent.link.trustset` says what a trust set is).

- `keys new` makes the signing key and, once, the **trust root** (`trust-root.key`): it signs
  nothing but trust sets, so it can live offline (move it to removable media and give
  `--root-key PATH` when rotating or revoking). Sites pin its public half at enrollment.
- `keys rotate --overlap 1h` makes a new signing key; the old one stays trusted until the end of
  the overlap (its `exp` in the set, enforced by each site's clock), then is refused.
- `keys revoke KID` drops a key from the set at once.
Each change writes a trust set with the next version into `jwks.json` (`keys` for agents that
predate trust sets, `trust_root`, `trust_set`) and publishes it, retained, on `rtcc/v1/trust`.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt

from agent.identity import DeviceKey, DeviceKeyError, jwk_thumbprint
from agent.link.trustset import TYP, TrustSet, TrustSetError, verify_trust_set
from agent.wire import TRUST_TOPIC
from hub.state import BrokerConfig, HubHome, HubStateError, write_atomic

ROOT_KEY_FILE = "trust-root.key"
DEFAULT_OVERLAP = timedelta(hours=24)
_NO_SET = (
    "there is no trust set yet: `rtcc-hub keys new` makes one (`keys rotate` on a hub whose "
    "signing key predates trust sets)"
)


class HubKeyError(Exception):
    """No signing key, or one that cannot be used."""


def root_key_path(home: HubHome) -> Path:
    return home.root / ROOT_KEY_FILE


def load_signing_key(home: HubHome) -> DeviceKey:
    if not home.key_path.exists():
        raise HubKeyError(f"no signing key in {home.root}: run `rtcc-hub keys new --issuer URL`")
    try:
        return DeviceKey.load(home.key_path)
    except DeviceKeyError as exc:
        raise HubKeyError(str(exc)) from exc


def load_root_key(home: HubHome, path: Path | None = None) -> DeviceKey:
    path = path or root_key_path(home)
    if not path.exists():
        raise HubKeyError(
            f"the trust root key is not at {path}: give --root-key PATH (its offline copy)"
        )
    try:
        key = DeviceKey.load(path)
    except DeviceKeyError as exc:
        raise HubKeyError(str(exc)) from exc
    pinned = read_jwks(home).get("trust_root")
    if isinstance(pinned, dict) and pinned.get("kid") not in (None, key.kid):
        raise HubKeyError(
            f"{path} is not the trust root sites pinned (kid {pinned.get('kid')}, not {key.kid})"
        )
    return key


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


def current_trust_set(home: HubHome) -> TrustSet | None:
    """The set in `jwks.json`, checked against its root (None before the first one)."""
    data = read_jwks(home)
    root, token = data.get("trust_root"), data.get("trust_set")
    if root is None or token is None:
        return None
    if not isinstance(root, dict) or not isinstance(token, str):
        raise HubStateError(f"{home.jwks_path}: trust_root / trust_set are not valid")
    try:
        return verify_trust_set(token, root)
    except TrustSetError as exc:
        raise HubStateError(f"{home.jwks_path}: {exc}") from exc


def trust_set_token(home: HubHome) -> str | None:
    token = read_jwks(home).get("trust_set")
    return token if isinstance(token, str) else None


def _issue(home: HubHome, root: DeviceKey, keys: list[dict[str, Any]]) -> TrustSet:
    """Sign `keys` as the next version and write `jwks.json`."""
    keys = [{**key, "kid": key.get("kid") or jwk_thumbprint(key)} for key in keys]
    current = current_trust_set(home)
    claims = {"ver": (current.ver if current else 0) + 1, "iat": int(time.time()), "keys": keys}
    token = jwt.encode(
        claims, root.private_key, algorithm="EdDSA", headers={"kid": root.kid, "typ": TYP}
    )
    trust_set = verify_trust_set(token, root.public_jwk)  # what every site will check
    plain = [{k: v for k, v in key.items() if k != "exp"} for key in keys]
    document = {"keys": plain, "trust_root": root.public_jwk, "trust_set": token}
    write_atomic(home.jwks_path, json.dumps(document, indent=2) + "\n")
    return trust_set


def _in_force(trust_set: TrustSet | None, now: int) -> list[dict[str, Any]]:
    if trust_set is None:
        return []
    return [
        key.model_dump(exclude_none=True)
        for key in trust_set.keys
        if key.exp is None or key.exp > now
    ]


def new_signing_key(
    home: HubHome,
    *,
    rotate: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
    root_key: Path | None = None,
) -> DeviceKey:
    """Make the signing key and write `jwks.json` with the trust set that lists it.

    An existing key is kept unless `rotate`; then the new key signs from now on and the old one
    stays trusted for `overlap` (requests already sent still count), then sites refuse it."""
    now = int(time.time())
    if home.key_path.exists():
        if not rotate:
            current = load_signing_key(home)
            raise HubKeyError(
                f"a signing key exists (kid {current.kid}); use `rtcc-hub keys rotate` to "
                "make a new one"
            )
        old = load_signing_key(home)
        existing = current_trust_set(home)
        root = load_root_key(home, root_key) if existing else _root_for_first_set(home, root_key)
        ending = now + int(overlap.total_seconds())
        keys: list[dict[str, Any]] = []
        if overlap.total_seconds() > 0:
            # Every key but the new one ends with the overlap (or earlier, if it already did);
            # with no overlap none of them stays.
            previous = _in_force(existing, now) if existing else read_jwks(home)["keys"]
            keys = [{**jwk, "exp": min(jwk.get("exp", ending), ending)} for jwk in previous]
        retired = home.key_path.with_name(f"signing.{old.kid}.key.retired")
        home.key_path.replace(retired)
    else:
        root = _root_for_first_set(home, root_key)
        keys = []
    key = DeviceKey.load_or_create(home.key_path)
    _issue(home, root, [key.public_jwk, *(k for k in keys if k.get("kid") != key.kid)])
    return key


def _root_for_first_set(home: HubHome, path: Path | None) -> DeviceKey:
    if path is not None:
        return load_root_key(home, path)
    return DeviceKey.load_or_create(root_key_path(home))


def revoke_key(home: HubHome, kid: str, *, root_key: Path | None = None) -> TrustSet:
    """Drop `kid` from the trust set now (HubKeyError if it is not there or signs now)."""
    current = current_trust_set(home)
    if current is None:
        raise HubKeyError(_NO_SET)
    signing = load_signing_key(home)
    if kid == signing.kid:
        raise HubKeyError(
            f"{kid} is the key that signs now: `rtcc-hub keys rotate --overlap 0` replaces it "
            "and revokes it at once"
        )
    now = int(time.time())
    keys = _in_force(current, now)
    if kid not in current.kids():
        raise HubKeyError(f"no key {kid} in the trust set (version {current.ver})")
    root = load_root_key(home, root_key)
    return _issue(home, root, [k for k in keys if k.get("kid") != kid])


async def publish_trust_set(home: HubHome, broker: BrokerConfig) -> int:
    """Publish the current set, retained, on the trust topic; its version."""
    from hub.mqtt import hub_client  # the CLI's other key commands need no broker library

    token = trust_set_token(home)
    current = current_trust_set(home)
    if token is None or current is None:
        raise HubKeyError(_NO_SET)
    async with hub_client(broker) as client:
        await client.publish(TRUST_TOPIC, token.encode("ascii"), qos=1, retain=True)
    return current.ver
