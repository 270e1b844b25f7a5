"""The site's trusted RTCC keys (`KeyRing`) under a pinned trust root: trust sets from the file,
the state copy and the broker; replays and forgeries refused; overlaps that end; file changes
picked up without a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.identity import DeviceKey
from agent.link.trustset import STATE_FILE, TYP
from agent.link.verify import KeyRing

ROOT = DeviceKey.generate()
K1 = DeviceKey.generate()
K2 = DeviceKey.generate()


def signed_set(ver: int, keys: list[dict[str, Any]], *, by: DeviceKey = ROOT, kid: str = "") -> str:
    claims = {"ver": ver, "iat": int(time.time()), "keys": keys}
    headers = {"kid": kid or by.kid, "typ": TYP}
    return jwt.encode(claims, by.private_key, algorithm="EdDSA", headers=headers)


def write_jwks(path: Path, token: str, *, root: DeviceKey = ROOT) -> Path:
    path.write_text(json.dumps({"keys": [], "trust_root": root.public_jwk, "trust_set": token}))
    return path


def ring(tmp_path: Path, token: str, **kwargs: Any) -> KeyRing:
    jwks = write_jwks(tmp_path / "rtcc-jwks.json", token)
    return KeyRing(jwks, state_path=tmp_path / STATE_FILE, **kwargs)


def test_a_newer_set_from_the_broker_revokes_and_is_kept(tmp_path: Path) -> None:
    keys = ring(tmp_path, signed_set(1, [K1.public_jwk, K2.public_jwk]))
    assert keys.version == 1 and keys.get(K1.kid) is not None
    assert keys.offer(signed_set(2, [K2.public_jwk]).encode()) == "applied"
    assert keys.version == 2 and keys.get(K1.kid) is None and keys.get(K2.kid) is not None
    # A restart reads the file (version 1) and the kept copy (version 2): version 2 wins.
    again = KeyRing(tmp_path / "rtcc-jwks.json", state_path=tmp_path / STATE_FILE)
    assert again.version == 2 and again.get(K1.kid) is None


def test_an_older_set_is_a_replay(tmp_path: Path) -> None:
    old = signed_set(1, [K1.public_jwk, K2.public_jwk])
    keys = ring(tmp_path, old)
    keys.offer(signed_set(2, [K2.public_jwk]).encode())
    assert keys.offer(old.encode()) == "older"
    assert keys.offer(signed_set(2, [K2.public_jwk]).encode()) == "same"
    assert keys.get(K1.kid) is None


def test_a_set_signed_by_a_stolen_signing_key_is_refused(tmp_path: Path) -> None:
    keys = ring(tmp_path, signed_set(1, [K1.public_jwk]))
    keys.offer(signed_set(2, [K2.public_jwk]).encode())
    for forged in (
        signed_set(99, [K1.public_jwk], by=K1),  # its own kid
        signed_set(99, [K1.public_jwk], by=K1, kid=ROOT.kid),  # claiming to be the root
    ):
        assert keys.offer(forged.encode()) == "refused"
    assert keys.version == 2 and keys.get(K1.kid) is None


def test_a_rotation_overlap_ends_by_the_site_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    ending = {**K1.public_jwk, "exp": 1_000_060}
    keys = ring(tmp_path, signed_set(1, [K2.public_jwk, ending]), clock=lambda: now[0])
    assert keys.get(K1.kid) is not None
    now[0] = 1_000_060.0
    assert keys.get(K1.kid) is None and keys.get(K2.kid) is not None


def test_file_changes_apply_without_a_restart(tmp_path: Path) -> None:
    keys = ring(tmp_path, signed_set(1, [K1.public_jwk, K2.public_jwk]))
    write_jwks(tmp_path / "rtcc-jwks.json", signed_set(3, [K2.public_jwk]))
    assert keys.get(K1.kid) is None and keys.version == 3
    # An older set put back in the file is a replay too.
    write_jwks(tmp_path / "rtcc-jwks.json", signed_set(2, [K1.public_jwk]))
    assert keys.get(K1.kid) is None and keys.version == 3


def test_a_plain_jwks_drops_a_deleted_key_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "rtcc-jwks.json"
    path.write_text(json.dumps({"keys": [K1.public_jwk, K2.public_jwk]}))
    keys = KeyRing(path)
    assert keys.get(K1.kid) is not None
    path.write_text(json.dumps({"keys": [K2.public_jwk]}))
    assert keys.get(K1.kid) is None and keys.get(K2.kid) is not None
    assert keys.offer(signed_set(5, [K1.public_jwk]).encode()) == "refused"  # no root pinned


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_anything_offered_is_refused_or_applied(payload: bytes) -> None:
    keys = KeyRing.__new__(KeyRing)
    keys.path = Path("/nonexistent")
    keys.state_path = None
    keys._clock = time.time
    keys._stamp = None
    keys._plain = {}
    keys._root = dict(ROOT.public_jwk)
    keys._set = None
    assert keys.offer(payload) == "refused"
