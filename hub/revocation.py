"""Retiring a site: its client certificates revoked at the broker, its map entry withdrawn.

The hub keeps, in `<home>/ca/`:

- `issued.json`: every client certificate the site CA issued to a site (serial, site, expiry),
  written at enrollment, so a retired site's certificates can all be named;
- `revoked.json`: the serials revoked, with when and which site;
- `ca.crl`: the CRL of the site CA listing them (PEM), rewritten on every retirement and copied
  to every broker directory `rtcc-hub broker-config` wrote (its `mosquitto.conf` names the copy
  as the site listener's `crlfile`; the list of copies is `crl-copies.json`).

mosquitto reads `crlfile` when it starts and when it reloads its configuration (SIGHUP,
`systemctl reload mosquitto`): a revocation refuses the site's next TLS connection after that.
A connection already open stays open until it ends; restart the broker to drop it at once.

`retire_site` also publishes empty retained messages on the site's `registry` and `status`
topics (the hub's broker identity may write every site's subtree), which deletes them from the
broker: `rtcc-hub sites` and the console's map no longer show the site.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from cryptography import x509

from agent.wire import Topics
from hub.ca import CA_DIR, CaError, site_ca
from hub.state import HubHome, HubStateError, exclusive, write_atomic

ISSUED = "issued.json"
REVOKED = "revoked.json"
CRL = "ca.crl"
COPIES = "crl-copies.json"
LOCK = ".revocation.lock"


@dataclass(frozen=True)
class Retirement:
    site: str
    revoked: list[int]  # serials newly revoked now
    already: list[int]  # serials revoked before
    crl_files: list[Path]


def _dir(home: HubHome) -> Path:
    return home.root / CA_DIR


def _read(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise HubStateError(f"{path}: {exc}") from exc


def _write(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)


def record_issued(home: HubHome, site: str, cert: x509.Certificate) -> None:
    """Remember a client certificate issued to `site` (at enrollment)."""
    with exclusive(_dir(home) / LOCK):
        issued = _read(_dir(home) / ISSUED, [])
        issued.append(
            {
                "site": site,
                "serial": str(cert.serial_number),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "issued": datetime.now(UTC).isoformat(),
            }
        )
        _write(_dir(home) / ISSUED, issued)


def issued_to(home: HubHome, site: str) -> list[int]:
    return [int(e["serial"]) for e in _read(_dir(home) / ISSUED, []) if e.get("site") == site]


def add_crl_copy(home: HubHome, path: Path) -> None:
    """Keep `path` (a broker directory's `ca.crl`) in step with the hub's CRL from now on."""
    with exclusive(_dir(home) / LOCK):
        copies = _read(_dir(home) / COPIES, [])
        if str(path) not in copies:
            copies.append(str(path))
            _write(_dir(home) / COPIES, copies)
        _write_crl(home)


def _write_crl(home: HubHome) -> list[Path]:
    """Write the CRL and all its copies (called under the lock); the paths written."""
    revoked = _read(_dir(home) / REVOKED, [])
    entries = [(int(e["serial"]), datetime.fromisoformat(e["revoked"])) for e in revoked]
    pem = site_ca(home).sign_crl(entries, number=len(entries) + 1).decode()
    main = _dir(home) / CRL
    write_atomic(main, pem)
    written = [main]
    for copy in _read(_dir(home) / COPIES, []):
        target = Path(copy)
        if not target.parent.is_dir():
            continue  # a broker directory since removed
        owner = target.stat() if target.exists() else None
        write_atomic(target, pem)
        if owner is not None:
            # The broker reads it as its own user (broker-config handed the files over).
            shutil.chown(target, owner.st_uid, owner.st_gid)
        written.append(target)
    return written


def certificate_serial(path: Path) -> tuple[int, str]:
    """The serial and CN of a PEM certificate file (`--cert`, for a certificate issued before
    the hub kept a record of them)."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise HubStateError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise HubStateError(f"{path} is not a PEM certificate") from exc
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return cert.serial_number, str(names[0].value) if names else ""


def revoke_site(home: HubHome, site: str, *, certificates: list[Path] | None = None) -> Retirement:
    """Revoke every certificate issued to `site` (and those in `certificates`, which must name
    it), rewrite the CRL and its copies."""
    extra: list[int] = []
    for path in certificates or []:
        serial, cn = certificate_serial(path)
        if cn != site:
            raise HubStateError(f"{path} is the certificate of {cn!r}, not of {site!r}")
        extra.append(serial)
    try:
        site_ca(home)
    except CaError as exc:
        raise HubStateError(str(exc)) from exc
    with exclusive(_dir(home) / LOCK):
        serials = list(dict.fromkeys([*issued_to(home, site), *extra]))
        revoked = _read(_dir(home) / REVOKED, [])
        known = {int(e["serial"]) for e in revoked}
        new = [s for s in serials if s not in known]
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        revoked += [{"serial": str(s), "site": site, "revoked": now} for s in new]
        _write(_dir(home) / REVOKED, revoked)
        written = _write_crl(home)
    return Retirement(site, new, [s for s in serials if s in known], written)


async def withdraw_presence(client: aiomqtt.Client, site: str) -> list[str]:
    """Delete `site`'s retained registry and status from the broker (an empty retained
    message deletes the one held); the topics cleared."""
    topics = Topics(site)
    cleared = [topics.registry, topics.status]
    for topic in cleared:
        await client.publish(topic, b"", qos=1, retain=True)
    return cleared
