"""Enrollment routes of `rtcc-hub serve` (protocol: `agent.enroll.protocol`).

- `POST /enroll/check` {token}: could this token enroll now? Changes nothing; the installer
  asks before it installs anything, so a bad token costs the owner nothing.
- `POST /enroll` {token, csr, device_jwk}: redeem the token, sign the CSR (CN = the site id
  the token was made for), register the device key for the site (the trust store that
  `rtcc-hub sites trust` writes), and answer with everything the site needs.
- `GET /install.sh`, `GET /ca.pem` (the site CA, pinned by the install line),
  `GET /rtcc-edge.service`, `GET /rtcc-edge-page.service`, `GET /dist/{wheel}` (+ `GET
  /dist/latest`): the one-line installer, the units it installs (the agent, the owner's page)
  and the agent wheels in `<home>/dist/`, so that the install line `rtcc-hub tokens new`
  prints (`hub.install_line`) works without a checkout.

Everything is checked before the token is spent: a malformed request, a bad CSR or a hub that
is not configured yet never burns a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ValidationError

from agent.enroll.protocol import (
    CHECK_PATH,
    ENROLL_PATH,
    MAX_BODY_BYTES,
    PROOF_MAX_AGE_S,
    PROOF_TYP,
    EnrollLocation,
    EnrollRequest,
    EnrollResponse,
    ProofClaims,
    TokenCheckRequest,
    TokenCheckResponse,
    sha256_hex,
)
from agent.identity import JwsError, jwk_thumbprint, verify_device_jws
from agent.identity.jwk import public_key_from_jwk
from hub.ca import CaError, csr_public_key, site_ca
from hub.keys import read_jwks
from hub.revocation import record_issued
from hub.server import ServerContext, load_serve_settings
from hub.state import HubHome, HubStateError
from hub.tokens import TokenError, TokenRecord, TokenRefusal, TokenStore

DIST_DIR = "dist"
CHECKOUT = Path(__file__).resolve().parents[1]
INSTALLER = CHECKOUT / "installer" / "install.sh"
UNIT = CHECKOUT / "systemd" / "rtcc-edge.service"
PAGE_UNIT = CHECKOUT / "systemd" / "rtcc-edge-page.service"
_WHEEL_RE = re.compile(r"^rtcc_edge-[A-Za-z0-9_.+!-]+\.whl$")
_REFUSAL_STATUS = {
    TokenRefusal.UNKNOWN: 403,
    TokenRefusal.EXPIRED: 403,
    TokenRefusal.USED: 409,
}


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def setup(app: web.Application, context: ServerContext) -> None:
    routes = _Routes(context.home, public_url=context.public_url)
    app.router.add_post(ENROLL_PATH, routes.enroll)
    app.router.add_post(CHECK_PATH, routes.check)
    app.router.add_get("/install.sh", routes.installer)
    app.router.add_get("/ca.pem", routes.ca)
    app.router.add_get("/rtcc-edge.service", routes.unit)
    app.router.add_get("/rtcc-edge-page.service", routes.page_unit)
    app.router.add_get("/dist/latest", routes.latest_wheel)
    app.router.add_get("/dist/{name}", routes.wheel)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _Refused(413, "too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise _Refused(413, "too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Refused(400, "malformed", "the request body is not JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise _Refused(400, "malformed", f"{where}: {first['msg']}") from None


def _token_refusal(exc: TokenError) -> _Refused:
    return _Refused(_REFUSAL_STATUS[exc.code], exc.code.value, str(exc))


def _device_kid(jwk: dict[str, str]) -> str:
    if "d" in jwk:
        raise _Refused(400, "bad_device_key", "device_jwk holds a private key; send the public one")
    try:
        public_key_from_jwk(jwk)
        kid = jwk_thumbprint(jwk)
    except (ValueError, KeyError) as exc:
        raise _Refused(400, "bad_device_key", f"device_jwk is not an Ed25519 key: {exc}") from None
    if "kid" in jwk and jwk["kid"] != kid:
        raise _Refused(400, "bad_device_key", "device_jwk's kid is not its RFC 7638 thumbprint")
    return kid


def _check_proof(body: EnrollRequest) -> None:
    """The device must hold the key it asks the hub to trust, and have meant this token and
    this CSR: a JWS by that key over their hashes, made just now."""
    try:
        header = jwt.get_unverified_header(body.proof)
        claims = ProofClaims.model_validate(verify_device_jws(body.proof, body.device_jwk))
    except (jwt.PyJWTError, JwsError, ValidationError) as exc:
        raise _Refused(
            400, "bad_proof", f"the proof of the device key does not verify: {exc}"
        ) from None
    if header.get("typ") != PROOF_TYP:
        raise _Refused(400, "bad_proof", f"the proof is not a {PROOF_TYP}")
    if claims.token_sha256 != sha256_hex(body.token) or claims.csr_sha256 != sha256_hex(body.csr):
        raise _Refused(400, "bad_proof", "the proof was made for another token or CSR")
    if abs(time.time() - claims.iat) > PROOF_MAX_AGE_S:
        raise _Refused(400, "bad_proof", "the proof is not fresh (check the device's clock)")


def _checkout_file(path: Path, content_type: str) -> web.StreamResponse:
    if not path.is_file():
        return _error(404, "not_found", f"this hub has no {path.name} to serve (not a checkout)")
    return web.FileResponse(path, headers={"Content-Type": content_type})


class _Routes:
    def __init__(self, home: HubHome, *, public_url: str | None = None) -> None:
        self.home = home
        self.tokens = TokenStore(home)
        # Uploads (the receiver) and live video (the relay) arrive on this server: a newly
        # enrolled site allows its host unless the owner chose other hosts.
        host = urlsplit(public_url).hostname if public_url else None
        self.evidence_hosts = [host] if host else []

    async def check(self, request: web.Request) -> web.Response:
        try:
            body: TokenCheckRequest = await _body(request, TokenCheckRequest)
            record = await asyncio.to_thread(self.tokens.check, body.token)
        except _Refused as exc:
            return _error(exc.status, exc.code, str(exc))
        except TokenError as exc:
            return _error(_REFUSAL_STATUS[exc.code], exc.code.value, str(exc))
        answer = TokenCheckResponse(
            site_id=record.site_id, site_name=record.site_name, expires=record.expires.isoformat()
        )
        return web.json_response(answer.model_dump())

    async def enroll(self, request: web.Request) -> web.Response:
        try:
            body: EnrollRequest = await _body(request, EnrollRequest)
            kid = _device_kid(body.device_jwk)
            _check_proof(body)
            try:
                csr_key = csr_public_key(body.csr)
            except CaError as exc:
                raise _Refused(400, "bad_csr", str(exc)) from None
            spki = csr_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            answer = await asyncio.to_thread(
                self._enroll, body, kid, hashlib.sha256(spki).hexdigest()
            )
        except _Refused as exc:
            return _error(exc.status, exc.code, str(exc))
        return web.json_response(answer.model_dump(mode="json"))

    def _ready(self) -> tuple[list[str], str, dict[str, Any]]:
        """The broker URL, issuer and JWKS sites get; refuses (503) before a token is spent."""
        try:
            settings = load_serve_settings(self.home)
            config = self.home.load_config()
            jwks = read_jwks(self.home)
        except HubStateError as exc:
            raise _Refused(
                503, "hub_not_ready", f"the hub's configuration is broken: {exc}"
            ) from exc
        missing = []
        if settings.site_broker_url is None:
            missing.append("a broker for sites (`rtcc-hub broker-config`)")
        if config.issuer is None or not jwks["keys"]:
            missing.append("a request-signing key (`rtcc-hub keys new --issuer URL`)")
        if missing:
            raise _Refused(
                503, "hub_not_ready", "the hub cannot enroll yet: it needs " + " and ".join(missing)
            )
        assert settings.site_broker_url is not None and config.issuer is not None
        urls = [settings.site_broker_url, *settings.site_broker_urls]
        return list(dict.fromkeys(urls)), config.issuer, jwks

    def _enroll(self, body: EnrollRequest, kid: str, csr_key_sha256: str) -> EnrollResponse:
        broker_urls, issuer, jwks = self._ready()
        try:
            ca = site_ca(self.home)
        except CaError as exc:
            raise _Refused(503, "hub_not_ready", str(exc)) from exc
        try:
            record: TokenRecord = self.tokens.redeem(
                body.token, device_kid=kid, csr_key_sha256=csr_key_sha256
            )
        except TokenError as exc:
            raise _token_refusal(exc) from None
        cert = ca.sign_site_csr(body.csr, site_id=record.site_id)
        record_issued(self.home, record.site_id, cert)  # so `sites retire` can revoke it
        self.home.trust_site(record.site_id, body.device_jwk)
        return EnrollResponse(
            site_id=record.site_id,
            site_name=record.site_name,
            location=EnrollLocation(lat=record.location.lat, lon=record.location.lon),
            client_cert=cert.public_bytes(serialization.Encoding.PEM).decode(),
            ca_cert=ca.cert_pem.decode(),
            broker_url=broker_urls[0],
            # Every node, only for a cluster: a single-broker hub answers as it always did.
            broker_urls=broker_urls if len(broker_urls) > 1 else [],
            issuer=issuer,
            jwks=jwks,
            evidence_hosts=self.evidence_hosts,
        )

    # --- downloads ---------------------------------------------------------------------------

    async def installer(self, request: web.Request) -> web.StreamResponse:
        return _checkout_file(INSTALLER, "text/x-shellscript")

    async def ca(self, request: web.Request) -> web.StreamResponse:
        # Public (every site gets it at enrollment); the install line checks its SHA-256
        # before trusting it, so it may be fetched before anything is trusted.
        return web.Response(body=site_ca(self.home).cert_pem, content_type="application/x-pem-file")

    async def unit(self, request: web.Request) -> web.StreamResponse:
        return _checkout_file(UNIT, "text/plain")

    async def page_unit(self, request: web.Request) -> web.StreamResponse:
        return _checkout_file(PAGE_UNIT, "text/plain")

    def _wheels(self) -> list[Path]:
        directory = self.home.root / DIST_DIR
        if not directory.is_dir():
            return []
        return sorted(
            (p for p in directory.iterdir() if _WHEEL_RE.match(p.name) and p.is_file()),
            key=lambda p: p.stat().st_mtime,
        )

    async def latest_wheel(self, request: web.Request) -> web.Response:
        wheels = await asyncio.to_thread(self._wheels)
        if not wheels:
            return _error(404, "not_found", f"no agent wheel in {self.home.root / DIST_DIR}")
        return web.Response(text=wheels[-1].name + "\n")

    async def wheel(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        # Only names listed from the directory are served: nothing in the URL becomes a path.
        wheels = {p.name: p for p in await asyncio.to_thread(self._wheels)}
        if name not in wheels:
            return _error(404, "not_found", "no such wheel")
        return web.FileResponse(wheels[name])
