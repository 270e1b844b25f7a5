"""`rtcc-hub serve`: the HTTPS server (enrollment, upload receiver, relay)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from hub.cli.common import EXIT_OK, console, readable_file
from hub.server import HubServer
from hub.state import HubHome, write_atomic


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="the HTTPS server: enrollment, the upload receiver (and more routes)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8443, help="port (0: any free port)")
    serve.add_argument("--public-url", metavar="URL", help="how sites reach it (default: own)")
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="its key (default: hub CA)")
    serve.add_argument("--ready-file", type=Path, metavar="FILE", help="write JSON when up")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, home: HubHome) -> int:
    server = HubServer(
        home,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        tls_cert=readable_file(args.tls_cert, "--tls-cert"),
        tls_key=readable_file(args.tls_key, "--tls-key"),
    )

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listening = await server.start()
        try:
            console.print(f"serving {listening.url} (Ctrl-C stops)", highlight=False)
            if args.ready_file is not None:
                ready = {"url": listening.url, "host": listening.host, "port": listening.port}
                write_atomic(args.ready_file, json.dumps(ready) + "\n")
            await stop.wait()
        finally:
            await server.close()
        return EXIT_OK

    return asyncio.run(run())
