"""`rtcc-hub broker-config`: a mosquitto configuration for the sites (TLS, ACL), or with
`--broker nats` a clustered NATS Server (`hub.broker_config_nats`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.broker_config import default_owner, write_broker_config
from hub.broker_config_nats import write_nats_config
from hub.ca import CaError
from hub.cli.common import EXIT_OK, UsageError, console
from hub.state import HubHome


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    brokercfg = commands.add_parser(
        "broker-config", help="write a mosquitto configuration for the sites (TLS, ACL)"
    )
    brokercfg.add_argument("--out", required=True, type=Path, metavar="DIR")
    brokercfg.add_argument(
        "--broker",
        choices=("mosquitto", "nats"),
        default="mosquitto",
        help="mosquitto (one node) or nats (a NATS Server cluster, for a city)",
    )
    brokercfg.add_argument("--nodes", type=int, default=3, help="nats: cluster nodes")
    brokercfg.add_argument(
        "--cluster-port", type=int, default=6222, help="nats: first node's route port"
    )
    brokercfg.add_argument(
        "--client-port", type=int, default=4222, help="nats: first node's NATS port (loopback)"
    )
    brokercfg.add_argument(
        "--monitor-port", type=int, default=8222, help="nats: first node's monitoring port"
    )
    brokercfg.add_argument("--host", required=True, help="the broker's name as sites reach it")
    brokercfg.add_argument("--name", action="append", default=[], help="another name/address")
    brokercfg.add_argument("--port", type=int, default=8883, help="site listener port")
    brokercfg.add_argument("--bind", default="0.0.0.0", help="site listener address")  # noqa: S104
    brokercfg.add_argument("--hub-port", type=int, default=8884, help="hub listener port")
    brokercfg.add_argument("--hub-bind", default="127.0.0.1", help="hub listener address")
    brokercfg.add_argument(
        "--no-hub-client", action="store_true", help="leave hub.toml's broker section alone"
    )
    brokercfg.add_argument(
        "--user", help="owner of the files (default: mosquitto, as root; '' for nobody)"
    )
    brokercfg.set_defaults(func=cmd_broker_config)


def cmd_broker_config(args: argparse.Namespace, home: HubHome) -> int:
    if args.broker == "nats":
        return _nats(args, home)
    try:
        files = write_broker_config(
            home,
            args.out,
            host=args.host,
            names=args.name,
            port=args.port,
            bind=args.bind,
            hub_port=args.hub_port,
            hub_bind=args.hub_bind,
            hub_client=not args.no_hub_client,
            run_as=(args.user or None) if args.user is not None else default_owner(),
        )
    except CaError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"wrote {files.config}", highlight=False)
    console.print(f"sites connect to {files.site_url}; the hub to {files.hub_url}", highlight=False)
    console.print(f"run it with: mosquitto -c {files.config}", highlight=False)
    return EXIT_OK


def _nats(args: argparse.Namespace, home: HubHome) -> int:
    try:
        files = write_nats_config(
            home,
            args.out,
            host=args.host,
            names=args.name,
            nodes=args.nodes,
            port=args.port,
            bind=args.bind,
            cluster_port=args.cluster_port,
            client_port=args.client_port,
            monitor_port=args.monitor_port,
            hub_client=not args.no_hub_client,
        )
    except CaError as exc:
        raise UsageError(str(exc)) from None
    for node in files.nodes:
        console.print(f"wrote {node.config}", highlight=False)
    console.print(f"sites and the hub connect to {' '.join(files.site_urls)}", highlight=False)
    console.print(
        "run each node with: nats-server -c DIR/node-N.conf; after enrolling a site run this "
        "again and restart the nodes one by one",
        highlight=False,
    )
    return EXIT_OK
