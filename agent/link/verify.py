"""Verification of a request JWT against the RTCC's JWKS (DESIGN §4.2, §6).

The checks run in this order, and the first failure is the code (so each crafted bad request
gets exactly one, predictable code; nothing from the claims is trusted before the signature):

1. size over `MAX_REQUEST_BYTES` → `malformed`, before any parsing;
2. structure: ASCII, three base64url parts (header and claims canonical, without padding),
   header and claims JSON objects without duplicate members and with all their text valid
   Unicode (no lone UTF-16 surrogate such as `\\ud83d`: `agent.wire.strict_json`). Not even
   a JWT → `malformed`, *unparseable*: no event, since there is nothing to address it to.
   From here on the claims' `jti` (unverified, only as the address of the rejection event) is
   known if it is a short printable string;
3. header: `crit` or `b64` present → `malformed` (extensions we do not implement);
   `alg` not exactly `EdDSA` → `bad_algorithm` (none, HS*, RS*, ES*, PS*, missing: the HS256
   key-confusion attack never reaches a key); keys named by `jku`/`jwk`/`x5u` are ignored;
4. `kid` not among the RTCC's keys in force → `unknown_key` (`KeyRing`: the JWKS file, re-read
   whenever it changes, or the highest trust set signed by the pinned root; a key revoked or
   past its rotation overlap is refused like an unknown one);
5. the Ed25519 signature (PyJWT's EdDSA algorithm over the exact header and claims text;
   a signature part that is not canonical base64url) → `bad_signature`;
6. registered claims: `iss`, `aud`, `jti` strings, `iat`, `exp` (and `nbf` if present) integers,
   `exp` after `iat` → `malformed`;
7. `iss` ≠ the configured issuer → `wrong_issuer`; `aud` ≠ the site id → `wrong_audience`;
8. `iat` or `nbf` later than now + leeway → `not_yet_valid`; now ≥ `exp` + leeway → `expired`;
9. `cmd` missing or not a string → `malformed`; not a known command → `unknown_command`;
10. `exp - iat` over the cap → `lifetime_too_long`: `stream` 15 min, every other command 7 days
    (the protocol maxima), each lowered by `policy.max_*_request_lifetime`;
11. the claims against the command's pydantic model → `malformed`;
12. `jti` already seen (persisted cache, kept until `exp` + leeway) → `replayed`; otherwise it
    is recorded now. Only requests that pass every check consume their jti.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import get_default_algorithms
from pydantic import ValidationError

from agent.config import AgentConfig
from agent.identity.jwk import jwk_thumbprint, public_key_from_jwk
from agent.link.replay import ReplayCache
from agent.link.trustset import STATE_FILE as TRUST_STATE_FILE
from agent.link.trustset import (
    TrustSet,
    TrustSetError,
    keys_in_force,
    read_state,
    root_kid,
    verify_trust_set,
    write_state,
)
from agent.log import get_logger
from agent.wire import MAX_REQUEST_BYTES, RejectCode, Request, parse_request_claims
from agent.wire.requests import COMMANDS
from agent.wire.strict_json import loads_strict

log = get_logger(__name__)

PROTOCOL_MAX_STREAM_LIFETIME = timedelta(minutes=15)
PROTOCOL_MAX_LIFETIME = timedelta(days=7)
_ALGORITHM = "EdDSA"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_JTI = 128
_MAX_SHOWN = 60


class JwksError(Exception):
    """The trusted JWKS file is missing, unreadable, or holds no usable Ed25519 key."""


def parse_jwks(obj: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWKS, by kid (the RFC 7638 thumbprint when unnamed)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("keys"), list):
        raise JwksError('not a JWKS (expected {"keys": [...]})')
    keys: dict[str, Ed25519PublicKey] = {}
    for index, jwk in enumerate(obj["keys"]):
        if not isinstance(jwk, dict):
            raise JwksError(f"keys[{index}] is not an object")
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            log.warning("jwks_key_skipped", index=index, reason="not an Ed25519 key")
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", _ALGORITHM) != _ALGORITHM:
            log.warning("jwks_key_skipped", index=index, reason="not an EdDSA signing key")
            continue
        try:
            key = public_key_from_jwk(jwk)
            kid = jwk.get("kid") or jwk_thumbprint(jwk)
        except (ValueError, binascii.Error) as exc:
            raise JwksError(f"keys[{index}]: {exc}") from exc
        if not isinstance(kid, str):
            raise JwksError(f"keys[{index}]: kid is not a string")
        if kid in keys:
            raise JwksError(f"kid {kid!r} appears twice")
        keys[kid] = key
    if not keys:
        raise JwksError("the JWKS holds no Ed25519 signing key")
    return keys


class KeyRing:
    """The RTCC's request-signing keys, from `rtcc.jwks_file`.

    Without a pinned trust root (a JWKS from an older hub) they are the file's `keys`. With one
    (`trust_root` in the file, written at enrollment) they are the keys of the highest-version
    trust set signed by that root (`agent.link.trustset`): the file's `trust_set`, the copy kept
    in the state directory, or one offered from the broker (`offer`). A lower version is refused
    (a replay), a set the root did not sign is refused (a forgery, e.g. by a stolen signing key),
    and a key past its `exp` is refused by this machine's clock. The file is re-read whenever it
    changes, so removing a key needs no restart.
    """

    def __init__(
        self,
        path: Path,
        *,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.state_path = state_path
        self._clock = clock
        self._stamp: tuple[int, int] | None = None
        self._plain: dict[str, Ed25519PublicKey] = {}
        self._root: dict[str, Any] | None = None
        self._set: TrustSet | None = None
        self._load()

    def _adopt_kept(self) -> None:
        """The highest set seen before the restart, if newer than the file's."""
        if self._root is None or self.state_path is None:
            return
        kept = read_state(self.state_path)
        if kept:
            try:
                self._consider(verify_trust_set(kept, self._root), kept, source="state")
            except TrustSetError as exc:
                log.warning("trust_set_state_ignored", path=str(self.state_path), error=str(exc))

    @property
    def version(self) -> int | None:
        """The trust set version in force (None without a pinned trust root)."""
        return self._set.ver if self._set is not None else None

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _load(self) -> None:
        stamp = self._current_stamp()
        try:
            obj = json.loads(self.path.read_bytes())
        except OSError as exc:
            raise JwksError(f"cannot read the RTCC JWKS {self.path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise JwksError(f"the RTCC JWKS {self.path} is not JSON: {exc}") from exc
        root = obj.get("trust_root") if isinstance(obj, dict) else None
        if root is None:
            try:
                self._plain = parse_jwks(obj)
            except JwksError as exc:
                raise JwksError(f"the RTCC JWKS {self.path}: {exc}") from exc
            self._root = None
            self._stamp = stamp
            return
        token = obj.get("trust_set")
        if not isinstance(root, dict) or not isinstance(token, str):
            raise JwksError(
                f"the RTCC JWKS {self.path} names a trust root but holds no signed trust set"
            )
        try:
            trust_set = verify_trust_set(token, root)
        except (TrustSetError, ValueError, binascii.Error) as exc:
            raise JwksError(f"the RTCC JWKS {self.path}: its trust set: {exc}") from exc
        if self._root is not None and root_kid(root) != root_kid(self._root):
            self._set = None  # another root: the site was enrolled again; start from its set
        self._root = dict(root)
        self._stamp = stamp
        if self._set is None:
            self._adopt_kept()  # before the file's set, which may be older than the kept one
        self._consider(trust_set, token, source="file")

    def _consider(self, trust_set: TrustSet, token: str, *, source: str) -> str:
        current = self._set.ver if self._set is not None else 0
        if trust_set.ver < current:
            log.warning("trust_set_replayed", version=trust_set.ver, current=current, source=source)
            return "older"
        if trust_set.ver == current:
            return "same"
        self._set = trust_set
        log.info("trust_set_applied", version=trust_set.ver, keys=trust_set.kids(), source=source)
        if self.state_path is not None and source != "state":
            try:
                write_state(self.state_path, token)
            except OSError as exc:
                log.error("trust_set_not_kept", path=str(self.state_path), error=exc.strerror)
        return "applied"

    def offer(self, payload: bytes) -> str:
        """A trust set from the broker: `applied`, `same`, `older` (a replay) or `refused`."""
        if self._root is None:
            log.warning("trust_set_ignored", reason="no trust root pinned in the JWKS file")
            return "refused"
        try:
            trust_set = verify_trust_set(payload, self._root)
        except TrustSetError as exc:
            log.error("trust_set_refused", error=str(exc), bytes=len(payload))
            return "refused"
        return self._consider(trust_set, payload.decode("ascii"), source="broker")

    def _refresh(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        try:
            self._load()
            log.info("jwks_reloaded", path=str(self.path), version=self.version)
        except JwksError as exc:
            self._stamp = stamp  # say it once per change, keep the keys in force
            log.error("jwks_reload_failed", error=str(exc))

    def get(self, kid: str) -> Ed25519PublicKey | None:
        self._refresh()
        if self._root is None:
            return self._plain.get(kid)
        if self._set is None:
            return None
        return keys_in_force(self._set, self._clock()).get(kid)

    def describe(self) -> str:
        """Where the keys come from, for a rejection message."""
        if self._set is None:
            return "the RTCC JWKS"
        return f"the RTCC's trust set (version {self._set.ver})"


@dataclass(frozen=True)
class Verified:
    request: Request
    kid: str
    size: int


@dataclass(frozen=True)
class Rejection:
    """Why a payload was refused, and what could be recovered to address and record it."""

    code: RejectCode
    message: str
    size: int
    parseable: bool = True
    verified: bool = False
    jti: str | None = None
    kid: str | None = None
    issuer: str | None = None
    cmd: str | None = None
    camera: str | None = None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _segment(segment: str) -> bytes | None:
    """The bytes of a base64url segment; None if it is not canonical unpadded base64url."""
    if _B64URL.fullmatch(segment) is None or len(segment) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        return None
    return raw


def _json_object(segment: str, what: str) -> dict[str, Any]:
    raw = _segment(segment)
    if raw is None:
        raise ValueError(f"{what} is not base64url")
    try:
        obj = loads_strict(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    return obj


def _address(claims: Mapping[str, Any]) -> str | None:
    jti = claims.get("jti")
    if isinstance(jti, str) and 0 < len(jti) <= _MAX_JTI and jti.isprintable():
        return jti
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _envelope_problem(claims: Mapping[str, Any]) -> str | None:
    for name in ("iss", "aud", "jti"):
        if not isinstance(claims.get(name), str):
            return f"claim {name} must be a string"
    for name in ("iat", "exp"):
        if not _is_int(claims.get(name)):
            return f"claim {name} must be an integer (seconds since the epoch)"
    if "nbf" in claims and not _is_int(claims["nbf"]):
        return "claim nbf must be an integer (seconds since the epoch)"
    if claims["exp"] <= claims["iat"]:
        return "exp must be after iat"
    return None


class Verifier:
    def __init__(
        self,
        keys: KeyRing,
        replay: ReplayCache,
        *,
        issuer: str,
        audience: str,
        leeway: timedelta,
        max_lifetime: timedelta = PROTOCOL_MAX_LIFETIME,
        max_stream_lifetime: timedelta = PROTOCOL_MAX_STREAM_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.replay = replay
        self.issuer = issuer
        self.audience = audience
        self._leeway = leeway.total_seconds()
        self._max_lifetime = min(max_lifetime, PROTOCOL_MAX_LIFETIME).total_seconds()
        self._max_stream = min(max_stream_lifetime, PROTOCOL_MAX_STREAM_LIFETIME).total_seconds()
        self._clock = clock
        self._eddsa = get_default_algorithms()[_ALGORITHM]

    @classmethod
    def from_config(
        cls, config: AgentConfig, replay: ReplayCache, *, clock: Callable[[], float] = time.time
    ) -> Verifier:
        if config.rtcc.issuer is None or config.rtcc.jwks_file is None:
            raise JwksError("rtcc.issuer and rtcc.jwks_file must be set to verify requests")
        return cls(
            KeyRing(
                config.rtcc.jwks_file, state_path=config.state_dir / TRUST_STATE_FILE, clock=clock
            ),
            replay,
            issuer=config.rtcc.issuer,
            audience=config.site.id,
            leeway=config.rtcc.clock_leeway,
            max_lifetime=config.policy.max_clip_request_lifetime,
            max_stream_lifetime=config.policy.max_stream_request_lifetime,
            clock=clock,
        )

    @property
    def leeway(self) -> float:
        return self._leeway

    def verify(self, payload: bytes, *, consume: bool = True) -> Verified | Rejection:
        """Never raises on any input: the result is a verified request or a rejection.

        With `consume=False` a verified request's id is only checked against the replay cache,
        not recorded: the caller records it with `consume()` once the request's ledger entry
        is durable, so a request whose entry could not be written is not refused as
        `replayed` when the broker delivers it again."""
        size = len(payload)
        if size > MAX_REQUEST_BYTES:
            return Rejection(
                RejectCode.MALFORMED,
                f"request is {size} bytes, more than {MAX_REQUEST_BYTES}",
                size,
                parseable=False,
            )
        try:
            token = payload.decode("ascii")
            parts = token.split(".")
            if len(parts) != 3:
                raise ValueError("a compact JWS has three dot-separated parts")
            header = _json_object(parts[0], "header")
            claims = _json_object(parts[1], "claims")
            if _B64URL.fullmatch(parts[2]) is None:
                raise ValueError("signature is not base64url")
            signature = _segment(parts[2])
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            return Rejection(RejectCode.MALFORMED, f"not a JWT: {exc}", size, parseable=False)

        jti = _address(claims)
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None

        def reject(code: RejectCode, message: str, *, verified: bool = False) -> Rejection:
            def text(name: str) -> str | None:
                value = claims.get(name)
                return value if verified and isinstance(value, str) else None

            return Rejection(
                code,
                message,
                size,
                verified=verified,
                jti=jti,
                kid=kid,
                issuer=text("iss"),
                cmd=text("cmd"),
                camera=text("camera"),
            )

        if "crit" in header or "b64" in header:
            return reject(RejectCode.MALFORMED, "header extensions (crit, b64) are not supported")
        alg = header.get("alg")
        if alg != _ALGORITHM:
            return reject(RejectCode.BAD_ALGORITHM, f"alg {_shown(alg)} is not EdDSA")
        if kid is None:
            return reject(RejectCode.UNKNOWN_KEY, "header has no kid")
        key = self.keys.get(kid)
        if key is None:
            return reject(
                RejectCode.UNKNOWN_KEY, f"kid {_shown(kid)} is not in {self.keys.describe()}"
            )
        signing_input = token[: token.rindex(".")].encode("ascii")
        if signature is None or not self._eddsa.verify(signing_input, key, signature):
            return reject(RejectCode.BAD_SIGNATURE, "signature does not verify")
        return self._check_claims(claims, kid, size, reject, consume=consume)

    def consume(self, request: Request) -> bool:
        """Record a verified request's id (False: it was already recorded, a replay)."""
        return self.replay.add(request.jti, keep_until=request.exp + self._leeway)

    async def consume_async(self, request: Request) -> bool:
        """`consume` in a worker thread (the replay cache's commit fsyncs)."""
        return await self.replay.add_async(request.jti, keep_until=request.exp + self._leeway)

    def _check_claims(
        self,
        claims: dict[str, Any],
        kid: str,
        size: int,
        reject: Callable[..., Rejection],
        *,
        consume: bool,
    ) -> Verified | Rejection:
        def fail(code: RejectCode, message: str) -> Rejection:
            result: Rejection = reject(code, message, verified=True)
            return result

        problem = _envelope_problem(claims)
        if problem is not None:
            return fail(RejectCode.MALFORMED, problem)
        if claims["iss"] != self.issuer:
            return fail(RejectCode.WRONG_ISSUER, f"issuer {_shown(claims['iss'])} is not trusted")
        if claims["aud"] != self.audience:
            return fail(
                RejectCode.WRONG_AUDIENCE, f"audience {_shown(claims['aud'])} is not this site"
            )
        now = self._clock()
        for name in ("iat", "nbf"):
            if name in claims and claims[name] > now + self._leeway:
                return fail(
                    RejectCode.NOT_YET_VALID, f"{name} is {claims[name] - now:.0f} s in the future"
                )
        if now >= claims["exp"] + self._leeway:
            return fail(RejectCode.EXPIRED, f"expired {now - claims['exp']:.0f} s ago")
        cmd = claims.get("cmd")
        if not isinstance(cmd, str):
            return fail(RejectCode.MALFORMED, "claim cmd must be a string")
        if cmd not in COMMANDS:
            return fail(RejectCode.UNKNOWN_COMMAND, f"unknown command {_shown(cmd)}")
        cap = self._max_stream if cmd == "stream" else self._max_lifetime
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > cap:
            return fail(
                RejectCode.LIFETIME_TOO_LONG,
                f"lifetime {lifetime} s is longer than {cap:.0f} s for {cmd}",
            )
        try:
            request = parse_request_claims(claims)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"][1:]) or "claims"
            return fail(RejectCode.MALFORMED, f"{where}: {first['msg']}"[:500])
        replayed = not self.consume(request) if consume else request.jti in self.replay
        if replayed:
            return fail(RejectCode.REPLAYED, "this request id was already used")
        return Verified(request, kid, size)
