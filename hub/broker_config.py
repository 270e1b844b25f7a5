"""`rtcc-hub broker-config --out DIR`: a mosquitto configuration for the hub's sites.

What it writes in DIR (run it with `mosquitto -c DIR/mosquitto.conf`):

- `mosquitto.conf`: two TLS listeners and nothing in clear, `allow_anonymous false`,
  persistence on (sites keep persistent sessions, so requests wait for a site that is offline);
  - the **site listener** (`--bind`, `--port`, default 0.0.0.0:8883): `require_certificate`,
    the certificate must chain to the hub's site CA, `use_identity_as_username` (the CN, i.e.
    the site id, is the MQTT user) and `use_username_as_clientid` (a site cannot take another
    site's client id, and with it that site's queued requests);
  - the **hub listener** (`--hub-bind`, `--hub-port`, default 127.0.0.1:8884): certificates
    from the operator CA only, so no site certificate can even connect there; the hub runs
    several clients side by side (`watch` beside `request`), hence no client-id binding;
- `acl`: `pattern readwrite rtcc/v1/sites/%u/#` (each site only its own subtree), `pattern
  read rtcc/v1/trust` (every site reads the RTCC's signed trust set) and the hub identity
  `rtcc.hub` on all of `rtcc/v1/sites/#` and `rtcc/v1/trust`; a site id never contains a dot,
  so no site can be that user;
- `ca.pem`, `operators.pem`, `server.pem`, `server.key` (0600): the CA certificates and a
  server certificate from the site CA naming `--host` (and any `--name`);
- `ca.crl`: the site CA's revocation list, the site listener's `crlfile`; `rtcc-hub sites
  retire` rewrites it here (see `hub.revocation`), and mosquitto reads it at start and reload.

It also records the site-facing broker URL in `<home>/serve.toml` (enrollment hands it to
sites) and, unless `--no-hub-client`, issues the hub's own client certificate into
`<home>/broker/` and points `hub.toml`'s broker section at the hub listener.
When run as root the files are handed to the `mosquitto` user, which mosquitto drops to.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.ca import HUB_IDENTITY, operator_ca, site_ca, write_private
from hub.revocation import add_crl_copy
from hub.server import update_serve_settings
from hub.state import BrokerConfig, HubHome, HubStateError, write_atomic

HUB_CLIENT_DIR = "broker"
_SAFE_NAME = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:"


@dataclass(frozen=True)
class BrokerFiles:
    directory: Path
    config: Path
    site_url: str
    hub_url: str


def _check_name(name: str, what: str) -> str:
    if not name or len(name) > 253 or any(c not in _SAFE_NAME for c in name):
        raise HubStateError(f"{what} {name!r} is not a host name or IP address")
    return name


def _check_port(port: int, what: str) -> int:
    if not 1 <= port <= 65535:
        raise HubStateError(f"{what} {port} is not a TCP port (1-65535)")
    return port


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def mosquitto_conf(directory: Path, *, bind: str, port: int, hub_bind: str, hub_port: int) -> str:
    d = directory
    tls = f"certfile {d / 'server.pem'}\nkeyfile {d / 'server.key'}\ntls_version tlsv1.2\n"
    return (
        "# mosquitto for rtcc-edge sites (written by `rtcc-hub broker-config`)\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"acl_file {d / 'acl'}\n"
        "persistence true\n"
        f"persistence_location {d / 'data'}/\n"
        "max_queued_messages 10000\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        "connection_messages true\n"
        "\n"
        "# sites: client certificate from the site CA; CN = site id = username = client id\n"
        f"listener {port} {bind}\n"
        f"{tls}"
        f"cafile {d / 'ca.pem'}\n"
        # Retired sites' certificates (`rtcc-hub sites retire`); read at start and on reload.
        f"crlfile {d / 'ca.crl'}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "use_username_as_clientid true\n"
        "\n"
        "# the hub itself: client certificate from the operator CA only\n"
        f"listener {hub_port} {hub_bind}\n"
        f"{tls}"
        f"cafile {d / 'operators.pem'}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
    )


def acl_text() -> str:
    return (
        "# each site reads and writes only its own subtree (%u = the certificate's CN)\n"
        "pattern readwrite rtcc/v1/sites/%u/#\n"
        "# every site reads the RTCC's trust set (signed by its root key); only the hub writes it\n"
        "pattern read rtcc/v1/trust\n"
        "\n"
        "# the hub\n"
        f"user {HUB_IDENTITY}\n"
        "topic readwrite rtcc/v1/sites/#\n"
        "topic readwrite rtcc/v1/trust\n"
    )


def write_broker_config(
    home: HubHome,
    out: Path,
    *,
    host: str,
    names: Sequence[str] = (),
    port: int = 8883,
    bind: str = "0.0.0.0",  # noqa: S104 - sites reach the broker from anywhere
    hub_port: int = 8884,
    hub_bind: str = "127.0.0.1",
    hub_client: bool = True,
    run_as: str | None = None,
) -> BrokerFiles:
    """Write the broker's files into `out` (see the module docstring)."""
    _check_name(host, "--host")
    for name in (*names, bind, hub_bind):
        _check_name(name, "host")
    _check_port(port, "--port")
    _check_port(hub_port, "--hub-port")
    if port == hub_port and bind == hub_bind:
        raise HubStateError("the site and hub listeners need different ports")
    sites, operators = site_ca(home), operator_ca(home)
    server_names = list(dict.fromkeys([host, *names]))
    server = sites.issue_server(server_names)

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    write_atomic(out / "ca.pem", sites.cert_pem.decode())
    write_atomic(out / "operators.pem", operators.cert_pem.decode())
    write_atomic(out / "server.pem", server.cert_pem.decode())
    write_private(out / "server.key", server.key_pem)
    write_atomic(out / "acl", acl_text())
    add_crl_copy(home, out / "ca.crl")  # the CRL, kept current by `sites retire`
    config = out / "mosquitto.conf"
    write_atomic(
        config, mosquitto_conf(out, bind=bind, port=port, hub_bind=hub_bind, hub_port=hub_port)
    )
    _hand_over(out, run_as)

    site_url = f"mqtts://{_url_host(host)}:{port}"
    connect_host = "127.0.0.1" if hub_bind in ("0.0.0.0", "::") else hub_bind  # noqa: S104
    hub_url = f"mqtts://{_url_host(connect_host)}:{hub_port}"
    update_serve_settings(home, site_broker_url=site_url)
    if hub_client:
        _configure_hub_client(home, hub_url)
    return BrokerFiles(out, config, site_url, hub_url)


def _configure_hub_client(home: HubHome, url: str, *, others: Sequence[str] = ()) -> None:
    """Issue the hub's client certificate and point `hub.toml`'s broker at `url` (and, for a
    cluster, the `others` nodes tried after it)."""
    directory = home.root / HUB_CLIENT_DIR
    pair = operator_ca(home).issue_client(HUB_IDENTITY)
    cert, key = directory / "hub-client.pem", directory / "hub-client.key"
    write_private(key, pair.key_pem)
    write_atomic(cert, pair.cert_pem.decode())
    config = home.load_config()
    broker = BrokerConfig(
        url=url,
        urls=list(others),
        ca_file=site_ca(home).cert_path,
        cert_file=cert,
        key_file=key,
    )
    home.save_config(config.model_copy(update={"broker": broker}))


def default_owner() -> str | None:
    """mosquitto drops to its own user when started as root: it must be able to read."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        return None
    return "mosquitto"


def _hand_over(out: Path, user: str | None) -> None:
    if user is None:
        return
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise HubStateError(f"no such user {user!r} to hand the broker files to") from None
    for path in [out, *out.rglob("*")]:
        shutil.chown(path, account.pw_uid, account.pw_gid)
    out.chmod(0o750)
