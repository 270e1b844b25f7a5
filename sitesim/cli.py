"""`sitesim`: run N simulated sites against a hub's broker.

    sitesim run --hub-home ~/.local/share/rtcc-hub --sites 200 --near 35.0844,-106.6504 \
        --spread 3km --dir /var/tmp/sitesim [--footage 10m]

The sites' broker certificates are issued by the hub's site CA and their device keys trusted
by the hub (what enrollment does), so the hub sees them as it would see real sites. Runs until
SIGINT/SIGTERM; `--ready-file` gets JSON once every site is connected. Exit status: 0 after a
clean stop, 1 if the sites could not start, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from agent.units import parse_distance, parse_duration, parse_point
from hub.ca import site_ca, write_private
from hub.cli.common import arg_type
from hub.server import load_serve_settings
from hub.state import HubHome, HubStateError, write_atomic
from sitesim import __version__
from sitesim.layout import city
from sitesim.site import Broker, Rtcc, Simulation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sitesim", description="Simulated sites (the agent's real link code) for scale."
    )
    parser.add_argument("--version", action="version", version=f"sitesim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="run simulated sites until stopped")
    run.add_argument("--hub-home", required=True, type=Path, metavar="DIR")
    run.add_argument("--broker", metavar="URL", help="site broker URL (default: the hub's)")
    run.add_argument("--ca", type=Path, metavar="FILE", help="the broker's CA (default: hub's)")
    run.add_argument("--sites", type=int, default=10, metavar="N")
    run.add_argument("--near", type=arg_type(parse_point), default=(35.0844, -106.6504))
    run.add_argument("--spread", type=arg_type(parse_distance), default=3000.0, metavar="DIST")
    run.add_argument("--prefix", default="sim", help="site ids are PREFIX-0000, PREFIX-0001, …")
    run.add_argument("--dir", type=Path, required=True, metavar="DIR", help="state directories")
    run.add_argument(
        "--footage",
        type=arg_type(parse_duration),
        default=timedelta(0),
        metavar="DUR",
        help="synthetic footage each camera holds (clips are delivered); default none",
    )
    run.add_argument("--ready-file", type=Path, metavar="FILE")
    run.set_defaults(func=cmd_run)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    home = HubHome(args.hub_home)
    config = home.load_config()
    settings = load_serve_settings(home)
    broker_url = args.broker or settings.site_broker_url
    if broker_url is None or config.issuer is None:
        print("sitesim: the hub has no site broker URL or issuer yet (`rtcc-hub broker-config`, "
              "`rtcc-hub keys new`), or give --broker", file=sys.stderr)  # fmt: skip
        return 2
    ca = site_ca(home)
    certs = args.dir / "certs"

    def credentials(site: str) -> tuple[Path, Path]:
        cert, key = certs / f"{site}.pem", certs / f"{site}.key"
        if not cert.exists():
            pair = ca.issue_client(site)
            write_private(key, pair.key_pem)
            write_atomic(cert, pair.cert_pem.decode())
        return cert, key

    specs = city(args.sites, centre=args.near, spread_m=args.spread, prefix=args.prefix)
    urls = () if args.broker else tuple(settings.site_broker_urls)
    broker = Broker(broker_url, args.ca or ca.cert_path, credentials, urls)
    rtcc = Rtcc(config.issuer, home.jwks_path, upload_ca=ca.cert_path)
    simulation = Simulation(specs, args.dir, broker, rtcc, footage_s=args.footage.total_seconds())
    for site in simulation.sites:
        home.trust_site(site.id, site.public_jwk)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with simulation:
            await simulation.wait_connected()
            cameras = sum(len(s.spec.cameras) for s in simulation.sites)
            print(f"{len(simulation.sites)} simulated sites, {cameras} cameras, connected")
            if args.ready_file is not None:
                write_atomic(
                    args.ready_file,
                    json.dumps({"sites": [s.id for s in simulation.sites]}) + "\n",
                )
            await stop.wait()
        return 0

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HubStateError as exc:
        print(f"sitesim: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
