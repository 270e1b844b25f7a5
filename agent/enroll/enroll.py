"""Enrolling this site with an RTCC hub, all or nothing.

1. The configuration must load (it gives the state directory) and not be enrolled already
   (unless `force`).
2. The device key is loaded or made (`<state_dir>/device.key`, 0600, owned by the service user).
3. A fresh MQTT client key and its CSR are made in memory and sent with the token and the
   device's public JWK.
4. The answer is checked (`agent.enroll.answer`), then the CA certificate, client certificate,
   client key and RTCC JWKS are staged next to the configuration, the configuration is edited
   and validated, and everything is renamed into place, the configuration last.

Until step 4 completes nothing but the device key has changed on disk, so a refused token, an
unreachable hub or a bad answer leaves the site as it was.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.config import ConfigError, load_config
from agent.enroll.answer import CheckedAnswer, check_answer
from agent.enroll.client import EnrollError, request_enrollment
from agent.enroll.config_file import enrolled_text
from agent.enroll.csr import build_csr, client_key_pem, new_client_key
from agent.enroll.files import PRIVATE, PUBLIC, Ownership, Staged, give_to
from agent.enroll.protocol import PROOF_TYP, EnrollRequest, ProofClaims, sha256_hex
from agent.identity import DeviceKey, DeviceKeyError
from agent.log import get_logger

log = get_logger(__name__)

CA_FILE = "ca.pem"
CERT_FILE = "client.pem"
KEY_FILE = "client.key"
JWKS_FILE = "rtcc-jwks.json"
_FILES = {"ca_file": CA_FILE, "cert_file": CERT_FILE, "key_file": KEY_FILE, "jwks_file": JWKS_FILE}


@dataclass(frozen=True)
class EnrollResult:
    site_id: str
    site_name: str
    lat: float
    lon: float
    broker_url: str
    issuer: str
    device_kid: str
    device_key_created: bool
    cert_expires: datetime.datetime
    config_path: Path
    files: tuple[Path, ...]


@dataclass(frozen=True)
class _Site:
    """What enrollment needs from the site before it talks to the hub."""

    config_path: Path  # the file itself (a symbolic link resolved): what is replaced
    text: str
    stat: os.stat_result
    device: DeviceKey
    device_key_created: bool
    files_dir: Path  # where the certificates go: beside the name given, link or not


def _prepare(
    config_path: Path, device_key_at: Callable[[Path], Path], who: Ownership, *, force: bool
) -> _Site:
    try:
        config = load_config(config_path)
        text = config_path.read_text(encoding="utf-8")
        stat = config_path.stat()
    except ConfigError as exc:
        raise EnrollError(f"the configuration is not valid: {exc}", code="config") from exc
    except OSError as exc:
        raise EnrollError(f"cannot read {config_path}: {exc.strerror}", code="config") from exc
    if config.rtcc.broker_url is not None and not force:
        raise EnrollError(
            f"this site is already enrolled as {config.site.id} (broker {config.rtcc.broker_url});"
            " enroll again with a new token and --force",
            code="already_enrolled",
        )
    device_key_path = device_key_at(config.state_dir)
    created = not device_key_path.exists()
    try:
        device = DeviceKey.load_or_create(device_key_path)
    except DeviceKeyError as exc:
        raise EnrollError(str(exc), code="device_key") from exc
    except OSError as exc:
        raise EnrollError(
            f"cannot create the device key {device_key_path}: {exc.strerror}", code="device_key"
        ) from exc
    if created:
        give_to(device_key_path, who)
    # /etc/rtcc-edge/agent.toml may point into the owner directory (which the owner's group
    # may write): the certificates and the client key stay in /etc/rtcc-edge, root's.
    files_dir = config_path.absolute().parent
    return _Site(config_path.resolve(), text, stat, device, created, files_dir)


def _write(
    site: _Site, answer: CheckedAnswer, client_key: ec.EllipticCurvePrivateKey, who: Ownership
) -> tuple[Path, ...]:
    directory = site.files_dir
    paths = {name: directory / file for name, file in _FILES.items()}
    rtcc: dict[str, object] = {
        "broker_url": answer.broker_url,
        **({"broker_urls": list(answer.broker_urls)} if answer.broker_urls else {}),
        "issuer": answer.issuer,
        **{name: str(path) for name, path in paths.items()},
    }
    new_text = enrolled_text(
        site.text,
        site_id=answer.site_id,
        site_name=answer.site_name,
        rtcc=rtcc,
        evidence_hosts=answer.evidence_hosts,
        # The hub's CA also issued its HTTPS certificate: uploads and the relay must trust it.
        evidence_ca=str(paths["ca_file"]) if answer.evidence_hosts else None,
    )
    staged = Staged()
    try:
        staged.add_file(paths["ca_file"], answer.ca_cert_pem, PUBLIC, who)
        staged.add_file(paths["cert_file"], answer.client_cert_pem, PUBLIC, who)
        staged.add_file(paths["key_file"], client_key_pem(client_key), PRIVATE, who)
        staged.add_file(paths["jwks_file"], answer.jwks_json.encode(), PUBLIC, who)
        config_temp = staged.add(
            site.config_path,
            new_text.encode("utf-8"),
            mode=site.stat.st_mode & 0o7777,
            uid=site.stat.st_uid,
            gid=site.stat.st_gid,
        )
        try:
            load_config(config_temp)
        except ConfigError as exc:
            raise EnrollError(
                f"the enrolled configuration would not be valid: {exc}", code="config"
            ) from exc
        return tuple(staged.commit())
    finally:
        staged.discard()


async def enroll(
    config_path: Path,
    *,
    hub_url: str,
    token: str,
    device_key_at: Callable[[Path], Path],
    ca_file: Path | None = None,
    owner: Ownership | None = None,
    force: bool = False,
) -> EnrollResult:
    """Enroll with the hub at `hub_url`; EnrollError (one sentence) if it did not happen.

    `device_key_at(state_dir)` names the device key file of a state directory."""
    who = owner or Ownership()
    token = token.strip()
    if not token:
        raise EnrollError("no enrollment token given", code="usage")
    site = await asyncio.to_thread(_prepare, config_path, device_key_at, who, force=force)
    client_key = new_client_key()
    csr = build_csr(client_key)
    proof = site.device.sign(
        ProofClaims(
            token_sha256=sha256_hex(token), csr_sha256=sha256_hex(csr), iat=int(time.time())
        ).model_dump(),
        typ=PROOF_TYP,
    )
    request = EnrollRequest(token=token, csr=csr, device_jwk=site.device.public_jwk, proof=proof)
    answer = check_answer(await request_enrollment(hub_url, request, ca_file=ca_file), client_key)
    files = await asyncio.to_thread(_write, site, answer, client_key, who)
    spki = client_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    log.info(
        "enrolled",
        site=answer.site_id,
        broker=answer.broker_url,
        issuer=answer.issuer,
        device_kid=site.device.kid,
        client_key_sha256=hashlib.sha256(spki).hexdigest(),
    )
    return EnrollResult(
        site_id=answer.site_id,
        site_name=answer.site_name,
        lat=answer.lat,
        lon=answer.lon,
        broker_url=answer.broker_url,
        issuer=answer.issuer,
        device_kid=site.device.kid,
        device_key_created=site.device_key_created,
        cert_expires=answer.cert_expires,
        config_path=site.config_path,
        files=files,
    )
