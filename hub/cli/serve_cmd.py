"""`rtcc-hub serve`: the HTTPS server: the console at `/`, enrollment, the upload receiver, the
relay, and the ingestion of every site's events into the database."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError

from agent.units import parse_duration
from hub.cli.common import EXIT_OK, UsageError, arg_type, console, readable_file
from hub.console.settings import ConsoleSettings
from hub.server import HubServer
from hub.state import HubHome, write_atomic


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="the HTTPS server: the console at /, enrollment, the upload receiver, the relay",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8443, help="port (0: any free port)")
    serve.add_argument("--public-url", metavar="URL", help="how sites reach it (default: own)")
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="its key (default: hub CA)")
    serve.add_argument("--ready-file", type=Path, metavar="FILE", help="write JSON when up")
    serve.add_argument(
        "--tiles",
        metavar="URL",
        help="map tiles URL template, e.g. https://tile.example.org/{z}/{x}/{y}.png "
        "(default: none; the map shows cameras on a plain background)",
    )
    serve.add_argument("--tiles-attribution", default="", metavar="TEXT")
    serve.add_argument(
        "--retention-bar",
        type=arg_type(parse_duration),
        default=timedelta(hours=72),
        metavar="DUR",
        help="the program's footage bar per camera, for fleet health (default: 72h)",
    )
    serve.add_argument(
        "--ingest-id",
        metavar="ID",
        help="MQTT client id of this process's event ingestion (unique per hub process)",
    )
    serve.add_argument(
        "--no-ingest", action="store_true", help="do not read the sites' events from the broker"
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, home: HubHome) -> int:
    try:
        settings = ConsoleSettings(
            tiles_url=args.tiles,
            tiles_attribution=args.tiles_attribution,
            retention_bar_h=args.retention_bar.total_seconds() / 3600,
            ingest=not args.no_ingest,
            ingest_id=args.ingest_id,
        )
    except ValidationError as exc:
        raise UsageError(
            f"--tiles: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from None
    server = HubServer(
        home,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        tls_cert=readable_file(args.tls_cert, "--tls-cert"),
        tls_key=readable_file(args.tls_key, "--tls-key"),
        database=args.database,
        console=settings,
    )

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listening = await server.start()
        try:
            console.print(f"serving {listening.url} (Ctrl-C stops)", highlight=False)
            console.print(f"console: {listening.url}/", highlight=False)
            if args.ready_file is not None:
                ready = {"url": listening.url, "host": listening.host, "port": listening.port}
                write_atomic(args.ready_file, json.dumps(ready) + "\n")
            await stop.wait()
        finally:
            await server.close()
        return EXIT_OK

    return asyncio.run(run())
