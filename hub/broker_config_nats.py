"""`rtcc-hub broker-config --broker nats`: a clustered broker for a city (NATS Server 2.9).

Several `nats-server` nodes (three by default) clustered with each other, each with an MQTT
listener over TLS and JetStream, which holds the MQTT state: persistent sessions, retained
status and registry, QoS 1 messages not yet acknowledged; `stream_replicas` keeps every copy
on each node, so the loss of any one node loses none of it.

What it writes in DIR (run node N with `nats-server -c DIR/node-N.conf`):

- `node-N.conf`: the node's name, its MQTT listener (`--port` + N - 1 on `--bind`), its cluster
  route listener and routes to every other node, JetStream in `data/node-N/`, a NATS client
  port and a monitoring port on loopback only (sites speak MQTT, nothing else);
- `users.conf`, included by every node: TLS `verify_and_map` turns a client certificate's
  subject into the user `CN=<id>`; each trusted site may publish and subscribe only under its
  own `rtcc/v1/sites/<site>/` (NATS subject `rtcc.v1.sites.<site>.>`, the same isolation as
  mosquitto's ACL), the hub identity `rtcc.hub` under all of `rtcc/v1/sites/`. No other user
  exists, so a certificate of anyone else connects to nothing.
- `ca-bundle.pem` (site CA and operator CA: the hub's certificate comes from the latter),
  `server.pem`, `server.key` (0600) naming `--host`, any `--name`, and loopback.

Users are listed by name (NATS 2.9 has no `%u` pattern), so a newly enrolled site needs
`users.conf` written again (`write_users`) and the nodes restarted one after the other: a
`--signal reload` of nats-server 2.9.10 applies new users but leaves the existing QoS 1 MQTT
subscriptions deaf (seen here), a restart does not, and the other nodes hold the sessions
meanwhile.

It also records every node's site URL in `<home>/serve.toml` (enrollment hands all of them to
sites) and, unless `--no-hub-client`, issues the hub's client certificate and points
`hub.toml`'s broker section at all nodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.broker_config import _check_name, _check_port, _configure_hub_client, _url_host
from hub.ca import HUB_IDENTITY, operator_ca, site_ca, write_private
from hub.server import update_serve_settings
from hub.state import HubHome, HubStateError, write_atomic

CLUSTER_NAME = "rtcc"
USERS_FILE = "users.conf"


@dataclass(frozen=True)
class NatsNode:
    name: str
    config: Path
    mqtt_port: int
    client_port: int
    cluster_port: int
    monitor_port: int
    store_dir: Path


@dataclass(frozen=True)
class NatsFiles:
    directory: Path
    nodes: tuple[NatsNode, ...]
    site_urls: tuple[str, ...]
    users: Path

    @property
    def config(self) -> Path:
        return self.nodes[0].config


def subject_root(site: str) -> str:
    """The NATS subject of `rtcc/v1/sites/<site>` (MQTT `/` is NATS `.`)."""
    return f"rtcc.v1.sites.{site}"


def users_text(sites: Iterable[str]) -> str:
    def user(name: str, root: str) -> str:
        # `root/#` is two subjects in NATS: `root.>` and `root` itself.
        publish = json.dumps([f"{root}.>", root])
        # QoS 1 subscriptions are JetStream consumers delivering to `$MQTT.sub.<random>`;
        # nats-server refuses MQTT subscriptions to `$MQTT/...` topics themselves.
        subscribe = json.dumps([f"{root}.>", root, "$MQTT.sub.>"])
        return (
            f"    {{user: {json.dumps(f'CN={name}')}, "
            f"permissions: {{publish: {publish}, subscribe: {subscribe}}}}}\n"
        )

    lines = [
        "# written by `rtcc-hub broker-config --broker nats`: one user per certificate subject\n",
        "authorization {\n",
        "  users = [\n",
        user(HUB_IDENTITY, "rtcc.v1.sites"),
    ]
    for site in sorted(set(sites)):
        if "." in site or not site:
            raise HubStateError(f"site id {site!r} cannot be a NATS user")
        lines.append(user(site, subject_root(site)))
    lines += ["  ]\n", "}\n"]
    return "".join(lines)


def write_users(home: HubHome, out: Path) -> Path:
    """`users.conf` for every site the hub trusts; restart the nodes one by one to apply it."""
    path = out.resolve() / USERS_FILE
    write_atomic(path, users_text(home.trusted_sites()))
    return path


def node_conf(
    out: Path,
    node: NatsNode,
    *,
    bind: str,
    routes: Sequence[str],
    replicas: int,
) -> str:
    q = json.dumps
    route_list = ", ".join(q(route) for route in routes)
    return (
        f"# NATS node {node.name} for rtcc-edge sites (written by `rtcc-hub broker-config`)\n"
        f"server_name: {q(node.name)}\n"
        f"listen: {q(f'127.0.0.1:{node.client_port}')}\n"
        f"http: {q(f'127.0.0.1:{node.monitor_port}')}\n"
        "jetstream {\n"
        f"  store_dir: {q(str(node.store_dir))}\n"
        "}\n"
        "cluster {\n"
        f"  name: {q(CLUSTER_NAME)}\n"
        f"  listen: {q(f'{bind}:{node.cluster_port}')}\n"
        f"  routes: [{route_list}]\n"
        "}\n"
        "mqtt {\n"
        f"  listen: {q(f'{bind}:{node.mqtt_port}')}\n"
        "  tls {\n"
        f"    cert_file: {q(str(out / 'server.pem'))}\n"
        f"    key_file: {q(str(out / 'server.key'))}\n"
        f"    ca_file: {q(str(out / 'ca-bundle.pem'))}\n"
        "    # the certificate is the identity: its subject CN=<id> is the user\n"
        "    verify_and_map: true\n"
        "    timeout: 5\n"
        "  }\n"
        "  # sessions, retained messages and unacknowledged QoS 1 on every node\n"
        f"  stream_replicas: {replicas}\n"
        "}\n"
        f"include {q(USERS_FILE)}\n"
    )


def write_nats_config(
    home: HubHome,
    out: Path,
    *,
    host: str,
    names: Sequence[str] = (),
    nodes: int = 3,
    port: int = 8883,
    bind: str = "0.0.0.0",  # noqa: S104 - sites reach the broker from anywhere
    cluster_port: int = 6222,
    client_port: int = 4222,
    monitor_port: int = 8222,
    hub_client: bool = True,
) -> NatsFiles:
    """Write the cluster's files into `out` (see the module docstring). Node N uses each
    given port + N - 1."""
    _check_name(host, "--host")
    for name in (*names, bind):
        _check_name(name, "host")
    if not 1 <= nodes <= 9:
        raise HubStateError(f"--nodes {nodes}: a cluster here has 1 to 9 nodes (3 is usual)")
    bases = {
        "--port": port,
        "--cluster-port": cluster_port,
        "--client-port": client_port,
        "--monitor-port": monitor_port,
    }
    used: set[int] = set()
    for what, base in bases.items():
        for index in range(nodes):
            _check_port(base + index, what)
            if base + index in used:
                raise HubStateError(f"{what} {base}: the nodes' port ranges overlap")
            used.add(base + index)
    sites, operators = site_ca(home), operator_ca(home)
    server = sites.issue_server(list(dict.fromkeys([host, *names, "localhost", "127.0.0.1"])))

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "ca-bundle.pem", sites.cert_pem.decode() + operators.cert_pem.decode())
    write_atomic(out / "server.pem", server.cert_pem.decode())
    write_private(out / "server.key", server.key_pem)
    users = write_users(home, out)
    members = [
        NatsNode(
            name=f"rtcc-nats-{index + 1}",
            config=out / f"node-{index + 1}.conf",
            mqtt_port=port + index,
            client_port=client_port + index,
            cluster_port=cluster_port + index,
            monitor_port=monitor_port + index,
            store_dir=out / "data" / f"node-{index + 1}",
        )
        for index in range(nodes)
    ]
    route_host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind  # noqa: S104
    for node in members:
        node.store_dir.mkdir(parents=True, exist_ok=True)
        routes = [
            f"nats-route://{_url_host(route_host)}:{other.cluster_port}"
            for other in members
            if other is not node
        ]
        write_atomic(
            node.config,
            node_conf(out, node, bind=bind, routes=routes, replicas=min(3, nodes)),
        )
    site_urls = tuple(f"mqtts://{_url_host(host)}:{node.mqtt_port}" for node in members)
    update_serve_settings(home, site_broker_url=site_urls[0], site_broker_urls=list(site_urls))
    if hub_client:
        _configure_hub_client(home, site_urls[0], others=site_urls[1:])
    return NatsFiles(out, tuple(members), site_urls, users)
