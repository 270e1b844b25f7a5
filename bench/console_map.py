"""The console's map with thousands of registered cameras from simulated sites: time until the
page has every camera on the map, in Debian's Chromium (issue 16: under 1 s for 5,000).

    python -m bench.console_map [--sites 250 --cameras-per-site 20] [--loads 5] [--json]

Everything is real: a TLS mosquitto, `sitesim` sites (the agent's real link code) publishing
their signed registries, the hub's ingestion verifying each one into its database (SQLite, or
`--database postgresql+asyncpg://…`), `rtcc-hub serve` (in this process) serving the console,
and Chromium (Playwright) loading the map page signed in.

Measured per load, in the page (`performance.now()` from navigation start): the moment the map
has every camera (the marker clustering's last chunk is in). The peer, in the same run and the
same browser: the same cameras from the same JSON as plain Leaflet circle markers (no
clustering) on a page of this benchmark's own — what a naive map would do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import xstatic.pkg.leaflet
from aiohttp import web
from playwright.async_api import Page, async_playwright

from agent.log import configure_logging
from bench._hub_rig import ANALYST, PASSWORD, hub_rig
from bench.record_cpu import machine
from hub.registry import map_cameras
from sitesim import city
from tests.support.chromium import ensure_chromium, spki_hash

PLAIN_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/leaflet/leaflet.css">
<style>html,body,#map{margin:0;height:100%}</style></head><body><div id="map"></div>
<script src="/leaflet/leaflet.js"></script><script>
const map = L.map("map", {preferCanvas: true, maxZoom: 19}).setView([35.08, -106.65], 12);
fetch("/cameras.json").then(r => r.json()).then(cams => {
  for (const c of cams) L.circleMarker([c.la, c.lo], {radius: 7}).addTo(map);
  window.rtccMapReady = performance.now();
  document.body.dataset.mapReady = String(cams.length);
});
</script></body></html>"""


async def _plain_server(cameras: list[dict[str, Any]]) -> tuple[web.AppRunner, str]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PLAIN_PAGE, content_type="text/html")

    async def cameras_json(_: web.Request) -> web.Response:
        return web.json_response(cameras)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/cameras.json", cameras_json)
    app.router.add_static("/leaflet", xstatic.pkg.leaflet.BASE_DIR)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _load(page: Page, url: str, count: int) -> float:
    await page.goto("about:blank")
    await page.goto(url)
    await page.wait_for_selector(f"body[data-map-ready='{count}']", timeout=120_000)
    value = await page.evaluate("window.rtccMapReady")
    return float(value) / 1000


async def bench(sites: int, per_site: int, loads: int, database: str | None) -> dict[str, Any]:
    specs = city(sites, cameras_per_site=(per_site, per_site), spread_m=4000)
    expected = sum(1 for s in specs for c in s.cameras if c.sharing != "private")
    started = time.monotonic()
    async with hub_rig(specs, database=database) as rig:
        db = rig.console.hub.db
        while len(await map_cameras(db)) < expected:
            if time.monotonic() - started > 600:
                raise TimeoutError("the registries did not all arrive")
            await asyncio.sleep(0.5)
        ingested_s = time.monotonic() - started
        cameras = [{"la": c.lat, "lo": c.lon} for c in await map_cameras(db) if c.lat is not None]
        plain, plain_url = await _plain_server(cameras)
        pin = spki_hash((rig.home.root / "tls" / "server.pem").read_bytes())
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=ensure_chromium(),
                    args=["--no-sandbox", f"--ignore-certificate-errors-spki-list={pin}"],
                )
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                await page.goto(rig.url + "/login")
                await page.fill('input[name="username"]', ANALYST)
                await page.fill('input[name="password"]', PASSWORD)
                await page.click('button[type="submit"]')
                await page.wait_for_url(rig.url + "/")
                console_s = [await _load(page, rig.url + "/", len(cameras)) for _ in range(loads)]
                plain_s = [await _load(page, plain_url, len(cameras)) for _ in range(loads)]
                await browser.close()
        finally:
            await plain.cleanup()
    console_median, plain_median = statistics.median(console_s), statistics.median(plain_s)
    return {
        "machine": machine(),
        "database": "postgresql" if database else "sqlite",
        "sites": sites,
        "cameras": len(cameras),
        "registries_ingested_s": round(ingested_s, 1),
        "console_map_ready_s": [round(x, 3) for x in console_s],
        "console_map_ready_median_s": round(console_median, 3),
        "plain_leaflet_ready_s": [round(x, 3) for x in plain_s],
        "plain_leaflet_ready_median_s": round(plain_median, 3),
        "ratio_console_over_plain": round(console_median / plain_median, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=250)
    parser.add_argument("--cameras-per-site", type=int, default=20)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--database", metavar="URL", help="default: SQLite in a temp dir")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning", fmt="console")
    result = asyncio.run(bench(args.sites, args.cameras_per_site, args.loads, args.database))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print(
        f"{result['cameras']} cameras at {result['sites']} simulated sites; registries verified "
        f"into {result['database']} in {result['registries_ingested_s']} s"
    )
    print(
        "console map, every camera on it: "
        + ", ".join(f"{x:.2f} s" for x in result["console_map_ready_s"])
        + f" (median {result['console_map_ready_median_s']:.2f} s)"
    )
    print(
        "plain Leaflet, same cameras, no clustering: "
        + ", ".join(f"{x:.2f} s" for x in result["plain_leaflet_ready_s"])
        + f" (median {result['plain_leaflet_ready_median_s']:.2f} s); ratio console / plain "
        f"{result['ratio_console_over_plain']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
